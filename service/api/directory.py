"""Lookups the read API makes besides the document it serves, cached so that a request costs
at most one stored document: which org a codebase belongs to, and which org id a login names."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from contract import layout
from contract.cache import MISSING, BoundedCache
from contract.registry import CodebaseEntry, read_entry
from contract.storage import ObjectTooLarge, Storage
from service.api.cache import SingleFlight

_ORGS_PREFIX = "analytics/orgs/"
_ORG_SUMMARY = "org_summary.json"
# An org summary holds totals and a language list: this is generous.
_ORG_SUMMARY_MAX_BYTES = 4 * 1024 * 1024
_PARALLEL_READS = 16


class CodebaseDirectory:
    """Registry entries by codebase id, each kept `ttl` seconds (absence too)."""

    def __init__(
        self,
        storage: Storage,
        *,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self._cache: BoundedCache[int, CodebaseEntry | None] = BoundedCache(
            max_entries=max_entries, ttl=ttl, clock=clock
        )
        self._reads: SingleFlight[int, CodebaseEntry | None] = SingleFlight()

    async def entry(self, codebase_id: int) -> CodebaseEntry | None:
        cached = self._cache.get(codebase_id)
        if cached is not MISSING:
            return cached
        return await self._reads.run(codebase_id, lambda: self._read(codebase_id))

    async def _read(self, codebase_id: int) -> CodebaseEntry | None:
        entry = await read_entry(self.storage, codebase_id)
        self._cache.put(codebase_id, entry)
        return entry

    async def close(self) -> None:
        await self._reads.close()


class OrgDirectory:
    """Org login → id for callers who see every org (user principals know their own orgs from
    GitHub). Built from the exported org summaries: one listing of `analytics/orgs/` and one
    small read per org, redone on a miss at most once every `refresh_interval` seconds."""

    def __init__(
        self,
        storage: Storage,
        *,
        refresh_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._by_login: dict[str, int] = {}
        self._refreshed_at: float | None = None
        self._refreshing: SingleFlight[str, None] = SingleFlight()

    async def org_id(self, login: str) -> int | None:
        found = self._by_login.get(login.lower())
        if found is not None:
            return found
        due = (
            self._refreshed_at is None
            or self._clock() - self._refreshed_at >= self.refresh_interval
        )
        if due:
            await self._refreshing.run("all", self._refresh)
        return self._by_login.get(login.lower())

    async def close(self) -> None:
        await self._refreshing.close()

    async def _refresh(self) -> None:
        keys = await self.storage.list(_ORGS_PREFIX)
        org_ids = sorted(
            {
                int(parts[2])
                for parts in (key.split("/") for key in keys)
                if len(parts) == 4 and parts[2].isdigit() and parts[3] == _ORG_SUMMARY
            }
        )
        limit = asyncio.Semaphore(_PARALLEL_READS)

        async def login_of(org_id: int) -> tuple[str, int] | None:
            async with limit:
                key = layout.org_document(org_id, "org_summary")
                try:
                    found = await self.storage.read_capped(key, _ORG_SUMMARY_MAX_BYTES)
                except ObjectTooLarge:
                    return None  # not an org summary of ours: no login to learn from it
            if found is None:
                return None
            try:
                login = json.loads(found[1]).get("org_login")
            except (ValueError, AttributeError):
                return None
            return (login.lower(), org_id) if isinstance(login, str) else None

        pairs = await asyncio.gather(*(login_of(org_id) for org_id in org_ids))
        self._by_login = dict(pair for pair in pairs if pair is not None)
        self._refreshed_at = self._clock()
