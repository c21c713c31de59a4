"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web
from arq.connections import ArqRedis

from contract.storage import Storage, StorageError
from service.keys import REDIS, STORAGE

READY_PROBE = "meta/ready-probe"

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def unready(redis: ArqRedis, storage: Storage) -> list[str]:
    """Why the process cannot serve (empty when it can): Redis and storage must answer. It costs
    one Redis round trip and one storage metadata read, however many codebases there are."""
    problems = []
    try:
        await redis.ping()
    except Exception:  # any failure to reach Redis means not ready
        problems.append("redis unreachable")
    try:
        # A key that need not exist: its metadata read proves storage answers and lets us in.
        await storage.stat(READY_PROBE)
    except StorageError:
        problems.append("storage unreachable")
    return problems


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    problems = await unready(request.app[REDIS], request.app[STORAGE])
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    app.add_routes(routes)
