"""Phase 7: per-branch facts: head, last commit, ahead/behind the default branch, merged, stale.

Ahead/behind counts are kept between runs. When the default branch only moved forward, each
branch's counts are updated from the default's new commits alone instead of walking both
histories again: a branch with an unrelated history would otherwise cost a walk of the whole
repository on every push.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pygit2
from pydantic import BaseModel
from pygit2.enums import SortMode

from contract.documents import Branch
from worker.engine.aggregate import map_identity
from worker.engine.extract import clamp_time, identity_text
from worker.engine.mailmap import Mailmap

STALE_AFTER = timedelta(days=90)
# Branches described in full (ahead/behind walks them): the default one and the most recently
# committed others. Past it a repository's branch count still counts; a thousandfold more
# branches would otherwise cost a thousandfold the walks on every run.
MAX_DESCRIBED_BRANCHES = 1_000
# Past this many commits ahead, an update walk would cost about what a fresh count costs.
INCREMENTAL_AHEAD_LIMIT = 50_000


class Divergence(BaseModel):
    """How far a branch head is from a default-branch head."""

    head: str
    default_head: str
    ahead: int
    behind: int


def _walk(repo: pygit2.Repository, include: str, exclude: str) -> list[pygit2.Oid]:
    walker = repo.walk(pygit2.Oid(hex=include), SortMode.NONE)
    walker.hide(pygit2.Oid(hex=exclude))
    return [commit.id for commit in walker]


def divergence(
    repo: pygit2.Repository,
    head: str,
    default_head: str,
    known: Divergence | None,
    new_commits: frozenset[str] = frozenset(),
) -> Divergence:
    """Ahead/behind of `head` against `default_head`, from `known` counts where possible.

    `new_commits` are the commits this run added to the whole commit set: none of them can be
    an ancestor of a branch head that did not move, so they need no walk of the branch.
    """
    if known is not None and known.head == head:
        if known.default_head == default_head:
            return known
        old = pygit2.Oid(hex=known.default_head)
        new = pygit2.Oid(hex=default_head)
        moved_forward = old in repo and repo.descendant_of(new, old)
        if moved_forward and known.ahead <= INCREMENTAL_AHEAD_LIMIT:
            # D1 = D0 + N. Commits of N that the branch has stop counting as ahead; the rest of N
            # is what the branch is now behind by, in addition to before.
            added = _walk(repo, default_head, known.default_head)
            known_before = [oid for oid in added if str(oid) not in new_commits]
            shared = 0
            if known_before:
                branch_only = set(_walk(repo, head, known.default_head))
                shared = sum(1 for oid in known_before if oid in branch_only)
            return Divergence(
                head=head,
                default_head=default_head,
                ahead=known.ahead - shared,
                behind=known.behind + len(added) - shared,
            )
    ahead, behind = repo.ahead_behind(pygit2.Oid(hex=head), pygit2.Oid(hex=default_head))
    return Divergence(head=head, default_head=default_head, ahead=ahead, behind=behind)


def describe_branches(
    repo: pygit2.Repository,
    heads: dict[str, str],
    default_branch: str | None,
    mailmap: Mailmap,
    now: datetime,
    known: dict[str, Divergence],
    new_commits: frozenset[str] = frozenset(),
    limit: int = MAX_DESCRIBED_BRANCHES,
) -> tuple[list[Branch], dict[str, Divergence]]:
    """The branches described (every one, up to `limit`: then the default one and the most
    recently committed), the default one first, then by name; and the counts to keep."""
    default_head = heads.get(default_branch) if default_branch else None
    result: list[Branch] = []
    kept: dict[str, Divergence] = {}
    described = _most_recent(repo, heads, default_branch, limit)
    for name in sorted(described, key=lambda n: (n != default_branch, n)):
        head = heads[name]
        commit = repo[head]
        assert isinstance(commit, pygit2.Commit)
        author = commit.author
        author_name, _ = map_identity(
            mailmap,
            identity_text(author.raw_name, commit.message_encoding),
            identity_text(author.raw_email, commit.message_encoding),
        )
        last = datetime.fromtimestamp(clamp_time(author.time), UTC)
        if default_head is None:
            ahead = behind = 0
            merged = False
        else:
            counts = divergence(repo, head, default_head, known.get(name), new_commits)
            kept[name] = counts
            ahead, behind = counts.ahead, counts.behind
            # Nothing ahead means every commit of the branch is in the default branch.
            merged = ahead == 0
        result.append(
            Branch(
                name=name,
                head_sha=head,
                is_default=name == default_branch,
                last_commit_at=last,
                last_commit_author=author_name,
                ahead=ahead,
                behind=behind,
                merged=merged,
                stale=now - last > STALE_AFTER,
            )
        )
    return result, kept


def _most_recent(
    repo: pygit2.Repository, heads: dict[str, str], default_branch: str | None, limit: int
) -> list[str]:
    if len(heads) <= limit:
        return list(heads)

    def recency(name: str) -> tuple[bool, int, str]:
        commit = repo[heads[name]]
        assert isinstance(commit, pygit2.Commit)
        return (name != default_branch, -commit.author.time, name)

    return sorted(heads, key=recency)[:limit]
