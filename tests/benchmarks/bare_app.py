"""The baseline of the web benchmarks: a bare aiohttp app, one process, on 127.0.0.1.

    python -m tests.benchmarks.bare_app --port P [--get PATH FILE CONTENT_TYPE]...
                                        [--accept PATH]... [--access-log]

Each `--get` route answers 200 with the bytes of FILE (read once at start) and that Content-Type,
and does nothing else: no authentication, no storage, no ETag. Each `--accept` route reads the
request's body and answers 202 with an empty body. GET /healthz answers 200 for readiness.
aiohttp's defaults otherwise (`web.run_app`): its access log stays silent since no logging is
configured, unless `--access-log` configures logging the way `python -m service` does (INFO, the
same format, to stderr), which turns aiohttp's access log on: a line per request.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fixed_answer(body: bytes, content_type: str) -> Handler:
    headers = {"Content-Type": content_type}  # as given, charset parameter included

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    return answer


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_app(gets: list[tuple[str, bytes, str]], accepts: list[str]) -> web.Application:
    # The same body size limit as the web app (GitHub's 25 MiB cap on webhook payloads).
    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    for path, body, content_type in gets:
        app.router.add_get(path, fixed_answer(body, content_type))
    for path in accepts:
        app.router.add_post(path, accept)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bare_app", description=__doc__
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--get",
        nargs=3,
        action="append",
        default=[],
        metavar=("PATH", "FILE", "CONTENT_TYPE"),
        help="answer GET PATH with FILE's bytes",
    )
    parser.add_argument(
        "--accept", action="append", default=[], metavar="PATH", help="POST PATH: read, 202"
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="configure logging as python -m service does (aiohttp's access log on)",
    )
    args = parser.parse_args(argv)
    if args.access_log:  # as service/__main__.py does
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    gets = [(path, Path(file).read_bytes(), ctype) for path, file, ctype in args.get]
    web.run_app(build_app(gets, args.accept), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
