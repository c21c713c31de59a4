"""Phase 2: the commits a change of branch heads adds and removes, against `git rev-list`; a
push that only adds walks back only to where it meets the stored history."""

from __future__ import annotations

from collections.abc import Callable

import pygit2
import pytest

from tests.support.gitrepos import GitRepo
from worker.engine import refs_delta
from worker.engine.refs_delta import compute_refs_delta


def rev_list(repo: GitRepo, include: list[str], exclude: list[str]) -> set[str]:
    if not include:
        return set()
    out = (
        repo.git("rev-list", *include, "--not", *exclude, "--")
        if exclude
        else repo.git("rev-list", *include, "--")
    )
    return set(out.split())


class Stored:
    """The stored commit set (what the old heads reach), counting how often it is asked for
    whole."""

    def __init__(self, repo: GitRepo, old: list[str]) -> None:
        self.shas = rev_list(repo, old, [])
        self.asked = 0

    def __call__(self) -> set[str]:
        self.asked += 1
        return set(self.shas)

    def among(self, shas: list[str]) -> set[str]:
        return self.shas & set(shas)


def heads(repo: GitRepo) -> list[str]:
    """The branch heads."""
    return sorted(set(repo.git("for-each-ref", "--format=%(objectname)", "refs/heads/").split()))


def delta_against_git(repo: GitRepo, old: list[str], change: Callable[[], None]) -> Stored:
    stored = Stored(repo, old)
    change()
    new = heads(repo)
    delta = compute_refs_delta(pygit2.Repository(str(repo.path)), old, new, stored, stored.among)
    assert set(delta.added) == rev_list(repo, new, old)
    assert len(delta.added) == len(set(delta.added))
    assert set(delta.removed) == rev_list(repo, old, new)
    return stored


@pytest.fixture
def history(git_repo: GitRepo) -> GitRepo:
    for n in range(6):
        git_repo.commit({f"f{n}.txt": f"{n}\n"}, message=f"c{n}")
    git_repo.branch("topic", "HEAD~2")
    return git_repo


def test_a_push_walks_only_what_it_adds(history: GitRepo) -> None:
    def push() -> None:
        for n in range(3):
            history.commit({"new.txt": f"{n}\n"}, message=f"new {n}")

    stored = delta_against_git(history, heads(history), push)
    assert stored.asked == 0  # the walk met the old head: no need for the whole stored set


def test_a_merge_of_new_work_asks_for_the_stored_set_once(history: GitRepo) -> None:
    def merge() -> None:
        history.checkout("topic")
        history.commit({"t1.txt": "t\n"}, message="t1")
        history.commit({"t2.txt": "t\n"}, message="t2")
        history.checkout("main")
        history.merge("topic")
        history.delete_branch("topic")

    stored = delta_against_git(history, heads(history), merge)
    assert stored.asked == 0


def test_a_long_new_branch_from_an_old_commit_asks_for_the_stored_set_once(
    history: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refs_delta, "OPTIMISTIC_STEPS", 3)

    def branch() -> None:
        history.branch("side", "HEAD~4")
        history.checkout("side")
        for n in range(5):
            history.commit({"side.txt": f"{n}\n"}, message=f"side {n}")
        history.checkout("main")

    stored = delta_against_git(history, heads(history), branch)
    assert stored.asked == 1


def test_a_new_branch_from_an_old_commit(history: GitRepo) -> None:
    def branch() -> None:
        history.branch("side", "HEAD~4")
        history.checkout("side")
        history.commit({"side.txt": "s\n"}, message="side")
        history.checkout("main")

    delta_against_git(history, heads(history), branch)


def test_a_force_push(history: GitRepo) -> None:
    def force() -> None:
        history.reset_branch("main", history.head("main~3"))
        history.commit({"other.txt": "o\n"}, message="other")

    delta_against_git(history, heads(history), force)


def test_deleting_a_branch_with_commits_of_its_own(history: GitRepo) -> None:
    history.checkout("topic")
    history.commit({"t.txt": "t\n"}, message="only on topic")
    history.checkout("main")
    delta_against_git(history, heads(history), lambda: history.delete_branch("topic"))


def test_deleting_a_branch_main_still_reaches(history: GitRepo) -> None:
    delta_against_git(history, heads(history), lambda: history.delete_branch("topic"))


def test_a_branch_moved_onto_a_commit_another_branch_holds(history: GitRepo) -> None:
    """main fast-forwards to a commit topic already had (not topic's head): nothing is added."""
    history.checkout("topic")
    shared = history.commit({"s.txt": "s\n"}, message="shared")
    history.commit({"s2.txt": "s\n"}, message="topic only")
    history.checkout("main")
    history.reset_branch("main", history.head("topic~3"))

    def fast_forward() -> None:
        history.reset_branch("main", shared)

    delta_against_git(history, heads(history), fast_forward)


def test_nothing_new(history: GitRepo) -> None:
    stored = delta_against_git(history, heads(history), lambda: None)
    assert stored.asked == 0
