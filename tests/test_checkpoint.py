"""A long extraction checkpoints its progress in storage, and the run after one that died takes the
checkpointed rows over instead of extracting those commits again, ending where a run that was never
interrupted ends. (The same with a worker process killed by SIGKILL: tests/test_faults.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import layout
from contract.storage.local import LocalStorage
from tests.support.documents import assert_equals_a_clean_run
from tests.support.gitrepos import GitRepo, build_long_history, git_commit_count
from worker.engine import extract, pipeline, store
from worker.engine.store import Manifest

CID = 1


class Died(Exception):
    """Stands for the worker's death right after a checkpoint."""


def die_after_checkpoint(monkeypatch: pytest.MonkeyPatch, share: float) -> list[int]:
    """Make the next run fail right after the first checkpoint holding at least `share` of its
    extraction; the list receives the `done` of each checkpoint it saves."""
    saved: list[int] = []
    original = pipeline.save_checkpoint

    async def save_then_die(
        run: pipeline._Run, parts: list[store.PartFiles], done: int, total: int
    ) -> None:
        await original(run, parts, done, total)
        saved.append(done)
        if done >= share * total:
            raise Died(f"after a checkpoint at {done} of {total}")

    monkeypatch.setattr(pipeline, "save_checkpoint", save_then_die)
    return saved


@pytest.fixture(autouse=True)
def small_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    small(monkeypatch)


def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints every few dozen commits, extracted in chunks of ten."""
    monkeypatch.setattr(pipeline, "CHECKPOINT_MIN_COMMITS", 20)
    monkeypatch.setattr(extract, "CHUNK_SIZE", 10)
    monkeypatch.setattr(extract, "GIT_CHUNK_SIZE", 10)


async def analyze(repo: GitRepo, storage: LocalStorage, work: Path) -> pipeline.RunResult:
    return await pipeline.analyze_codebase(str(repo.path), storage, CID, work, workers=1)


async def state_keys(storage: LocalStorage) -> set[str]:
    return set(await storage.list(layout.state_prefix(CID)))


async def named_by_manifest(storage: LocalStorage) -> set[str]:
    stored = await storage.get(layout.manifest(CID))
    assert stored is not None
    return Manifest.model_validate_json(stored.data).objects()


def test_only_a_long_extraction_checkpoints_in_bounded_parts() -> None:
    assert pipeline.checkpoint_interval(2 * pipeline.CHECKPOINT_MIN_COMMITS - 1) is None
    for total in (40, 41, 1000, 400_000):
        interval = pipeline.checkpoint_interval(total)
        assert interval is not None and interval >= pipeline.CHECKPOINT_MIN_COMMITS
        assert -(-total // interval) <= pipeline.CHECKPOINT_PARTS


async def test_a_run_that_died_mid_extraction_is_resumed_not_redone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo = build_long_history(tmp_path / "repo", 640)
    storage, work = LocalStorage(tmp_path / "storage"), tmp_path / "work"
    saved = die_after_checkpoint(monkeypatch, 0.5)
    with pytest.raises(Died):
        await analyze(repo, storage, work)
    assert saved and saved[-1] >= 320
    status = await pipeline.read_status(storage, CID)
    assert status is not None and status.state == "failed"
    assert await storage.get(layout.manifest(CID)) is None  # nothing committed

    monkeypatch.undo()
    small(monkeypatch)
    result = await analyze(repo, storage, work)

    assert result.commits_added == 640
    assert result.commits_resumed == saved[-1]
    assert 640 - result.commits_resumed <= 320  # at most half of the work done again
    # The checkpoint went with the commit, and nothing the dead run uploaded is left unnamed.
    assert await state_keys(storage) == await named_by_manifest(storage)
    await assert_equals_a_clean_run(storage, CID, repo.path, tmp_path / "clean")


async def test_a_resumed_run_on_another_machine_downloads_the_checkpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo = build_long_history(tmp_path / "repo", 300)
    storage = LocalStorage(tmp_path / "storage")
    saved = die_after_checkpoint(monkeypatch, 0.3)
    with pytest.raises(Died):
        await analyze(repo, storage, tmp_path / "work-a")
    monkeypatch.undo()
    small(monkeypatch)

    result = await analyze(repo, storage, tmp_path / "work-b")

    assert result.commits_resumed == saved[-1] > 0
    await assert_equals_a_clean_run(storage, CID, repo.path, tmp_path / "clean")


async def test_checkpointed_commits_the_branches_no_longer_reach_are_dropped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A force-push lands between the run that died and the next: the checkpoint holds rows of
    commits that are gone, which must not be counted."""
    repo = build_long_history(tmp_path / "repo", 400)
    repo.checkout("main")
    storage, work = LocalStorage(tmp_path / "storage"), tmp_path / "work"
    saved = die_after_checkpoint(monkeypatch, 0.5)
    with pytest.raises(Died):
        await analyze(repo, storage, work)
    monkeypatch.undo()
    small(monkeypatch)

    # Extraction goes newest first: the checkpoint holds the newest 200 or so, of which the
    # force-push keeps half.
    repo.reset_branch("main", repo.head("main~100"))
    repo.checkout("main")
    repo.commit({"src/new.txt": "a\nb\n"}, message="after the force-push")
    result = await analyze(repo, storage, work)

    assert result.commits_added == git_commit_count(repo.path) == 301
    assert 0 < result.commits_resumed < saved[-1]
    assert await state_keys(storage) == await named_by_manifest(storage)
    await assert_equals_a_clean_run(storage, CID, repo.path, tmp_path / "clean")


