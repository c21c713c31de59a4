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
    stored_among: Callable[[list[str]], set[str]],
) -> RefsDelta:
    """The commits to extract and the commits to drop.

    `stored_shas` is the stored commit set (what the old heads reach), asked for when an old
    head is no longer in the local mirror (a fresh cache after a force-push: the new commit set
    is then walked whole and compared with it), or when a push walks back far. `stored_among`
    tells which of a few commits are stored.
    """
    old = sorted(set(old_heads))
    new = sorted(set(new_heads))
    if all(_has_commit(repo, sha) for sha in old):
        # (With no old heads, a backfill: libgit2's walk of everything is the faster.)
        only_added = (
            _only_added(repo, set(old), set(new), stored_shas, stored_among) if old else None
        )
        if only_added is not None:
            return RefsDelta(added=only_added, removed=[])
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


# Commits walked back from the new heads before the whole stored set is asked for.
OPTIMISTIC_STEPS = 256


def _only_added(
    repo: pygit2.Repository,
    old: set[str],
    new: set[str],
    stored_shas: Callable[[], set[str]],
    stored_among: Callable[[list[str]], set[str]],
) -> list[str] | None:
    """The commits added, when the new heads only add to the history (every old head is still
    reached from them: a push, a new branch, nothing new); None when commits may be removed.

    Walks back from the new heads, stopping at the old heads, then drops what the walk took in
    from the stored history (a new branch started from an old commit reaches stored commits that
    are no head). Past OPTIMISTIC_STEPS commits it asks for the whole stored set and stops at
    any stored commit. A push costs what it adds: libgit2's walk with the old heads hidden
    first marks every commit they reach, the whole history (2.4 s at 400,000 commits).
    """
    reached = old & new
    pending = sorted(new - old)
    seen = set(pending)
    added: list[str] = []
    stored: set[str] | None = None
    while pending:
        if stored is None and len(added) >= OPTIMISTIC_STEPS:
            stored = stored_shas()
            # The stored set is closed under parents: what the walk took in from it, it drops.
            added = [sha for sha in added if sha not in stored]
            pending = [sha for sha in pending if sha not in stored]
            continue
        sha = pending.pop()
        added.append(sha)
        commit = repo[sha]
        assert isinstance(commit, pygit2.Commit)
        for parent_id in commit.parent_ids:
            parent = str(parent_id)
            if parent in seen:
                continue
            seen.add(parent)
            if parent in old:
                reached.add(parent)
            elif stored is None or parent not in stored:
                pending.append(parent)
    if reached != old:
        return None
    if stored is None and added and (taken_in := stored_among(added)):
        added = [sha for sha in added if sha not in taken_in]
    return added


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
