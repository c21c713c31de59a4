"""Branch facts against git: ahead/behind, merged and stale, including counts carried forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pygit2

from tests.support.gitrepos import GitError, GitRepo
from worker.engine.branches import Divergence, describe_branches
from worker.engine.mailmap import Mailmap


def git_ahead_behind(repo: GitRepo, branch: str, default: str = "main") -> tuple[int, int]:
    behind, ahead = repo.git("rev-list", "--left-right", "--count", f"{default}...{branch}").split()
    return int(ahead), int(behind)


def describe(repo: GitRepo, known: dict[str, Divergence], now: datetime | None = None):
    mirror = pygit2.Repository(str(repo.path))
    heads = {name: repo.head(name) for name in repo.branches()}
    return describe_branches(mirror, heads, "main", Mailmap(), now or datetime.now(UTC), known)


def assert_matches_git(repo: GitRepo, known: dict[str, Divergence]) -> dict[str, Divergence]:
    branches, kept = describe(repo, known)
    assert branches[0].name == "main"
    for branch in branches:
        ahead, behind = git_ahead_behind(repo, branch.name)
        assert (branch.ahead, branch.behind) == (ahead, behind), branch.name
        try:
            repo.run("merge-base", "--is-ancestor", branch.head_sha, repo.head("main"))
            is_ancestor = True
        except GitError:
            is_ancestor = False
        assert branch.merged == is_ancestor, branch.name
    # Counts computed from scratch agree with those carried forward.
    fresh, _ = describe(repo, {})
    assert [(b.ahead, b.behind) for b in fresh] == [(b.ahead, b.behind) for b in branches]
    return kept


def test_counts_carried_forward_equal_git(git_repo: GitRepo) -> None:
    repo = git_repo
    repo.commit({"a": "1\n"})
    repo.branch("topic")
    repo.branch("old")
    repo.orphan("unrelated")
    repo.commit({"u": "u\n"})
    repo.commit({"u": "u\nv\n"})
    repo.checkout("topic")
    repo.commit({"t": "1\n"})
    repo.commit({"t": "2\n"})
    repo.checkout("main")
    known = assert_matches_git(repo, {})
    repo.commit({"a": "2\n"})  # main moves forward: every branch falls further behind
    known = assert_matches_git(repo, known)
    repo.merge("topic", message="merge topic")  # topic's commits join main
    known = assert_matches_git(repo, known)
    repo.checkout("topic")
    repo.commit({"t": "3\n"})
    repo.checkout("main")
    repo.commit({"a": "3\n"})
    known = assert_matches_git(repo, known)
    repo.reset_branch("main", repo.head("main~2"))  # the default branch goes backwards
    repo.checkout("main")
    assert_matches_git(repo, known)


def test_stale_after_ninety_days(git_repo: GitRepo) -> None:
    git_repo.commit({"a": "1\n"}, date="2024-01-01T00:00:00+00:00")
    last = datetime(2024, 1, 1, tzinfo=UTC)
    fresh, _ = describe(git_repo, {}, now=last + timedelta(days=89))
    stale, _ = describe(git_repo, {}, now=last + timedelta(days=91))
    assert (fresh[0].stale, stale[0].stale) == (False, True)
