"""Phase 7: per-branch facts: head, last commit, ahead/behind the default branch, merged, stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pygit2

from service.contract.documents import Branch
from worker.aggregate import map_identity

STALE_AFTER = timedelta(days=90)


def describe_branches(
    repo: pygit2.Repository,
    heads: dict[str, str],
    default_branch: str | None,
    mailmap: pygit2.Mailmap,
    now: datetime,
) -> list[Branch]:
    """Every branch, the default one first, then by name."""
    default_head = heads.get(default_branch) if default_branch else None
    default_oid = pygit2.Oid(hex=default_head) if default_head else None
    result: list[Branch] = []
    for name in sorted(heads, key=lambda n: (n != default_branch, n)):
        head = heads[name]
        commit = repo[head]
        assert isinstance(commit, pygit2.Commit)
        author = commit.author
        author_name, _ = map_identity(
            mailmap,
            author.raw_name.decode("utf-8", "replace"),
            author.raw_email.decode("utf-8", "replace"),
        )
        last = datetime.fromtimestamp(author.time, UTC)
        if default_oid is None:
            ahead = behind = 0
            merged = False
        else:
            ahead, behind = repo.ahead_behind(commit.id, default_oid)
            merged = commit.id == default_oid or repo.descendant_of(default_oid, commit.id)
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
    return result
