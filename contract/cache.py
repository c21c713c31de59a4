"""A bounded in-process LRU map, shared by the read API's caches and the worker's memory of
its state objects."""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
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

    def clear(self) -> None:
        self._entries.clear()
        self._cost = 0

    def pop(self, key: K) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._cost -= found[2]
