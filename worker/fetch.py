"""Phase 1: bring every branch of the source into a disposable local bare mirror."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FetchPrune

from worker.errors import PermanentSourceError, SourceError, redact

MIRROR_REFSPEC = "+refs/heads/*:refs/heads/*"
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_SCP_LIKE = re.compile(r"^[^/\\]+@[^/:]+:")
_GONE = (
    "not found",
    "404",
    "403",
    "401",
    "authentication",
    "does not appear to be a git repository",
)


@dataclass(frozen=True)
class FetchedRepository:
    path: Path
    branches: dict[str, str]  # branch name -> head sha
    remote_default_branch: str | None


def is_url(source: str) -> bool:
    return bool(_URL.match(source) or _SCP_LIKE.match(source))


def resolve_source(source: str) -> str:
    """A URL as given, or a local path checked to be a git repository (absolute)."""
    if is_url(source):
        return source
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise SourceError(f"{source}: no such file or directory")
    try:
        pygit2.Repository(str(path), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError:
        raise SourceError(f"{source}: not a git repository") from None
    return str(path)


def fetch_source(
    source: str,
    mirror: Path,
    callbacks: pygit2.RemoteCallbacks | None = None,
) -> FetchedRepository:
    """Clone `source` into `mirror` (a bare repository) or update it: every branch, pruned.

    A mirror that is missing or unreadable is rebuilt from scratch; it is only a cache.
    """
    url = resolve_source(source)
    repo = _open_mirror(mirror)
    if repo is None:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        # Build the first clone beside its final place so a crash never leaves half a mirror.
        staging = Path(tempfile.mkdtemp(prefix=mirror.name + ".", dir=mirror.parent))
        try:
            repo = pygit2.init_repository(str(staging), bare=True)
            repo.remotes.create("origin", url, MIRROR_REFSPEC)
            default = _fetch(repo, url, callbacks)
            shutil.rmtree(mirror, ignore_errors=True)
            os.replace(staging, mirror)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        repo = pygit2.Repository(str(mirror))
    else:
        if repo.remotes["origin"].url != url:
            repo.remotes.set_url("origin", url)
        default = _fetch(repo, url, callbacks)
    branches = {
        name: str(repo.references[f"refs/heads/{name}"].target) for name in repo.branches.local
    }
    return FetchedRepository(mirror, branches, default)


def _open_mirror(mirror: Path) -> pygit2.Repository | None:
    if not mirror.exists():
        return None
    try:
        repo = pygit2.Repository(str(mirror))
        repo.remotes["origin"]
    except (pygit2.GitError, KeyError):
        shutil.rmtree(mirror, ignore_errors=True)
        return None
    return repo


def _fetch(
    repo: pygit2.Repository, url: str, callbacks: pygit2.RemoteCallbacks | None
) -> str | None:
    remote = repo.remotes["origin"]
    try:
        remote.fetch([MIRROR_REFSPEC], callbacks=callbacks, prune=FetchPrune.PRUNE)
        heads = remote.list_heads(callbacks=callbacks, connect=False)
    except pygit2.GitError as exc:
        message = redact(f"cannot fetch {url}: {exc}")
        if any(marker in str(exc).lower() for marker in _GONE):
            raise PermanentSourceError(message) from None
        raise SourceError(message) from None
    for head in heads:
        if head.name == "HEAD" and head.symref_target:
            return head.symref_target.removeprefix("refs/heads/")
    return None
