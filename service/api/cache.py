"""Small in-process caches for the read API: bounded, optionally expiring, and single-flight."""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Missing(enum.Enum):
    """What a cache lookup returns for a key it does not hold (None may be a cached value)."""

    MISSING = enum.auto()


MISSING = Missing.MISSING


class BoundedCache(Generic[K, V]):
    """An LRU map bounded in entries and in total cost; entries may expire `ttl` seconds after
    they were stored. A value costlier than the whole budget is not kept at all."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_cost: int | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_cost = max_cost
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float, int]] = OrderedDict()
        self._cost = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def cost(self) -> int:
        return self._cost

    def get(self, key: K) -> V | Missing:
        found = self._entries.get(key)
        if found is None:
            return MISSING
        value, expires_at, _ = found
        # Without a ttl nothing expires: a hit need not read the clock.
        if self.ttl is not None and expires_at <= self._clock():
            self.pop(key)
            return MISSING
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, cost: int = 1) -> None:
        self.pop(key)
        if self.max_cost is not None and cost > self.max_cost:
            return
        expires_at = float("inf") if self.ttl is None else self._clock() + self.ttl
        self._entries[key] = (value, expires_at, cost)
        self._cost += cost
        while len(self._entries) > self.max_entries or (
            self.max_cost is not None and self._cost > self.max_cost
        ):
            _, (_, _, evicted_cost) = self._entries.popitem(last=False)
            self._cost -= evicted_cost

    def pop(self, key: K) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._cost -= found[2]


class SingleFlight(Generic[K, V]):
    """Concurrent calls for one key share a single run of the work (one GitHub resolution, one
    read of a large document), which goes on even if the caller that started it goes away."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:

            async def call() -> V:
                return await work()

            task = asyncio.create_task(call())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            # Marks the exception retrieved when every waiter has gone; waiters still see it.
            task.exception()

    async def close(self) -> None:
        """Cancel the work still running (at application shutdown)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
