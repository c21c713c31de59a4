"""Recover the jobs of a worker that died (SIGKILL, a lost machine).

arq marks a started job in progress until the longest job timeout has passed (two hours), so a
job whose worker died waits that long before any other worker may run it. A job that holds its
codebase's lock while it runs (sync, purge, refresh), whose lock is gone, and which started
longer ago than a lock outlives a dead worker belongs to no live worker: its mark is removed,
and the next free worker runs it again (every job may run more than once).

A dead worker's lock expires at most `lock_ttl_s` after it died, so its job is free to run again
at most `lock_ttl_s + RECOVER_PERIOD_S` after (75 s with the defaults): within the 2 minutes
DESIGN.md promises.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from arq.constants import default_queue_name, in_progress_key_prefix
from arq.jobs import Job

from contract.jobs import PURGE_CODEBASE, REFRESH_CODEBASE, SYNC_CODEBASE, deserialize_job
from contract.redis_keys import codebase_lock_key
from worker.jobs.context import IN_PROGRESS_TIMEOUT_S, Services

log = logging.getLogger(__name__)

# How often recover_orphans runs (seconds; divides a minute).
RECOVER_PERIOD_S = 15
# The jobs that take their codebase's lock as they start and hold it until they end.
LOCKING_JOBS = frozenset({SYNC_CODEBASE, PURGE_CODEBASE, REFRESH_CODEBASE})


async def _started_ms_ago(services: Services, key: str) -> float:
    remaining = await services.redis.pttl(key)
    return IN_PROGRESS_TIMEOUT_S * 1000 - max(remaining, 0)


async def _orphaned(services: Services, key: str, grace_ms: float) -> bool:
    job_id = key.removeprefix(in_progress_key_prefix)
    info = await Job(job_id, services.redis, _deserializer=deserialize_job).info()
    if info is None or info.function not in LOCKING_JOBS or not info.args:
        return False
    request = info.args[0]
    codebase_id = request.get("codebase_id") if isinstance(request, dict) else None
    if codebase_id is None or await services.redis.exists(codebase_lock_key(codebase_id)):
        return False
    return await _started_ms_ago(services, key) > grace_ms


async def recover_orphans(ctx: dict[str, Any]) -> dict[str, Any]:
    """Let any worker run again the jobs no live worker is running."""
    services = Services.of(ctx)
    # A job younger than this may not have taken its lock yet. (One that takes longer to is
    # run a second time at worst, and that run finds the lock taken and comes back later.)
    grace_ms = services.settings.lock_ttl_s * 1000
    recovered = []
    # A started job stays in arq's queue, scored by when it could start, until it ends: the due
    # part of the queue holds every job in progress, and costs what the queue holds, not what
    # all of Redis holds (delivery ids, results).
    now_ms = int(time.time() * 1000)
    for raw in await services.redis.zrangebyscore(default_queue_name, "-inf", now_ms):
        job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        key = in_progress_key_prefix + job_id
        if await services.redis.exists(key) and await _orphaned(services, key, grace_ms):
            await services.redis.delete(key)
            recovered.append(job_id)
    if recovered:
        log.warning("recovered %d jobs of a worker that died: %s", len(recovered), recovered)
    return {"recovered": len(recovered)}
