"""Language classification of one file with GitHub Linguist's rules (through go-enry)."""

from __future__ import annotations

from dataclasses import dataclass

import enry

# Linguist itself loads at most 128 KiB of a blob (LazyBlob::MAX_SIZE) for detection and for its
# generated-file checks, so giving enry the same prefix keeps its answers Linguist's and bounds the
# cost of huge files.
CLASSIFY_PREFIX_BYTES = 128 * 1024


@dataclass(frozen=True, slots=True)
class FileLanguage:
    """A file's Linguist language and type. Whether it counts in the language statistics is
    its path's class (worker/engine/classes.py): only source files count."""

    language: str | None
    type: str | None


def classify(path: str, data: bytes) -> FileLanguage:
    """The language of a text file."""
    # Linguist gives empty blobs no language; go-enry would guess one from the name alone.
    if not data:
        return FileLanguage(None, None)
    prefix = data[:CLASSIFY_PREFIX_BYTES]
    language = enry.get_language(path, prefix)
    if not language:
        return FileLanguage(None, None)
    # go-enry answers "unknown" for a language missing from its type table.
    language_type = enry.get_language_type(language)
    return FileLanguage(language, None if language_type == "unknown" else language_type)
