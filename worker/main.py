"""The arq worker: `python -m worker` (the Procfile's worker line) runs `Worker` on
`WorkerSettings`; `arq --check worker.main.WorkerSettings` is its health check.

arq reads `WorkerSettings`' attributes as they are when it looks the class up, and a plain class
body runs at import. So that REDIS_URL and WORKER_CONCURRENCY are read when the worker starts
(and importing this module needs no environment), `WorkerSettings` is built on that lookup by
the module's `__getattr__` (PEP 562): `worker_settings()` returns the plain class arq expects.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import aiohttp
import arq.worker
from arq import cron, func
from arq.worker import Function
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contract.jobs import (
    PURGE_CODEBASE,
    PURGE_INSTALLATION,
    RECONCILE,
    RECOVER_ORPHANS,
    REFRESH_CODEBASE,
    REGISTER_REPOSITORIES,
    SET_INSTALLATION_SUSPENDED,
    SYNC_CODEBASE,
    deserialize_job,
    serialize_job,
)
from contract.logs import configure_logging
from contract.redis_keys import worker_health_key
from contract.settings import Settings, open_configured_storage, redis_settings
from worker.jobs import installation, purge, reconcile, recover, sync
from worker.jobs.context import JOB_TIMEOUT_S, RetryPolicy
from worker.jobs.github_app import GitHubApp
from worker.jobs.metrics import WorkerMetrics, instrumented, serve_metrics

log = logging.getLogger(__name__)

RECONCILE_TIMEOUT_S = 30 * 60
# Waiting for a codebase's lock is a retry too, and a backfill holds it for long: the jobs that
# wait bound their real failures themselves (RetryPolicy.max_failures), not through max_tries.
LOCK_WAITING_MAX_TRIES = 10_000
MAX_TRIES = 10
# How often a worker records that it is alive; `arq --check` (the Kubernetes liveness probe)
# fails once the record is this old. arq's default, an hour, is too slow for a probe.
HEALTH_CHECK_INTERVAL_S = 30
# Redis unreachable (down, restarting, still loading its data): what the worker waits out.
REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
REDIS_RETRY_MAX_S = 5.0


def _job(name: str, function: Callable[..., Awaitable[Any]], max_tries: int) -> Function:
    """Job `name`, counted by outcome (instrumented), with the worker's timeout."""
    return func(instrumented(name, function), name=name, timeout=JOB_TIMEOUT_S, max_tries=max_tries)


FUNCTIONS: list[Function] = [
    _job(SYNC_CODEBASE, sync.sync_codebase, LOCK_WAITING_MAX_TRIES),
    _job(REGISTER_REPOSITORIES, installation.register_repositories, MAX_TRIES),
    _job(PURGE_CODEBASE, purge.purge_codebase, LOCK_WAITING_MAX_TRIES),
    _job(PURGE_INSTALLATION, purge.purge_installation, LOCK_WAITING_MAX_TRIES),
    _job(REFRESH_CODEBASE, installation.refresh_codebase, LOCK_WAITING_MAX_TRIES),
    _job(SET_INSTALLATION_SUSPENDED, installation.set_installation_suspended, MAX_TRIES),
]

