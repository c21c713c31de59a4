"""A faulty HTTP proxy on loopback: in front of a real server (the S3 one), it answers some
requests 503, drops the connection of others before answering, and delays others, at set rates
drawn from a seeded generator, so that a run sees storage fail the way a cloud's does."""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

# What S3 says when it sheds load; clients retry it.
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Faults:
    error_rate: float = 0.0  # answered 503 SlowDown
    drop_rate: float = 0.0  # connection closed with no answer
    delay_rate: float = 0.0  # answered after `delay_s`
    delay_s: float = 0.5
    seed: int = 7
    counts: dict[str, int] = field(default_factory=lambda: {"error": 0, "drop": 0, "delay": 0})


class FaultyProxy:
    """Serves on 127.0.0.1 from a thread of its own; `url` is where clients go instead."""

    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults
        self._random = random.Random(faults.seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    def _draw(self) -> str | None:
        roll, faults = self._random.random(), self.faults
        for kind, rate in (
            ("error", faults.error_rate),
            ("drop", faults.drop_rate),
            ("delay", faults.delay_rate),
        ):
            if roll < rate:
                faults.counts[kind] += 1
                return kind
            roll -= rate
        return None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._draw()
        if fault == "error":
            return web.Response(status=503, body=SLOW_DOWN, content_type="application/xml")
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        if fault == "delay":
            await asyncio.sleep(self.faults.delay_s)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        assert self._session is not None
        async with self._session.request(
            request.method, self.upstream + request.rel_url.raw_path_qs, headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            # Content-Length stays: a HEAD's is the object's size.
            answer = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in _HOP_BY_HOP or k.lower() == "content-length"
            }
            return web.Response(status=upstream.status, body=payload, headers=answer)
