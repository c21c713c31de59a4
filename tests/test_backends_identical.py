"""The S3 backend and the local backend end with the same documents and the same state."""

from __future__ import annotations

import json
from pathlib import Path

from contract import layout
from contract.storage.local import LocalStorage
from contract.storage.s3 import S3Storage
from tests.support.documents import read_documents, without_run_timestamps
from tests.support.gitrepos import GitRepo
from worker.engine.pipeline import analyze_codebase


async def test_s3_and_local_documents_are_identical(
    edge_repo: GitRepo, s3_storage: S3Storage, local_storage: LocalStorage, tmp_path: Path
) -> None:
    for storage, work in ((s3_storage, "s3-work"), (local_storage, "local-work")):
        result = await analyze_codebase(str(edge_repo.path), storage, 5, tmp_path / work)
        assert result.commits_added > 0
    from_s3 = await read_documents(s3_storage, 5)
    from_local = await read_documents(local_storage, 5)
    assert without_run_timestamps(from_s3) == without_run_timestamps(from_local)
    assert from_s3["overview"]["total_commits"] == result.commits_added

    s3_keys = await s3_storage.list(layout.state_prefix(5))
    local_keys = await local_storage.list(layout.state_prefix(5))
    assert len(s3_keys) == len(local_keys) > 1
    manifest = json.loads((await s3_storage.get(layout.manifest(5))).data)  # type: ignore[union-attr]
    assert manifest["refs"] == {name: edge_repo.head(name) for name in edge_repo.branches()}


async def test_s3_incremental_run_after_new_commit(
    git_repo: GitRepo, s3_storage: S3Storage, tmp_path: Path
) -> None:
    git_repo.commit({"a.txt": "one\n"})
    await analyze_codebase(str(git_repo.path), s3_storage, 9, tmp_path / "work")
    git_repo.commit({"a.txt": "one\ntwo\n"})
    # A different machine: only the bucket is shared.
    result = await analyze_codebase(str(git_repo.path), s3_storage, 9, tmp_path / "other-work")
    assert (result.commits_added, result.commits_removed) == (1, 0)
    overview = (await read_documents(s3_storage, 9))["overview"]
    assert (overview["total_commits"], overview["additions_lines"]) == (2, 2)
