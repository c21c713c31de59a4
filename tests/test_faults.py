"""Faults with the real worker processes (DESIGN.md, "Faults"): a worker killed with SIGKILL in
the middle of a backfill, or at any point of a sync (each phase, and between the commit and the
documents' publication), is replaced by another, which finishes the work; the documents end as a
clean run's and no job is left behind. Marked `fault`: `pytest -m fault` runs them alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import layout
from contract.jobs import RECOVER_ORPHANS
from service.keys import REDIS
from tests.support.documents import assert_equals_a_clean_run
from tests.support.failpoint_worker import HALF_CHECKPOINTED, PAUSE_AT, PAUSE_DIR, POINTS
from tests.support.gitrepos import GitRepo, build_long_history, git_commit_count
from tests.support.stack import ORG_ID, ORG_LOGIN, NotYet, Stack, add_repo, branch_refs
from worker.engine.store import Checkpoint, Manifest

pytestmark = pytest.mark.fault

HISTORY = 8000  # commits: the backfill's fetch and extraction each last a good fraction of a second
# A lock outlives a dead worker by this long here (a minute in production).
LOCK_TTL_S = "2"


@pytest.mark.parametrize("phase", ["fetch", "extract"])
async def test_a_worker_killed_mid_backfill_is_replaced(
    stack: Stack, tmp_path: Path, phase: str
) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    repo = build_long_history(tmp_path / "repos" / "long", HISTORY)
    cid = add_repo(fake, installation_id, "long", repo)
    (doomed,) = await stack.start_workers(1, concurrency=1, lock_ttl_s=LOCK_TTL_S)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, [cid], "all")

        async def in_phase() -> None:
            status = await stack.document(cid, "status")
            if status is None or status.get("phase") != phase:
                raise NotYet(f"status {status and (status['state'], status.get('phase'))}")

        await stack.wait_for(f"the backfill in its {phase} phase", in_phase, interval=0.002)
        stack.kill(doomed)
        await stack.start_workers(1, concurrency=1, lock_ttl_s=LOCK_TTL_S)

        await finished_by_another_worker(stack, cid, repo)
        recovered = await stack.settle({cid: repo})

    assert recovered.overviews[cid]["total_commits"] == git_commit_count(repo.path) == HISTORY
    await assert_equals_a_clean_run(
        stack.storage, cid, repo.path, tmp_path / "clean", full_name=f"{ORG_LOGIN}/long"
    )


async def test_a_backfill_killed_mid_extraction_resumes_from_its_checkpoint(
    stack: Stack, tmp_path: Path
) -> None:
    """SIGKILL right after the extraction checkpointed half of the history: the next worker takes
    the checkpointed rows over, extracts only the rest, and ends as a clean run."""
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    repo = build_long_history(tmp_path / "repos" / "long", HISTORY)
    cid = add_repo(fake, installation_id, "long", repo)
    pause = tmp_path / "pause"
    pause.mkdir()
    (doomed,) = await stack.start_workers(
        1,
        concurrency=1,
        module="tests.support.failpoint_worker",
        env={PAUSE_AT: HALF_CHECKPOINTED, PAUSE_DIR: str(pause)},
        lock_ttl_s=LOCK_TTL_S,
    )

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, [cid], "all")

        async def checkpointed() -> None:
            if not (pause / "paused").exists():
                raise NotYet("no checkpoint of half the history yet")

        await stack.wait_for("a checkpoint of half the extraction", checkpointed)
        stack.kill(doomed)
        stored = await stack.storage.get(layout.state_object(cid, "checkpoint.json"))
        assert stored is not None
        checkpoint = Checkpoint.model_validate_json(stored.data)
        kept = sum(ref.commits for ref in checkpoint.parts)
        assert 2 * kept >= HISTORY
        await stack.start_workers(1, concurrency=1, lock_ttl_s=LOCK_TTL_S)
        await finished_by_another_worker(stack, cid, repo)
        await stack.settle({cid: repo})

    manifest = await stack.storage.get(layout.manifest(cid))
    assert manifest is not None
    parts = {ref.name: ref for ref in Manifest.model_validate_json(manifest.data).parts}
    # The checkpointed parts are in the final state as they were: their commits were not redone.
    assert all(parts.get(ref.name) == ref for ref in checkpoint.parts)
    redone = HISTORY - kept
    assert redone <= HISTORY // 2
    assert await stack.storage.get(layout.state_object(cid, "checkpoint.json")) is None
    await assert_equals_a_clean_run(
        stack.storage, cid, repo.path, tmp_path / "clean", full_name=f"{ORG_LOGIN}/long"
    )


@pytest.mark.parametrize("where", POINTS)
async def test_a_worker_killed_at_any_point_of_a_sync_is_replaced(
    stack: Stack, tmp_path: Path, where: str
) -> None:
    """A force-push (two commits dropped, three added) and a new branch, synced by a worker that
    stops at `where` and is killed there."""
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    repo = GitRepo.init(tmp_path / "repos" / "app")
    for n in range(30):
        repo.commit({f"src/m{n % 5}.py": f"v = {n}\n" * (n % 7 + 1)}, message=f"c{n}")
    repo.branch("feature", "HEAD~4")
    cid = add_repo(fake, installation_id, "app", repo)
    (first,) = await stack.start_workers(1, concurrency=1, lock_ttl_s=LOCK_TTL_S)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, [cid], "all")
        await stack.settle({cid: repo})
        stack.stop(first)

        before = repo.head("main")
        repo.reset_branch("main", repo.head("main~2"))
        for n in range(3):
            repo.commit({f"src/new{n}.py": "n = 1\n" * (n + 2)}, message=f"new {n}")
        repo.branch("topic", "main~1")
        await stack.push(installation_id, cid, "main", before, repo.head("main"), forced=True)
        pause = tmp_path / "pause"
        pause.mkdir()
        (doomed,) = await stack.start_workers(
            1,
            concurrency=1,
            module="tests.support.failpoint_worker",
            env={PAUSE_AT: where, PAUSE_DIR: str(pause)},
            lock_ttl_s=LOCK_TTL_S,
        )

        async def stopped() -> str:
            if not (pause / "paused").exists():
                raise NotYet("the run has not reached it")
            return (pause / "paused").read_text()

        assert await stack.wait_for(f"the sync to stop at {where}", stopped) == where
        stack.kill(doomed)
        await stack.start_workers(1, concurrency=1, lock_ttl_s=LOCK_TTL_S)
        await finished_by_another_worker(stack, cid, repo)
        await stack.settle({cid: repo})

    await assert_equals_a_clean_run(
        stack.storage, cid, repo.path, tmp_path / "clean", full_name=f"{ORG_LOGIN}/app"
    )


async def finished_by_another_worker(stack: Stack, cid: int, repo: GitRepo) -> None:
    """Until the codebase's status says a run succeeded on the repository's branches."""

    async def finished() -> None:
        status = await stack.document(cid, "status")
        if status is None or status["state"] != "succeeded" or status["refs"] != branch_refs(repo):
            # What the workers' cron asks every 15 s: run again what no worker runs.
            await stack.client.app[REDIS].enqueue_job(RECOVER_ORPHANS)
            raise NotYet(f"status {status and (status['state'], status.get('phase'))}")

    await stack.wait_for("another worker to finish the work", finished, interval=1.0)
