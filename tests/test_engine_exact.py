"""The engine's numbers equal git's own on a repository holding every awkward case."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from contract.documents import EmailMode
from contract.storage.local import LocalStorage
from tests.support.gitrepos import (
    GitRepo,
    git_branch_count,
    git_byte_totals,
    git_commit_count,
    git_contributors,
    git_line_totals,
    git_merge_count,
    git_numstat,
    git_patch_bytes,
)
from worker.engine.pipeline import analyze_codebase


def read_document(root: Path, codebase_id: int, name: str) -> dict:
    return json.loads((root / "analytics" / str(codebase_id) / f"{name}.json").read_bytes())


@pytest.fixture
async def analyzed(edge_repo: GitRepo, tmp_path: Path) -> Path:
    storage = LocalStorage(tmp_path / "storage")
    await analyze_codebase(
        str(edge_repo.path), storage, 7, tmp_path / "work", email_mode=EmailMode.PLAIN, workers=2
    )
    await storage.close()
    return tmp_path


def stored_commits(root: Path) -> list[dict]:
    rows: list[dict] = []
    for part in sorted((root / "work" / "state" / "7" / "parts").glob("*.commits.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


async def test_totals_equal_git(analyzed: Path, edge_repo: GitRepo) -> None:
    overview = read_document(analyzed / "storage", 7, "overview")
    added, deleted = git_line_totals(edge_repo.path)
    added_bytes, deleted_bytes = git_byte_totals(edge_repo.path)
    assert (overview["additions_lines"], overview["deletions_lines"]) == (added, deleted)
    assert (overview["addition_bytes"], overview["deletion_bytes"]) == (added_bytes, deleted_bytes)
    assert overview["total_churn"] == added + deleted
    assert overview["net_sloc"] == added - deleted
    assert overview["total_commits"] == git_commit_count(edge_repo.path)
    assert overview["merge_commits"] == git_merge_count(edge_repo.path)
    assert overview["total_branches"] == git_branch_count(edge_repo.path)
    assert overview["total_contributors"] == len(git_contributors(edge_repo.path))


async def test_every_commit_equals_git(analyzed: Path, edge_repo: GitRepo) -> None:
    numstat = git_numstat(edge_repo.path)
    patch_bytes = git_patch_bytes(edge_repo.path)
    rows = stored_commits(analyzed)
    assert sorted(r["sha"] for r in rows) == sorted(numstat)
    for row in rows:
        sha = row["sha"]
        assert (row["additions_lines"], row["deletions_lines"]) == numstat[sha], sha
        assert (row["addition_bytes"], row["deletion_bytes"]) == patch_bytes[sha], sha


async def test_contributors_follow_the_mailmap(analyzed: Path, edge_repo: GitRepo) -> None:
    ownership = read_document(analyzed / "storage", 7, "ownership")
    emails = {c["email"].lower() for c in ownership["contributors"]}
    assert emails == git_contributors(edge_repo.path)
    for contributor in ownership["contributors"]:
        digest = hashlib.sha256(contributor["email"].lower().encode()).hexdigest()
        assert contributor["email_sha256"] == digest
    assert sum(c["commits"] for c in ownership["contributors"]) == git_commit_count(edge_repo.path)
    churns = [c["additions_lines"] + c["deletions_lines"] for c in ownership["contributors"]]
    assert churns == sorted(churns, reverse=True)
