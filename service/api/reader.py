"""Reading stored documents for the read API: cheap version checks, a size cap, a memory cache.

The `Storage` contract has `get` only, which reads a whole object to learn its ETag. Polling
needs less: `ObjectAccess` adds a metadata read (`stat`: the object's version and size) and a
read that refuses an object over a cap before reading it. Until `Storage` grows those methods
itself, the adapters below reach under the local and S3 backends.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat as stat_module
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from service.api.cache import MISSING, BoundedCache, SingleFlight
from service.api.errors import DocumentTooLarge, StoredDocumentInvalid
from service.contract.storage import LocalStorage, S3Storage, Storage, StorageError

T = TypeVar("T")

# Decoding a document larger than this runs in a thread so that the event loop keeps serving.
_DECODE_INLINE_BYTES = 256 * 1024
_S3_MISSING = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object's version (changes with every write) and size in bytes."""

    version: str
    size: int


class ObjectAccess(Protocol):
    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's version and size from one metadata read, or None if it does not exist."""

    async def read(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        """The object and the version of exactly those bytes; DocumentTooLarge over `max_bytes`."""


class LocalObjects:
    """Objects of a LocalStorage. Objects are only ever replaced by a rename, so inode, mtime
    and size identify a version, and one open file is one whole version."""

    def __init__(self, storage: LocalStorage) -> None:
        self.root = storage.root

    def _path(self, key: str) -> Path:
        # Keys come from service.contract.layout with integer ids, never from the caller.
        return self.root.joinpath(*key.split("/"))

    @staticmethod
    def _info(st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}", st.st_size)

    def _stat_sync(self, key: str) -> ObjectInfo | None:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot read storage object {key!r}: {exc.strerror}") from exc
        return self._info(st) if stat_module.S_ISREG(st.st_mode) else None

    def _read_sync(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        try:
            with open(self._path(key), "rb") as file:
                info = self._info(os.fstat(file.fileno()))
                if info.size > max_bytes:
                    raise DocumentTooLarge(key, info.size, max_bytes)
                data = file.read(max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot read storage object {key!r}: {exc.strerror}") from exc
        if len(data) > max_bytes:
            raise DocumentTooLarge(key, len(data), max_bytes)
        return info, data

    async def stat(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._stat_sync, key)

    async def read(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        return await asyncio.to_thread(self._read_sync, key, max_bytes)


class S3Objects:
    """Objects of an S3Storage, through its shared client: HEAD for `stat`, and a GET whose
    Content-Length is checked before the body is read."""

    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage

    async def _call(
        self, operation: str, key: str, call: Callable[[Any, str], Awaitable[T]]
    ) -> T | None:
        """`call(client, bucket key)`; None if there is no such object, else StorageError
        naming the error code only (S3 error bodies may carry an access key id)."""
        s3 = await self.storage._s3()
        try:
            return await call(s3, self.storage.prefix + key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            if code in _S3_MISSING:
                return None
            raise StorageError(f"S3 {operation} failed for key {key!r}: {code}") from exc
        except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
            detail = type(exc).__name__
            raise StorageError(f"S3 {operation} failed for key {key!r}: {detail}") from exc

    async def stat(self, key: str) -> ObjectInfo | None:
        async def head(s3: Any, s3_key: str) -> ObjectInfo:
            found = await s3.head_object(Bucket=self.storage.bucket, Key=s3_key)
            return ObjectInfo(str(found["ETag"]), int(found["ContentLength"]))

        return await self._call("head", key, head)

    async def read(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        async def get(s3: Any, s3_key: str) -> tuple[ObjectInfo, bytes]:
            response = await s3.get_object(Bucket=self.storage.bucket, Key=s3_key)
            info = ObjectInfo(str(response["ETag"]), int(response["ContentLength"]))
            # Leaving the block returns the connection to the pool, read or not.
            async with response["Body"] as body:
                if info.size > max_bytes:
                    raise DocumentTooLarge(key, info.size, max_bytes)
                return info, await body.read()

        return await self._call("get", key, get)


class WholeObjects:
    """Any other Storage: both calls read the whole object (no cheap metadata, and the cap is
    checked only after reading)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def stat(self, key: str) -> ObjectInfo | None:
        stored = await self.storage.get(key)
        return None if stored is None else ObjectInfo(stored.etag, len(stored.data))

    async def read(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        stored = await self.storage.get(key)
        if stored is None:
            return None
        if len(stored.data) > max_bytes:
            raise DocumentTooLarge(key, len(stored.data), max_bytes)
        return ObjectInfo(stored.etag, len(stored.data)), stored.data


def object_access(storage: Storage) -> ObjectAccess:
    if isinstance(storage, LocalStorage):
        return LocalObjects(storage)
    if isinstance(storage, S3Storage):
        return S3Objects(storage)
    return WholeObjects(storage)


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


RAW: Decoder[bytes] = Decoder("raw", _identity, 1)
JSON_OBJECT: Decoder[dict[str, Any]] = Decoder("json", _json_object, 6)


@dataclass(frozen=True)
class Loaded(Generic[T]):
    info: ObjectInfo
    content: T


@dataclass
class _Entry:
    info: ObjectInfo | None  # None: the object did not exist when last checked
    decoder: str | None
    content: Any
    checked_at: float


class DocumentReader:
    """Stored documents by key, kept in memory (bounded) and revalidated by one metadata read
    once they are older than `fresh_for` seconds; within that window no storage call is made."""

    def __init__(
        self,
        objects: ObjectAccess,
        *,
        max_document_bytes: int,
        cache_bytes: int,
        fresh_for: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.objects = objects
        self.max_document_bytes = max_document_bytes
        self.fresh_for = fresh_for
        self._clock = clock
        self._cache: BoundedCache[str, _Entry] = BoundedCache(
            max_entries=100_000, max_cost=cache_bytes
        )
        self._loads: SingleFlight[tuple[str, str], Loaded[Any] | None] = SingleFlight()

    async def probe(self, key: str) -> ObjectInfo | None:
        """The document's current version, or None if it does not exist."""
        now = self._clock()
        entry = self._cache.get(key)
        if entry is not MISSING and now - entry.checked_at < self.fresh_for:
            return entry.info
        info = await self.objects.stat(key)
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
            return Loaded(info, entry.content)
        if info.size > self.max_document_bytes:
            raise DocumentTooLarge(key, info.size, self.max_document_bytes)
        loaded: Loaded[T] | None = await self._loads.run(
            (key, decoder.name), lambda: self._read(key, decoder)
        )
        return loaded

    async def close(self) -> None:
        await self._loads.close()

    async def _read(self, key: str, decoder: Decoder[T]) -> Loaded[T] | None:
        found = await self.objects.read(key, self.max_document_bytes)
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
        self._cache.put(
            key, _Entry(info, decoder.name, content, self._clock()), cost=len(data) * decoder.cost
        )
        return Loaded(info, content)
