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
    """A file's Linguist language and type, and whether it counts in language statistics."""

    language: str | None
    type: str | None
    counted: bool


def classify(path: str, data: bytes) -> FileLanguage:
    """Classify a text file; `counted` is False for vendored, generated or documentation paths."""
    # Linguist gives empty blobs no language; go-enry would guess one from the name alone.
    if not data:
        return FileLanguage(None, None, counted=False)
    prefix = data[:CLASSIFY_PREFIX_BYTES]
    language = enry.get_language(path, prefix)
    if not language:
        return FileLanguage(None, None, counted=False)
    # go-enry answers "unknown" for a language missing from its type table.
    language_type = enry.get_language_type(language)
    counted = not (
        enry.is_vendor(path) or enry.is_documentation(path) or enry.is_generated(path, prefix)
    )
    return FileLanguage(
        language, None if language_type == "unknown" else language_type, counted=counted
    )
