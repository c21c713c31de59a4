"""Paths as text in the documents and the read API (contract/paths.py): one text per path, and
the text gives the bytes back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.paths import display_path, raw_path


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"src/app.py", "src/app.py"),
        ("caf\u00e9/\u00fcber.md".encode(), "caf\u00e9/\u00fcber.md"),
        (b"x/\xff/y.js", "x/\\xff/y.js"),
        (b"win\\path", "win\\\\path"),
        (b"\\xff", "\\\\xff"),  # the text of a backslash, x, f, f is not that of the byte 0xff
        (b"\xc3", "\\xc3"),  # half of a UTF-8 sequence
        (b"", ""),
    ],
)
def test_texts(raw: bytes, text: str) -> None:
    assert display_path(raw) == text
    assert raw_path(text) == raw


@given(st.binary(max_size=40))
def test_every_path_comes_back_from_its_text(raw: bytes) -> None:
    text = display_path(raw)
    assert raw_path(text) == raw
    text.encode("utf-8")  # valid Unicode: no lone surrogate reaches a document


@pytest.mark.parametrize("text", ["a\\b", "trailing\\", "\\x4", "\\xZZ", "\\X41"])
def test_a_backslash_that_starts_no_escape_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="backslash"):
        raw_path(text)
