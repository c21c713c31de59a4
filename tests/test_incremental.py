"""A run on existing storage processes exactly the difference and ends where a fresh run ends."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract import layout
from contract.documents import Phase
from contract.storage.local import LocalStorage
from tests.support.documents import read_documents, without_run_timestamps
from tests.support.gitrepos import GitRepo, git_commit_count
from worker.engine import pipeline, store
from worker.engine.pipeline import RunResult, analyze_codebase
from worker.engine.store import TALLY_JOURNAL_LIMIT, Manifest


class Codebase:
    """One repository analyzed again and again into the same storage and work dir."""

    def __init__(self, repo: GitRepo, root: Path) -> None:
        self.repo = repo
        self.root = root
        self.storage = LocalStorage(root / "storage")
        self.extracted: list[int] = []

    async def sync(self) -> RunResult:
        def progress(phase: Phase, done: int, total: int) -> None:
            if phase is Phase.EXTRACT and done == 0:
                self.extracted.append(total)

        return await analyze_codebase(
            str(self.repo.path), self.storage, 1, self.root / "work", on_progress=progress
        )

    async def equals_fresh_run(self, name: str) -> None:
        fresh = LocalStorage(self.root / f"fresh-{name}")
        await analyze_codebase(str(self.repo.path), fresh, 1, self.root / f"fresh-work-{name}")
        incremental = without_run_timestamps(await read_documents(self.storage, 1))
        assert incremental == without_run_timestamps(await read_documents(fresh, 1))
        assert incremental["overview"]["total_commits"] == git_commit_count(self.repo.path)


def commit_n(repo: GitRepo, n: int, prefix: str) -> list[str]:
    return [
        repo.commit({f"{prefix}/{i}.txt": f"line {i}\n" * (i + 1)}, message=f"{prefix} {i}")
        for i in range(n)
    ]


@pytest.fixture
async def codebase(git_repo: GitRepo, tmp_path: Path) -> Codebase:
    commit_n(git_repo, 3, "base")
    git_repo.branch("topic")
    codebase = Codebase(git_repo, tmp_path)
    await codebase.sync()
    return codebase


@pytest.mark.parametrize("k", [1, 2, 7])
async def test_k_new_commits_extract_exactly_k(codebase: Codebase, k: int) -> None:
    commit_n(codebase.repo, k, "new")
    result = await codebase.sync()
    assert (result.commits_added, result.commits_removed) == (k, 0)
    assert codebase.extracted[-1] == k
    status = (await read_documents(codebase.storage, 1))["status"]
    assert status["state"] == "succeeded"
    assert status["last_run"]["commits_added"] == k
    assert status["last_run"]["commits_removed"] == 0
    assert status["refs"]["main"] == codebase.repo.head("main")
    await codebase.equals_fresh_run("k")


async def test_nothing_new_extracts_nothing_and_rewrites_nothing(codebase: Codebase) -> None:
    result = await codebase.sync()
    assert (result.commits_added, result.commits_removed) == (0, 0)
    assert result.documents_written == []
    assert codebase.extracted[-1] == 0


async def test_force_push_removes_exactly_the_dropped_commits(codebase: Codebase) -> None:
    repo = codebase.repo
    base = repo.head("main")
    commit_n(repo, 4, "doomed")
    await codebase.sync()
    repo.reset_branch("main", base)
    repo.checkout("main")
    replacement = commit_n(repo, 2, "replacement")
    result = await codebase.sync()
    assert (result.commits_added, result.commits_removed) == (len(replacement), 4)
    status = (await read_documents(codebase.storage, 1))["status"]
    assert (status["last_run"]["commits_added"], status["last_run"]["commits_removed"]) == (2, 4)
    await codebase.equals_fresh_run("force")


async def test_deleted_branch_removes_only_its_own_commits(codebase: Codebase) -> None:
    repo = codebase.repo
    repo.checkout("topic")
    commit_n(repo, 3, "topic")
    repo.checkout("main")
    first = await codebase.sync()
    assert first.commits_added == 3
    repo.delete_branch("topic")
    result = await codebase.sync()
    assert (result.commits_added, result.commits_removed) == (0, 3)
    await codebase.equals_fresh_run("delete")


async def test_merged_branch_deleted_removes_nothing(codebase: Codebase) -> None:
    repo = codebase.repo
    repo.checkout("topic")
    commit_n(repo, 2, "topic")
    repo.checkout("main")
    repo.merge("topic", message="merge topic")
    assert (await codebase.sync()).commits_added == 3
    repo.delete_branch("topic")
    result = await codebase.sync()
    assert (result.commits_added, result.commits_removed) == (0, 0)
    await codebase.equals_fresh_run("merged")


async def test_lost_cache_after_force_push_still_converges(codebase: Codebase) -> None:
    repo = codebase.repo
    base = repo.head("main")
    commit_n(repo, 3, "doomed")
    await codebase.sync()
    repo.reset_branch("main", base)
    repo.checkout("main")
    commit_n(repo, 1, "other")
    # The dropped commits are gone from the source, and another machine picks the codebase up:
    # it has the storage but no local mirror or parts.
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "--prune=now", "--quiet")
    shutil.rmtree(codebase.root / "work")
    result = await codebase.sync()
    assert result.full_walk
    assert (result.commits_added, result.commits_removed) == (1, 3)
    await codebase.equals_fresh_run("lost")


async def test_a_url_source_goes_through_git_transport_and_ends_the_same(
    codebase: Codebase,
) -> None:
    repo = codebase.repo
    url = f"file://{repo.path}"
    over_url = LocalStorage(codebase.root / "over-url")
    first = await analyze_codebase(url, over_url, 1, codebase.root / "url-work")
    commit_n(repo, 2, "more")
    await codebase.sync()
    second = await analyze_codebase(url, over_url, 1, codebase.root / "url-work")
    assert (first.commits_added, second.commits_added) == (3, 2)
    mirror = codebase.root / "url-work" / "repos" / "1.git"
    assert not (mirror / "objects" / "info" / "alternates").exists()
    assert without_run_timestamps(await read_documents(over_url, 1)) == without_run_timestamps(
        await read_documents(codebase.storage, 1)
    )


async def test_pushes_journal_their_tally_then_fold_it(git_repo: GitRepo, tmp_path: Path) -> None:
    """A push whose cells are few beside the tally's writes only its own, named in the
    manifest's tally journal and merged on load; at TALLY_JOURNAL_LIMIT the journal is folded
    into one tally. Storage holds no tally object the manifest does not name, and the
    documents are a fresh run's before and after the fold."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for week in range(40):  # 80 cells: two people, forty weeks
        for person in (("Ann", "ann@example.com"), ("Bo", "bo@example.com")):
            git_repo.commit(
                {f"{person[0]}.txt": f"{week}\n"}, author=person, date=start + timedelta(weeks=week)
            )
    codebase = Codebase(git_repo, tmp_path)
    await codebase.sync()
    journal = []
    for n in range(TALLY_JOURNAL_LIMIT + 2):
        git_repo.commit({"push.txt": f"{n}\n"}, date=start + timedelta(weeks=41, hours=n))
        await codebase.sync()
        stored = await codebase.storage.get(layout.manifest(1))
        assert stored is not None
        manifest = Manifest.model_validate_json(stored.data)
        journal.append(len(manifest.tally_journal))
        prefix = layout.state_object(1, "tally/")
        named = {key for key in manifest.objects() if key.startswith(prefix)}
        assert set(await codebase.storage.list(prefix)) == named
        if len(manifest.tally_journal) == TALLY_JOURNAL_LIMIT:
            await codebase.equals_fresh_run("journal")
    assert journal == [*range(1, TALLY_JOURNAL_LIMIT + 1), 0, 1]
    await codebase.equals_fresh_run("folded")


