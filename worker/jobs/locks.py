"""Locks in Redis: one job at a time syncs or purges a codebase, and one at a time changes an
installation (registers, suspends, purges its repositories).

A Redis key with a random token and a TTL, renewed while held; released by compare-and-delete so
that a job never releases a lock that expired and another job now holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from redis.exceptions import RedisError

from contract.redis_keys import codebase_lock_key, installation_lock_key

log = logging.getLogger(__name__)

# The lock outlives a crashed worker by at most this long (LOCK_TTL_S); a live one renews it
# three times as often.
DEFAULT_TTL_S = 60.0

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class LockBusy(Exception):
    """Another job holds the lock."""


@dataclass(frozen=True)
class Lease:
    """A held lock: `held()` asks Redis whether it still is (it may have expired while the
    worker stalled, and another job taken it)."""

    redis: ArqRedis
    key: str
    token: str = field(repr=False)

    async def held(self) -> bool:
        return bool(await self.redis.get(self.key) == self.token.encode())


def codebase_lock(
    redis: ArqRedis, codebase_id: int, ttl_s: float = DEFAULT_TTL_S
) -> contextlib.AbstractAsyncContextManager[Lease]:
    """Hold the codebase's lock (renewed while held); LockBusy if another job has it."""
    return _lock(redis, codebase_lock_key(codebase_id), ttl_s)


def installation_lock(
    redis: ArqRedis, installation_id: int, ttl_s: float = DEFAULT_TTL_S
) -> contextlib.AbstractAsyncContextManager[Lease]:
    """Hold the installation's lock: lifecycle jobs read GitHub and act one at a time, so
    whatever order their webhooks came in, the last one acts on what GitHub says last."""
    return _lock(redis, installation_lock_key(installation_id), ttl_s)


@contextlib.asynccontextmanager
async def _lock(redis: ArqRedis, key: str, ttl_s: float) -> AsyncIterator[Lease]:
    token, ttl_ms = secrets.token_hex(16), int(ttl_s * 1000)
    if not await redis.set(key, token, nx=True, px=ttl_ms):
        raise LockBusy(key)
    renewer = asyncio.create_task(_keep_lock(redis, key, token, ttl_ms))
    try:
        yield Lease(redis, key, token)
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        # Compare-and-delete: never release a lock that expired and another job now holds.
        await redis.eval(_RELEASE, 1, key, token)  # type: ignore[misc]


async def _keep_lock(redis: ArqRedis, key: str, token: str, ttl_ms: int) -> None:
    while True:
        await asyncio.sleep(ttl_ms / 3000)
        try:
            extended = await redis.eval(_EXTEND, 1, key, token, str(ttl_ms))  # type: ignore[misc]
        except RedisError as exc:
            log.warning("cannot renew %s: %s", key, type(exc).__name__)
            continue
        if not extended:
            # The run goes on until it would write: it asks the lease then, and stops.
            log.error("lost %s while running: another job may sync the same codebase", key)
            return
