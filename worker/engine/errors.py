"""The engine's own exceptions: what crosses a module edge, with messages safe to show and log."""

import re

from contract.storage import StorageError


class EngineError(Exception):
    """Base of every error the engine reports to its caller."""


class SourceError(EngineError):
    """The source is not a git repository, cannot be reached, or refused us."""


class RunSuperseded(EngineError):
    """The caller no longer owns the codebase (a job lost its lock): the run stopped before
    committing or publishing anything."""


class PermanentSourceError(SourceError):
    """The repository is gone or access is revoked: retrying will not help."""


class IncompleteRepositoryError(SourceError):
    """An object the branches reach is missing from the repository (a corrupt or partial copy).

    A plain exception of one message: it crosses from the extraction processes intact, where
    pygit2's own lookup errors cannot be pickled.
    """


_OBJECT_ID = re.compile(r"\b[0-9a-f]{40}(?:[0-9a-f]{24})?\b")


def missing_object(exc: BaseException) -> IncompleteRepositoryError | None:
    """The error to report when `exc` is a lookup of an object the repository lacks (pygit2
    raises KeyError, or its NotFoundError, which is one); None for any other exception."""
    if not isinstance(exc, KeyError):
        return None
    text = " ".join(str(arg) for arg in exc.args)
    found = _OBJECT_ID.search(text)
    if found is None:
        return None
    return IncompleteRepositoryError(
        f"object {found.group()} is missing: the repository is incomplete"
    )


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """Remove credentials embedded in URLs (scheme://user:secret@host)."""
    return _USERINFO.sub("", text)


def public_message(exc: BaseException) -> str:
    """What a status document may say of a failure, to anyone who can read the codebase:
    storage and local file errors name buckets, prefixes and paths, so only their kind is said
    (the worker's log has the rest); a source error says what git or GitHub answered."""
    if isinstance(exc, StorageError):
        return "storage could not be read or written (the worker's log says more)"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"a local file operation failed: {exc.strerror or type(exc).__name__}"
    return redact(str(exc)) or type(exc).__name__
