"""What git accepts but no document can show is clamped and counted, never fatal (DESIGN.md,
"Faults": a commit with an out-of-range date)."""

from __future__ import annotations

from pathlib import Path

from contract.documents import RunState
from contract.storage.local import LocalStorage
from tests.support.documents import read_documents, without_run_timestamps
from tests.support.gitrepos import GitRepo, git_commit_count
from worker.engine.pipeline import analyze_codebase

YEAR_10000 = "@253402300800 +0000"  # 10000-01-01T00:00:00Z: git and fsck --strict accept it


async def test_a_commit_dated_year_10000_is_clamped_and_counted(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.py": "a = 1\n"})
    git_repo.commit({"b.py": "b = 2\n"}, date=YEAR_10000, message="from the future")
    git_repo.run("fsck", "--strict")
    storage = LocalStorage(tmp_path / "storage")

    await analyze_codebase(str(git_repo.path), storage, 1, tmp_path / "work")
    git_repo.commit({"c.py": "c = 3\n"})  # and the codebase keeps working after it
    await analyze_codebase(str(git_repo.path), storage, 1, tmp_path / "work")

    documents = await read_documents(storage, 1)
    overview, status = documents["overview"], documents["status"]
    assert status["state"] == RunState.SUCCEEDED
    assert overview["total_commits"] == git_commit_count(git_repo.path)
    assert overview["last_commit_at"] == "9999-12-31T23:59:59Z"
    assert documents["branches"]["branches"][0]["last_commit_at"] != "9999-12-31T23:59:59Z"
    assert status["notices"] == [
        "1 commit has an author date outside the years 1 to 9999: counted at the nearest end "
        "of that span"
    ]

    fresh = LocalStorage(tmp_path / "fresh")
    await analyze_codebase(str(git_repo.path), fresh, 1, tmp_path / "fresh-work")
    assert without_run_timestamps(documents) == without_run_timestamps(
        await read_documents(fresh, 1)
    )


async def test_a_branch_whose_head_is_dated_year_10000_is_described(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.py": "a = 1\n"})
    git_repo.branch("future")
    git_repo.checkout("future")
    git_repo.commit({"b.py": "b = 2\n"}, date=YEAR_10000)
    git_repo.checkout("main")  # the default branch
    storage = LocalStorage(tmp_path / "storage")

    await analyze_codebase(str(git_repo.path), storage, 1, tmp_path / "work")

    branches = {b["name"]: b for b in (await read_documents(storage, 1))["branches"]["branches"]}
    assert branches["future"]["last_commit_at"] == "9999-12-31T23:59:59Z"
    assert (branches["future"]["ahead"], branches["future"]["behind"]) == (1, 0)
