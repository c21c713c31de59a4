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
