"""Faults with the real worker processes (DESIGN.md, "Faults"): a worker killed with SIGKILL in
the middle of a backfill is replaced by another, which finishes the work; the documents end as a
clean run's. Marked `fault`: `pytest -m fault` runs them alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contract.jobs import RECOVER_ORPHANS
from service.keys import REDIS
from tests.support.documents import assert_equals_a_clean_run
from tests.support.gitrepos import build_long_history, git_commit_count
from tests.support.stack import ORG_ID, ORG_LOGIN, NotYet, Stack, add_repo

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

        async def finished() -> dict[str, Any]:
            status = await stack.document(cid, "status")
            if status is None or status["state"] != "succeeded":
                # What the workers' cron asks every minute: run again what no worker runs.
                await stack.client.app[REDIS].enqueue_job(RECOVER_ORPHANS)
                raise NotYet(f"status {status and status['state']}")
            return status

        await stack.wait_for("another worker to finish the backfill", finished, interval=1.0)
        recovered = await stack.settle({cid: repo})

    assert recovered.overviews[cid]["total_commits"] == git_commit_count(repo.path) == HISTORY
    await assert_equals_a_clean_run(
        stack.storage, cid, repo.path, tmp_path / "clean", full_name=f"{ORG_LOGIN}/long"
    )