async def test_a_checkpoint_naming_a_lost_part_resumes_from_the_others(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo = build_long_history(tmp_path / "repo", 400)
    storage = LocalStorage(tmp_path / "storage")
    saved = die_after_checkpoint(monkeypatch, 0.5)
    with pytest.raises(Died):
        await analyze(repo, storage, tmp_path / "work-a")
    monkeypatch.undo()
    small(monkeypatch)
    checkpoint = store.Checkpoint.model_validate_json(
        (await storage.get(layout.state_object(CID, "checkpoint.json"))).data  # type: ignore[union-attr]
    )
    assert len(checkpoint.parts) == len(saved) >= 2
    lost = checkpoint.parts[0]
    await storage.delete(layout.state_object(CID, f"parts/{lost.name}.files.parquet"))

    result = await analyze(repo, storage, tmp_path / "work-b")

    assert result.commits_resumed == saved[-1] - lost.commits
    await assert_equals_a_clean_run(storage, CID, repo.path, tmp_path / "clean")


async def test_an_unreadable_checkpoint_is_started_over(tmp_path: Path) -> None:
    repo = build_long_history(tmp_path / "repo", 50)
    storage = LocalStorage(tmp_path / "storage")
    await storage.put(layout.state_object(CID, "checkpoint.json"), b"{not json")

    result = await analyze(repo, storage, tmp_path / "work")

    assert (result.commits_added, result.commits_resumed) == (50, 0)
    assert await state_keys(storage) == await named_by_manifest(storage)


async def test_many_pushes_keep_the_parts_few_and_the_figures_exact(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(store, "MAX_PARTS", 6)
    repo = build_long_history(tmp_path / "repo", 200)
    repo.checkout("main")
    storage, work = LocalStorage(tmp_path / "storage"), tmp_path / "work"
    await analyze(repo, storage, work)
    counts = []
    for n in range(12):
        repo.commit({f"src/push{n % 3}.txt": f"push {n}\n" * (n + 1)}, message=f"push {n}")
        await analyze(repo, storage, work)
        stored = await storage.get(layout.manifest(CID))
        assert stored is not None
        manifest = Manifest.model_validate_json(stored.data)
        counts.append(len(manifest.parts))
        assert sum(ref.commits for ref in manifest.parts) == 201 + n
    assert max(counts) <= 6
    assert min(counts) < max(counts)  # merged at least once
    assert await state_keys(storage) == await named_by_manifest(storage)
    await assert_equals_a_clean_run(storage, CID, repo.path, tmp_path / "clean")