async def test_someone_turning_bot_recounts_the_weeks_of_the_people_they_co_authored_with(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    """A push counts again only the contributor_activity weeks of the people it touches, unless
    someone became a bot: Bo's share of a commit Ann co-authored with him changes when Ann's
    own new commit, as `ann[bot]` with her email, makes her a bot, though Bo is not in the push."""
    ann, bo = ("Ann", "ann@example.com"), ("Bo", "bo@example.com")
    git_repo.commit(
        {"a.txt": "one\ntwo\nthree\nfour\n"},
        message="Pair work\n\nCo-authored-by: Ann <ann@example.com>\n",
        author=bo,
    )
    git_repo.commit({"b.txt": "b\n"}, author=ann)
    codebase = Codebase(git_repo, tmp_path)
    await codebase.sync()
    git_repo.commit({"c.txt": "c\n"}, author=("ann[bot]", "ann@example.com"))
    await codebase.sync()
    documents = await read_documents(codebase.storage, 1)
    people = {row["name"]: row for row in documents["contributor_activity"]["contributors"]}
    assert set(people) == {"Bo"}
    assert people["Bo"]["authored_additions_lines"] == 4  # all of the pair's commit, now
    await codebase.equals_fresh_run("bot")


@pytest.mark.parametrize("machine", ["same process", "new process", "new machine"])
async def test_a_push_takes_over_what_the_last_run_counted_where_it_is_kept(
    git_repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, machine: str
) -> None:
    """The last run's aggregation is kept in the worker's memory and on its machine: a push in
    the same process or a new one counts again only what it touched; on a new machine, or
    without what was kept, it counts everything. Each as a fresh run counts it."""
    git_repo.commit({"a.py": "a = 1\n"}, author=("Ann", "ann@example.com"))
    git_repo.commit({"b.py": "b = 1\n"}, author=("Bo", "bo@example.com"))
    codebase = Codebase(git_repo, tmp_path)
    await codebase.sync()
    if machine != "same process":
        store.forget_state()
    if machine == "new machine":
        shutil.rmtree(tmp_path / "work")
    reuses: list[object] = []
    counted = pipeline.aggregate_tally

    def spy(*args: Any) -> Any:
        reuses.append(args[-1])
        return counted(*args)

    monkeypatch.setattr(pipeline, "aggregate_tally", spy)
    git_repo.commit({"a.py": "a = 2\n"}, author=("Ann", "ann@example.com"))
    await codebase.sync()
    assert len(reuses) == 1 and (reuses[0] is None) == (machine == "new machine")
    await codebase.equals_fresh_run(machine.replace(" ", "-"))
