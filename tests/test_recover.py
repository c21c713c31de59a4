"""A job whose worker died runs again within two minutes (DESIGN.md, "Faults").

arq keeps a started job marked in progress until the longest job timeout (two hours) has passed.
recover_orphans frees the job of a dead worker: its codebase's lock is gone (a dead worker's lock
outlives it by at most LOCK_TTL_S) and it started longer ago than that. These tests mark a job
started as arq does, at a chosen age, and run the real recover_orphans and worker on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.constants import in_progress_key_prefix

from contract.jobs import RECOVER_ORPHANS
from contract.redis_keys import codebase_lock_key
from contract.settings import Settings
from tests.support.jobs import Org
from worker.jobs.context import IN_PROGRESS_TIMEOUT_S
from worker.jobs.recover import RECOVER_PERIOD_S, recover_orphans
from worker.main import CRON_JOBS

PROMISED_S = 120  # DESIGN.md: another worker takes the work over within 2 minutes


async def started_ago(org: Org, job_id: str, seconds: float) -> str:
    """Mark `job_id` in progress as arq does when a worker starts it, `seconds` ago."""
    key = in_progress_key_prefix + job_id
    await org.redis.psetex(key, int((IN_PROGRESS_TIMEOUT_S - seconds) * 1000), b"1")
    return key


async def recover(org: Org) -> dict[str, Any]:
    """recover_orphans, called as a worker calls it (it needs only Redis and the settings): a
    burst worker would wait forever on the job it leaves marked."""
    ctx = dict.fromkeys(("storage", "github", "retry_policy", "metrics"))
    return await recover_orphans({**ctx, "settings": org.config, "redis": org.redis})


async def test_a_dead_workers_sync_runs_again_once_its_lock_is_gone(org: Org) -> None:
    sync_job = await org.push(0)
    mark = await started_ago(org, sync_job, org.config.lock_ttl_s + 1)
    recover_job = await org.enqueue(RECOVER_ORPHANS)

    # A burst worker runs until the queue is empty: forever, if the job stayed marked.
    await asyncio.wait_for(org.run_worker(), timeout=60)

    assert (await org.result(recover_job)).result == {"recovered": 1}
    assert not await org.redis.exists(mark)
    assert (await org.result(sync_job)).success
    assert (await org.status(0)).state == "succeeded"


async def test_a_job_that_may_not_hold_its_lock_yet_is_left_alone(org: Org) -> None:
    sync_job = await org.push(0)
    mark = await started_ago(org, sync_job, org.config.lock_ttl_s - 5)

    assert await recover(org) == {"recovered": 0}
    assert await org.redis.exists(mark)


async def test_a_job_whose_lock_is_held_is_left_alone(org: Org) -> None:
    sync_job = await org.push(0)
    mark = await started_ago(org, sync_job, 3600)
    await org.redis.set(codebase_lock_key(org.id(0)), b"a live worker", px=60_000)

    assert await recover(org) == {"recovered": 0}
    assert await org.redis.exists(mark)


def test_the_deployed_schedule_keeps_the_promise() -> None:
    """A worker dies holding a lock just renewed: the lock lasts LOCK_TTL_S more, the job is
    then old enough, and the next recover_orphans comes at most RECOVER_PERIOD_S later."""
    (recover,) = [job for job in CRON_JOBS if job.name == RECOVER_ORPHANS]
    seconds = sorted(recover.second)  # type: ignore[arg-type]
    gaps = [b - a for a, b in zip(seconds, [*seconds[1:], seconds[0] + 60], strict=True)]
    assert recover.minute is None and set(gaps) == {RECOVER_PERIOD_S}
    worst_s = Settings().lock_ttl_s + RECOVER_PERIOD_S
    assert worst_s < PROMISED_S, f"a dead worker's job may wait {worst_s:.0f} s"
