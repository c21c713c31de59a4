"""`python -m service`: the web app on $PORT, with an embedded Valkey when REDIS_URL is unset."""

from __future__ import annotations

import contextlib
import logging

from aiohttp import web
from pydantic import SecretStr

from contract.embedded_redis import embedded_redis
from contract.logs import configure_logging
from contract.settings import Settings
from service.app import create_app


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_format)
    with contextlib.ExitStack() as stack:
        if settings.redis_url is None:
            server = stack.enter_context(embedded_redis(settings.work_dir / "valkey"))
            settings = settings.model_copy(update={"redis_url": SecretStr(server.connection_url)})
            print(
                f"REDIS_URL={server.connection_url} (embedded Valkey; give it to the workers)",
                flush=True,
            )
        # One formatted line per request would halve what a process serves to polling frontends:
        # the access log is opt-in (ACCESS_LOG=true); errors and webhooks log on their own.
        web.run_app(
            create_app(settings),
            port=settings.port,
            access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        )


if __name__ == "__main__":
    main()