# Every 10 minutes; `unique` (the default) runs it on one worker only. Enqueueing "reconcile"
# by name runs it at once.
CRON_JOBS = [
    cron(
        instrumented(RECONCILE, reconcile.reconcile),
        name=RECONCILE,
        minute=set(range(0, 60, reconcile.RECONCILE_PERIOD_S // 60)),
        timeout=RECONCILE_TIMEOUT_S,
    ),
    # A job of a worker that died runs again within a couple of minutes, not hours.
    cron(
        instrumented(RECOVER_ORPHANS, recover.recover_orphans),
        name=RECOVER_ORPHANS,
        second=set(range(0, 60, recover.RECOVER_PERIOD_S)),
        timeout=RECONCILE_TIMEOUT_S,
    ),
]


async def startup(ctx: dict[str, Any]) -> None:
    """Build the shared clients once per worker process.

    Settings (and storage) already in `ctx` are used as given: that is how tests pass theirs.
    """
    settings: Settings = ctx.get("settings") or Settings()
    configure_logging(settings.log_format)
    for problem in settings.missing_for_worker():
        log.warning("configuration: %s", problem)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    storage = ctx.get("storage") or open_configured_storage(settings)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60, connect=10))
    try:
        github = GitHubApp.from_settings(settings, session)
    except BaseException:
        await session.close()
        await storage.close()
        raise
    ctx.update(settings=settings, storage=storage, session=session, github=github)
    ctx["tokens"] = github.tokens
    ctx.setdefault("retry_policy", RetryPolicy(base_s=settings.retry_base_s))
    ctx.setdefault("metrics", WorkerMetrics.create())
    if settings.worker_metrics_port:
        ctx["metrics_server"] = await serve_metrics(ctx, settings.worker_metrics_port)
    log.info("worker ready: storage %r, GitHub %r", storage, github)


async def shutdown(ctx: dict[str, Any]) -> None:
    if (server := ctx.pop("metrics_server", None)) is not None:
        await server.cleanup()
    if (session := ctx.pop("session", None)) is not None:
        await session.close()
    if (storage := ctx.pop("storage", None)) is not None:
        await storage.close()


def worker_settings(config: Settings | None = None) -> type:
    """The settings class arq reads, for `config` (default: the environment now)."""
    settings = config or Settings()
    connection = redis_settings(settings)

    class WorkerSettings:
        functions = FUNCTIONS
        cron_jobs = CRON_JOBS
        redis_settings = connection
        max_jobs = settings.worker_concurrency
        job_timeout = JOB_TIMEOUT_S
        # One record per host, not arq's one per queue: a worker that stops deletes its record,
        # and that must not fail the other workers' probes.
        health_check_key = worker_health_key(socket.gethostname())
        health_check_interval = HEALTH_CHECK_INTERVAL_S
        job_serializer = serialize_job
        job_deserializer = deserialize_job
        on_startup = startup
        on_shutdown = shutdown
        # startup() finds the Settings here, built once with the rest.
        ctx: ClassVar[dict[str, Any]] = {"settings": settings}

    return WorkerSettings


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        return worker_settings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Worker(arq.worker.Worker):
    """arq's worker, which outlives Redis going away.

    arq's own worker exits on the first Redis error of its polling loop, so a Redis restart
    stops every worker at once, and each must wait for its supervisor to start it again. This
    one logs the outage, polls again with a growing pause (up to 5 s) and carries on once Redis
    answers, restarted and possibly empty: reconcile rebuilds the jobs a lost queue held, and
    recover_orphans frees those whose worker could not record their end.
    """

    _outage_since: float | None = None
    _pause_s = 0.0

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_UNREACHABLE as exc:
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                log.warning("Redis unreachable (%s): polling again until it answers", exc)
            self._pause_s = min(max(self._pause_s * 2, self.poll_delay_s), REDIS_RETRY_MAX_S)
            await asyncio.sleep(self._pause_s)
            return
        if self._outage_since is not None:
            down_s = time.monotonic() - self._outage_since
            log.warning("Redis answers again after %.1f s unreachable", down_s)
            self._outage_since, self._pause_s = None, 0.0

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except REDIS_UNREACHABLE:
            # arq counts a job as running (a slot of max_jobs taken) before it asks Redis to
            # mark it started; that request failed, so no job runs in the slot: give it back.
            self.job_counter -= 1
            self.sem.release()
            raise


def run_worker(config: Settings | None = None) -> None:
    """Run a worker until SIGINT or SIGTERM (`python -m worker`)."""
    settings = config or Settings()
    configure_logging(settings.log_format)
    settings_cls = worker_settings(settings)
    # arq annotates get_kwargs' values as NameError.
    kwargs: dict[str, Any] = dict(arq.worker.get_kwargs(settings_cls))
    Worker(**kwargs).run()
