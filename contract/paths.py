r"""How a repository path (bytes, not always UTF-8) is written in the documents and named in the
read API: as UTF-8 text, a backslash written `\\`, a byte that is not part of valid UTF-8 written
`\xNN`. Every path has one such text and the text gives the bytes back, so a text names exactly
one path; the paths of nearly every repository (valid UTF-8, no backslash) read as they are."""

from __future__ import annotations

import re

_ESCAPES = re.compile(r"(\\\\|\\x[0-9a-f]{2})")


def display_path(raw: bytes) -> str:
    """The text of a path's bytes."""
    text = raw.decode("utf-8", "surrogateescape").replace("\\", "\\\\")
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else c for c in text)


def raw_path(text: str) -> bytes:
    """The bytes a path's text names (`display_path` undone); ValueError for a backslash that
    starts no escape."""
    out = bytearray()
    for i, piece in enumerate(_ESCAPES.split(text)):
        if i % 2:
            out += b"\\" if piece == "\\\\" else bytes([int(piece[2:], 16)])
        elif "\\" in piece:
            raise ValueError(f"{text!r}: a backslash starts no escape (write \\\\ or \\xNN)")
        else:
            out += piece.encode("utf-8", "surrogateescape")
    return bytes(out)
