"""GitHub's side of the webhook endpoint: signed deliveries in, and arq's queue to read back."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from arq.jobs import JobDef
from pydantic import SecretStr

from contract.settings import Settings
from service.keys import REDIS

URL = "/webhooks/github"
SECRET = "webhook-secret-for-tests"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(event: str, body: bytes, delivery_id: str | None = None) -> dict[str, str]:
    """The headers GitHub sends with a delivery, signed with SECRET."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body),
    }


def webhook_settings(redis: str, tmp_path: Path, secret: str | None = SECRET) -> Settings:
    """Settings for an app on Redis URL `redis`, storing under `tmp_path`."""
    return Settings(
        github_webhook_secret=SecretStr(secret) if secret else None,
        redis_url=SecretStr(redis),
        storage_url=str(tmp_path / "storage"),
    )


async def deliver(
    client: TestClient[web.Request, web.Application],
    event: str,
    payload: Any,
    delivery_id: str | None = None,
) -> ClientResponse:
    """POST `payload` as GitHub delivers `event`: signed with SECRET, a fresh id unless given."""
    body = json.dumps(payload).encode()
    return await client.post(URL, data=body, headers=delivery_headers(event, body, delivery_id))


async def queued(client: TestClient[web.Request, web.Application]) -> list[JobDef]:
    """The jobs in arq's queue."""
    return await client.app[REDIS].queued_jobs()
