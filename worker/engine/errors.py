"""The engine's own exceptions: what crosses a module edge, with messages safe to show and log."""

import re


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
