"""What git accepts but no document can show is clamped and counted, never fatal (DESIGN.md,
"Faults": a commit with an out-of-range date)."""

from __future__ import annotations

import json
from pathlib import Path

from contract.documents import EmailMode, RunState
from contract.storage.local import LocalStorage
from tests.support.documents import read_documents, without_run_timestamps
from tests.support.gitrepos import GitRepo, git_commit_count
from worker.engine.branches import MAX_DESCRIBED_BRANCHES
from worker.engine.extract import MAX_IDENTITY_CHARS
from worker.engine.pipeline import analyze_codebase

PLAIN = EmailMode.PLAIN

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


def shortened(character: str) -> str:
    return character * (MAX_IDENTITY_CHARS - 1) + "\u2026"


def commit_by(repo: GitRepo, name: bytes, email: bytes) -> str:
    """A commit on the current branch by an author git's porcelain could not be given (a name
    longer than an environment variable may be), written as a raw object."""
    tree, parent = repo.git("write-tree"), repo.head()
    body = (
        f"tree {tree}\nparent {parent}\n".encode()
        + b"author "
        + name
        + b" <"
        + email
        + b"> 1700000000 +0000\n"
        + b"committer C <c@example.com> 1700000000 +0000\n\nlong name\n"
    )
    sha = repo.run("hash-object", "-t", "commit", "-w", "--stdin", input=body).decode().strip()
    repo.run("update-ref", "HEAD", sha)
    return sha


async def test_a_huge_author_name_is_shortened_and_counted(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.py": "a = 1\n"})
    commit_by(git_repo, b"N" * 5_000_000, b"long@example.com")
    commit_by(git_repo, "é".encode() * 2_000, b"x" * 300 + b"@example.com")
    git_repo.run("fsck", "--strict")
    storage = LocalStorage(tmp_path / "storage")

    await analyze_codebase(str(git_repo.path), storage, 1, tmp_path / "work", email_mode=PLAIN)

    documents = await read_documents(storage, 1)
    names = {c["name"] for c in documents["ownership"]["contributors"]}
    assert names >= {
        "N" * (MAX_IDENTITY_CHARS - 1) + "\u2026",
        "é" * (MAX_IDENTITY_CHARS - 1) + "\u2026",
    }
    emails = {c["email"] for c in documents["ownership"]["contributors"]}
    assert "x" * (MAX_IDENTITY_CHARS - 1) + "\u2026" in emails
    assert max(len(json.dumps(d)) for d in documents.values()) < 100_000
    assert documents["status"]["notices"] == [
        f"2 authors have a name or email over {MAX_IDENTITY_CHARS} characters: shortened to it"
    ]
    assert documents["overview"]["total_commits"] == git_commit_count(git_repo.path)


async def test_past_the_branch_cap_the_most_recent_branches_are_described(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.py": "a = 1\n"}, date="2024-01-01T00:00:00+00:00")
    heads = {}
    for name, day in [("old", "2024-02-01"), ("new-1", "2024-03-01"), ("new-2", "2024-03-02")]:
        git_repo.branch(name)
        git_repo.checkout(name)
        heads[name] = git_repo.commit({f"{name}.py": "x\n"}, date=f"{day}T00:00:00+00:00")
        git_repo.checkout("main")
    git_repo.delete_branch("old")
    # 1,000 branches at the oldest side commit, as a repository with many stale branches has.
    updates = "".join(f"create refs/heads/old-{n:04d} {heads['old']}\n" for n in range(1000))
    git_repo.run("update-ref", "--stdin", input=updates.encode())
    storage = LocalStorage(tmp_path / "storage")

    await analyze_codebase(str(git_repo.path), storage, 1, tmp_path / "work")

    documents = await read_documents(storage, 1)
    listed = [b["name"] for b in documents["branches"]["branches"]]
    assert len(listed) == MAX_DESCRIBED_BRANCHES
    assert listed[:3] == ["main", "new-1", "new-2"]  # the default first, then by name
    assert "old-0996" in listed
    assert "old-0997" not in listed  # ties on recency go by name
    assert documents["branches"]["total_branches"] == 1003
    assert documents["overview"]["total_branches"] == 1003
    assert documents["overview"]["total_commits"] == git_commit_count(git_repo.path)
    assert documents["status"]["notices"] == [
        "1003 branches: the branches document describes the default one and the 999 most "
        "recently committed others"
    ]
