"""Reading stored documents for the read API: cheap version checks, a size cap, a memory cache.

Polling costs at most one metadata read (`Storage.stat`) per document and freshness window; a
document is read (`Storage.read_capped`, which refuses one over the cap before reading it where
the backend can) only when its version is not the one in memory.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from contract.cache import MISSING, BoundedCache
from contract.storage import ObjectInfo, ObjectTooLarge, Storage
from service.api.cache import SingleFlight
from service.api.errors import DocumentTooLarge, StoredDocumentInvalid

T = TypeVar("T")

# Decoding a document larger than this runs in a thread so that the event loop keeps serving.
_DECODE_INLINE_BYTES = 256 * 1024


# --- Decoding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoder(Generic[T]):
    """How a document's bytes become what handlers use; `cost` estimates the memory it takes
    per stored byte (parsed JSON takes several times its text)."""

    name: str
    decode: Callable[[bytes], T]
    cost: int


def _identity(data: bytes) -> bytes:
    return data


def _json_object(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _json_list(data: bytes) -> list[Any]:
    value = json.loads(data)
    if not isinstance(value, list):
        raise ValueError("not a JSON list")
    return value


RAW: Decoder[bytes] = Decoder("raw", _identity, 1)
JSON_OBJECT: Decoder[dict[str, Any]] = Decoder("json", _json_object, 6)
JSON_LIST: Decoder[list[Any]] = Decoder("json-list", _json_list, 6)


@dataclass(frozen=True)
class Loaded(Generic[T]):
    info: ObjectInfo
    content: T


@dataclass
class _Entry:
    info: ObjectInfo | None  # None: the object did not exist when last checked
    decoder: str | None
    loaded: Loaded[Any] | None  # what load() answers for this version and decoder
    checked_at: float


class DocumentReader:
    """Stored documents by key, kept in memory (bounded) and revalidated by one metadata read
    once they are older than `fresh_for` seconds; within that window no storage call is made."""

    def __init__(
        self,
        storage: Storage,
        *,
        max_document_bytes: int,
        cache_bytes: int,
        fresh_for: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.max_document_bytes = max_document_bytes
        self.fresh_for = fresh_for
        self._clock = clock
        self._cache: BoundedCache[str, _Entry] = BoundedCache(
            max_entries=100_000, max_cost=cache_bytes
        )
        self._loads: SingleFlight[tuple[str, str], Loaded[Any] | None] = SingleFlight()
        self._checks: SingleFlight[str, ObjectInfo | None] = SingleFlight()

    async def probe(self, key: str) -> ObjectInfo | None:
        """The document's current version, or None if it does not exist."""
        entry = self._cache.get(key)
        if entry is not MISSING and self._clock() - entry.checked_at < self.fresh_for:
            return entry.info
        # Requests that find the document stale at once share one metadata read.
        return await self._checks.run(key, lambda: self._check(key))

    async def _check(self, key: str) -> ObjectInfo | None:
        now = self._clock()
        entry = self._cache.get(key)
        info = await self.storage.stat(key)
        if entry is not MISSING and entry.info == info:
            entry.checked_at = now
        elif info is None:
            self._cache.put(key, _Entry(None, None, None, now), cost=len(key))
        else:
            self._cache.pop(key)  # changed: the next load reads the new version
        return info

    async def load(self, key: str, info: ObjectInfo, decoder: Decoder[T]) -> Loaded[T] | None:
        """The document as `decoder` makes it, read only if the cache lacks version `info`.
        None if it has disappeared since `info` was learnt."""
        entry = self._cache.get(key)
        if entry is not MISSING and entry.info == info and entry.decoder == decoder.name:
            return entry.loaded
        if info.size > self.max_document_bytes:
            raise DocumentTooLarge(key, info.size, self.max_document_bytes)
        loaded: Loaded[T] | None = await self._loads.run(
            (key, decoder.name), lambda: self._read(key, decoder)
        )
        return loaded

    async def recheck(self, key: str) -> ObjectInfo | None:
        """As probe, but from a metadata read whatever the cache holds."""
        return await self._checks.run(key, lambda: self._check(key))

    async def load_named(self, key: str, decoder: Decoder[T]) -> T | None:
        """An object that is never written again once written (named by its content), read
        only if not in memory; None if there is none at `key`."""
        entry = self._cache.get(key)
        if entry is not MISSING and entry.loaded is not None and entry.decoder == decoder.name:
            content: T = entry.loaded.content
            return content
        loaded: Loaded[T] | None = await self._loads.run(
            (key, decoder.name), lambda: self._read(key, decoder)
        )
        return None if loaded is None else loaded.content

    async def close(self) -> None:
        await self._checks.close()
        await self._loads.close()

    async def _read(self, key: str, decoder: Decoder[T]) -> Loaded[T] | None:
        try:
            found = await self.storage.read_capped(key, self.max_document_bytes)
        except ObjectTooLarge as exc:
            # Grown past the cap since it was probed: the API's answer, not a storage outage.
            raise DocumentTooLarge(key, exc.size, exc.limit) from exc
        if found is None:
            self._cache.pop(key)
            return None
        info, data = found
        try:
            if len(data) > _DECODE_INLINE_BYTES:
                content = await asyncio.to_thread(decoder.decode, data)
            else:
                content = decoder.decode(data)
        except ValueError as exc:  # pydantic's ValidationError and JSONDecodeError included
            raise StoredDocumentInvalid(key, f"not a valid {decoder.name} document") from exc
        loaded = Loaded(info, content)
        self._cache.put(
            key, _Entry(info, decoder.name, loaded, self._clock()), cost=len(data) * decoder.cost
        )
        return loaded
