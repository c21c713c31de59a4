"""The worker's metrics, served on its own GET /metrics (WORKER_METRICS_PORT): jobs by name and
outcome, sync duration and phases, push-to-fresh latency, storage and GitHub errors, and the
queue depth as this worker sees it. One registry per worker process, built at start-up."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from arq import Retry
from arq.constants import default_queue_name
from arq.typing import WorkerCoroutine
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from redis.exceptions import RedisError

from contract.documents import Phase
from contract.jobs import due_jobs
from contract.logs import log_context
from contract.storage import StorageError
from worker.engine.errors import SourceError

log = logging.getLogger(__name__)

# Seconds: a push takes well under one, a backfill up to an hour or two.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 7200)


@dataclass(frozen=True)
class WorkerMetrics:
    registry: CollectorRegistry
    jobs: Counter
    sync_seconds: Histogram
    phase_seconds: Histogram
    push_to_fresh_seconds: Histogram
    errors: Counter
    queue_depth: Gauge

    @classmethod
    def create(cls) -> WorkerMetrics:
        registry = CollectorRegistry()
        return cls(
            registry,
            Counter(
                "gitstats_jobs",
                "Jobs run, by name and outcome (succeeded, skipped, failed, retried, error)",
                ["job", "outcome"],
                registry=registry,
            ),
            Histogram(
                "gitstats_sync_seconds",
                "Engine time of one sync run",
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            Histogram(
                "gitstats_sync_phase_seconds",
                "Time of each engine phase in a sync run",
                ["phase"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            Histogram(
                "gitstats_push_to_fresh_seconds",
                "From a sync's enqueueing (the push, or the first of the pushes it covers) to "
                "its documents and org files published",
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            Counter(
                "gitstats_dependency_errors",
                "Failures of storage and of GitHub (its API or git host) met by jobs",
                ["dependency"],
                registry=registry,
            ),
            Gauge(
                "gitstats_queue_depth",
                "Jobs in arq's queue that are due, as this worker last saw them",
                ["queue"],
                registry=registry,
            ),
        )

    def observe_sync(self, phase_seconds: dict[Phase, float], total_s: float) -> None:
        self.sync_seconds.observe(total_s)
        for phase, seconds in phase_seconds.items():
            self.phase_seconds.labels(phase=phase.value).observe(seconds)

    def observe_fresh(self, enqueued_at: datetime | None) -> None:
        if enqueued_at is not None:
            latency = (datetime.now(UTC) - enqueued_at).total_seconds()
            self.push_to_fresh_seconds.observe(max(latency, 0.0))

    def count_error(self, exc: BaseException) -> None:
        if isinstance(exc, StorageError):
            self.errors.labels(dependency="storage").inc()
        elif isinstance(exc, SourceError):
            self.errors.labels(dependency="github").inc()


def outcome_of(result: Any) -> str:
    if isinstance(result, dict) and "failed" in result:
        return "failed"
    if isinstance(result, dict) and "skipped" in result:
        return "skipped"
    return "succeeded"


def instrumented(name: str, job: Callable[..., Awaitable[Any]]) -> WorkerCoroutine:
    """`job` counted by outcome, its log lines carrying its job id (and codebase id)."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any) -> Any:
        request = args[0] if args and isinstance(args[0], dict) else {}
        metrics: WorkerMetrics = ctx["metrics"]
        with log_context(job_id=ctx.get("job_id"), codebase_id=request.get("codebase_id")):
            try:
                result = await job(ctx, *args)
            except Retry:
                metrics.jobs.labels(job=name, outcome="retried").inc()
                raise
            except Exception:
                metrics.jobs.labels(job=name, outcome="error").inc()
                raise
        metrics.jobs.labels(job=name, outcome=outcome_of(result)).inc()
        return result

    return run


async def serve_metrics(ctx: dict[str, Any], port: int) -> web.AppRunner | None:
    """GET /metrics on `port` (all interfaces); None when the port cannot be had."""

    async def metrics(request: web.Request) -> web.Response:
        found: WorkerMetrics = ctx["metrics"]
        try:
            depth = await due_jobs(ctx["redis"])
        except (RedisError, OSError):
            found.queue_depth.clear()
        else:
            found.queue_depth.labels(queue=default_queue_name).set(depth)
        return web.Response(
            body=generate_latest(found.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, port=port).start()
    except OSError as exc:
        # Several workers on one host: the first has the port, the others go without.
        log.warning("worker metrics: port %d unavailable (%s); not serving /metrics", port, exc)
        await runner.cleanup()
        return None
    log.info("worker metrics on port %d", port)
    return runner
