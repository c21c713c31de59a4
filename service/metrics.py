"""GET /metrics: the web process's metrics in Prometheus' text format: webhook deliveries by
event and answer, and the queue depth.

`gitstats_queue_depth` is what the workers are scaled on (deploy/kubernetes/scaledobject.yaml):
arq's queue is a Redis sorted set, which KEDA's Redis scaler cannot read, so the web process
counts it at each scrape.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from arq.constants import default_queue_name
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from redis.exceptions import RedisError

from contract.jobs import due_jobs
from service.keys import REDIS

# A scrape waits no longer than this for Redis (Prometheus' default scrape timeout is 10 s).
REDIS_DEADLINE_S = 2.0

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Metrics:
    """One registry per app (tests build many apps in one process)."""

    registry: CollectorRegistry
    queue_depth: Gauge
    webhooks: Counter

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        webhooks = Counter(
            "gitstats_webhooks",
            "Webhook deliveries by event and by the HTTP status answered",
            ["event", "status"],
            registry=registry,
        )
        queue_depth = Gauge(
            "gitstats_queue_depth",
            "Jobs in arq's queue that are due: waiting for a worker or running (deferred retries "
            "not counted)",
            ["queue"],
            registry=registry,
        )
        return cls(registry, queue_depth, webhooks)


METRICS = web.AppKey("metrics", Metrics)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    found = request.app[METRICS]
    try:
        async with asyncio.timeout(REDIS_DEADLINE_S):
            depth = await due_jobs(request.app[REDIS])
    except (RedisError, OSError, TimeoutError):
        # No value rather than a stale one: the scaler then keeps the workers it has.
        found.queue_depth.clear()
    else:
        found.queue_depth.labels(queue=default_queue_name).set(depth)
    return web.Response(
        body=generate_latest(found.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def setup(app: web.Application) -> None:
    app[METRICS] = Metrics.create()
    app.add_routes(routes)
