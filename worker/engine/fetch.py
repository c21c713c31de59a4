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

from worker.engine.errors import PermanentSourceError, SourceError, redact

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
class NetworkTimeouts:
    """How long git waits to connect to a server, and for each read or write once connected.

    libgit2 waits forever by default: a server that stops answering would hold a worker's thread
    for good. The settings are process-wide in libgit2, so every network operation sets them.
    """

    connect_s: float = 15.0
    io_s: float = 120.0

    def apply(self) -> None:
        pygit2.settings.server_connect_timeout = int(self.connect_s * 1000)
        pygit2.settings.server_timeout = int(self.io_s * 1000)


DEFAULT_TIMEOUTS = NetworkTimeouts()


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
    timeouts: NetworkTimeouts = DEFAULT_TIMEOUTS,
) -> FetchedRepository:
    """Clone `source` into `mirror` (a bare repository) or update it: every branch, pruned.

    A mirror that is missing or unreadable is rebuilt from scratch; it is only a cache.
    """
    url = resolve_source(source)
    if not is_url(url):
        return _mirror_local(Path(url), mirror)
    timeouts.apply()
    repo = _open_mirror(mirror, url)
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
    return FetchedRepository(mirror, _branch_heads(repo), default)


def _branch_heads(repo: pygit2.Repository) -> dict[str, str]:
    return {name: str(repo.references[f"refs/heads/{name}"].target) for name in repo.branches.local}


def _mirror_local(path: Path, mirror: Path) -> FetchedRepository:
    """A repository on this machine: share its objects (as `git clone --shared` does) and copy
    its branch heads, instead of packing its whole history through a transport."""
    source = pygit2.Repository(str(path), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
    objects = Path(source.path) / "objects"
    repo = _open_mirror(mirror, str(path))
    if repo is None:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        repo = pygit2.init_repository(str(mirror), bare=True)
        repo.remotes.create("origin", str(path), MIRROR_REFSPEC)
    (mirror / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    repo = pygit2.Repository(str(mirror))
    heads = _branch_heads(source)
    for name in set(_branch_heads(repo)) - set(heads):
        repo.references.delete(f"refs/heads/{name}")
    for name, sha in heads.items():
        repo.references.create(f"refs/heads/{name}", pygit2.Oid(hex=sha), force=True)
    default = None
    head = source.references.get("HEAD")
    if head is not None and head.type == pygit2.enums.ReferenceType.SYMBOLIC:
        default = str(head.target).removeprefix("refs/heads/")
    return FetchedRepository(mirror, heads, default)


def _open_mirror(mirror: Path, url: str) -> pygit2.Repository | None:
    """The existing mirror of `url`, or None (after clearing whatever was in its place)."""
    if not mirror.exists():
        return None
    try:
        repo = pygit2.Repository(str(mirror))
        # A mirror made for another kind of source (shared objects vs. its own) is rebuilt.
        shared = (mirror / "objects" / "info" / "alternates").exists()
        if repo.remotes["origin"] is not None and shared != (not is_url(url)):
            raise KeyError(url)
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


def list_remote_branches(
    url: str,
    scratch: Path,
    callbacks: pygit2.RemoteCallbacks | None = None,
    timeouts: NetworkTimeouts = DEFAULT_TIMEOUTS,
) -> dict[str, str]:
    """`git ls-remote --heads url`: branch name → sha, without fetching anything."""
    timeouts.apply()
    repo = pygit2.Repository(str(scratch))
    remote = repo.remotes.create_anonymous(url)
    try:
        heads = remote.list_heads(callbacks=callbacks)
    except pygit2.GitError as exc:
        raise SourceError(redact(f"cannot list the branches of {url}: {exc}")) from None
    return {
        head.name.removeprefix("refs/heads/"): str(head.oid)
        for head in heads
        if head.name and head.name.startswith("refs/heads/")
    }
