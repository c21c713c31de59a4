"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from contract.storage import StorageError
from service.keys import REDIS, STORAGE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    problems = []
    try:
        await request.app[REDIS].ping()
    except Exception:  # any failure to reach Redis means not ready
        problems.append("redis unreachable")
    try:
        await request.app[STORAGE].list("meta/codebases/")
    except StorageError:
        problems.append("storage unreachable")
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    app.add_routes(routes)
