"""Every real payload of `@octokit/webhooks-examples`, correctly signed, gets a 2xx, never a 5xx."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from tests.support.redis_server import flush_redis
from tests.test_webhooks import URL, delivery_headers, webhook_settings

ROOT = Path(__file__).resolve().parent.parent
NPM_PREFIX = ROOT / ".cache" / "npm"
PACKAGE = "@octokit/webhooks-examples@^7"
EXAMPLES = NPM_PREFIX / "node_modules" / "@octokit" / "webhooks-examples"

pytestmark = pytest.mark.asyncio(loop_scope="module")


def install_examples() -> Path | None:
    """The package's folder, installed into NPM_PREFIX if missing; None without npm."""
    if not (EXAMPLES / "package.json").is_file():
        npm = shutil.which("npm")
        if npm is None:
            return None
        result = subprocess.run(
            [npm, "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund", PACKAGE],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm install {PACKAGE} failed:\n{result.stdout}{result.stderr}")
    return EXAMPLES


def example_cases() -> list[Any]:
    """One case per example: (event, payload), named variant/event/index."""
    package = install_examples()
    if package is None:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="npm is not on PATH"))]
    cases = []
    # Each variant (api.github.com, ghes-3.x) has an index.json: [{name, examples: [...]}, ...].
    for index in sorted(package.glob("*/index.json")):
        for webhook in json.loads(index.read_text()):
            for number, payload in enumerate(webhook["examples"]):
                case_id = f"{index.parent.name}/{webhook['name']}/{number}"
                cases.append(pytest.param(webhook["name"], payload, id=case_id))
    assert cases, f"no examples found under {package}"
    return cases


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """One app for every example: each delivery has its own id, so they do not interfere."""
    flush_redis(redis_url)
    app = create_app(webhook_settings(redis_url, tmp_path_factory.mktemp("examples")))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.parametrize(("event", "payload"), example_cases())
async def test_example_payload_gets_2xx(
    client: TestClient[web.Request, web.Application], event: str, payload: dict[str, Any]
) -> None:
    body = json.dumps(payload).encode()
    headers = delivery_headers(event, body)

    response = await client.post(URL, data=body, headers=headers)

    assert 200 <= response.status < 300, await response.text()
