"""The web app: webhooks in, read API out. It never imports pygit2 or DuckDB."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from arq import create_pool

from contract.jobs import deserialize_job, serialize_job
from contract.settings import Settings, open_configured_storage, redis_settings
from service import health, metrics
from service.api import setup as setup_api
from service.keys import HTTP, REDIS, SETTINGS, STORAGE
from service.ui import setup as setup_ui
from service.webhooks import setup as setup_webhooks

log = logging.getLogger(__name__)

# GitHub caps webhook payloads at 25 MiB.
MAX_BODY = 25 * 1024 * 1024


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = redis_settings(app[SETTINGS])
    # Fail fast instead of retrying for seconds: a webhook answers 503 and GitHub shows it.
    settings.conn_retries = 0
    app[REDIS] = await create_pool(
        settings, job_serializer=serialize_job, job_deserializer=deserialize_job
    )
    yield
    await app[REDIS].aclose()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[STORAGE] = open_configured_storage(settings)
    yield
    await app[STORAGE].close()


async def _http(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    yield
    await app[HTTP].close()


async def _log_configuration(app: web.Application) -> None:
    for problem in app[SETTINGS].missing_for_web():
        log.warning("configuration: %s", problem)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app.on_startup.append(_log_configuration)
    app.cleanup_ctx.extend([_redis, _storage, _http])
    health.setup(app)
    metrics.setup(app)
    setup_webhooks(app)
    setup_api(app)
    setup_ui(app)
    return app
