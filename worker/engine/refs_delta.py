"""Phase 2: which commits a change of branch heads adds to the commit set and which it removes.

The commit set is every commit reachable from a branch. With the old heads H0 and the new heads H1,
added = reachable(H1) - reachable(H0) and removed = reachable(H0) - reachable(H1): two walks that
each stop where the histories meet, so a push costs what it changed, not the whole history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pygit2
from pygit2.enums import SortMode


@dataclass(frozen=True)
class RefsDelta:
    added: list[str]
    removed: list[str]
    full_walk: bool = False  # True when an old head was missing and the sets were compared whole


def compute_refs_delta(
    repo: pygit2.Repository,
    old_heads: Iterable[str],
    new_heads: Iterable[str],
    stored_shas: Callable[[], set[str]],
) -> RefsDelta:
    """The commits to extract and the commits to drop.

    `stored_shas` is asked only when an old head is no longer in the local mirror (a fresh cache
    after a force-push): then the new commit set is walked whole and compared with what is stored.
    """
    old = sorted(set(old_heads))
    new = sorted(set(new_heads))
    if all(_has_commit(repo, sha) for sha in old):
        return RefsDelta(
            added=_walk(repo, include=new, exclude=old),
            removed=_walk(repo, include=old, exclude=new),
        )
    reachable = set(_walk(repo, include=new, exclude=[]))
    stored = stored_shas()
    return RefsDelta(
        added=sorted(reachable - stored),
        removed=sorted(stored - reachable),
        full_walk=True,
    )


def _has_commit(repo: pygit2.Repository, sha: str) -> bool:
    try:
        return isinstance(repo[sha], pygit2.Commit)
    except (KeyError, ValueError):
        return False


def _walk(repo: pygit2.Repository, include: list[str], exclude: list[str]) -> list[str]:
    if not include:
        return []
    walker = repo.walk(None, SortMode.NONE)
    for sha in include:
        walker.push(pygit2.Oid(hex=sha))
    for sha in exclude:
        walker.hide(pygit2.Oid(hex=sha))
    return [str(commit.id) for commit in walker]
