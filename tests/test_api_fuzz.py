"""The read API fuzzed from its own OpenAPI document (schemathesis): whatever the parameters,
no answer is a 5xx and every answer matches its schema. The seed is fixed, so a run is
repeatable; GITSTATS_FUZZ_EXAMPLES asks for more examples per operation."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis import checks

from contract.storage.local import LocalStorage
from service.api.openapi import build_openapi
from service.app import create_app
from tests.support.api import ADMIN, Codebase, api_settings, publish_codebase, publish_org
from tests.support.fake_github import running_fake_github

EXAMPLES = int(os.environ.get("GITSTATS_FUZZ_EXAMPLES", "25"))

schema = schemathesis.openapi.from_dict(build_openapi())

CODEBASES = [
    Codebase(codebase_id=1, org_id=1001, org_login="acme", name="alpha", branches=12),
    Codebase(codebase_id=2, org_id=1001, org_login="acme", name="beta"),
    Codebase(codebase_id=3, org_id=1001, org_login="acme", name="gamma"),  # not exported
]


class ServedApp:
    """The whole web app on 127.0.0.1 from a thread of its own, for a synchronous client."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""

    def __enter__(self) -> str:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self.url

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="module")
def base_url(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    storage = LocalStorage(tmp_path_factory.mktemp("fuzz") / "storage")

    async def publish() -> None:
        for codebase in CODEBASES:
            await publish_codebase(storage, codebase, exported=codebase.codebase_id != 3)
        await publish_org(storage, CODEBASES, pending=[3])

    asyncio.run(publish())
    with (
        running_fake_github() as github,
        ServedApp(create_app(api_settings(storage, redis_url, github))) as url,
    ):
        yield url


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the fixed seed: the same cases on every run
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_read_api_keeps_its_schema(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(
        base_url=base_url,
        headers=dict(ADMIN),
        # A cursor is opaque and `since` must not follow `until`: valid-looking values the
        # schema cannot rule out are answered 400, by design. What must hold for every request:
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
            checks.response_headers_conformance,
        ],
        excluded_checks=[checks.positive_data_acceptance],
    )
