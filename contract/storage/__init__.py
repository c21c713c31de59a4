"""Durable storage: one interface, a local folder or an S3 bucket behind it.

Every write is atomic: a reader sees the old object or the new one, never a part.
Conditional writes (`put_if`) are the compare-and-swap that org files and manifests rely on.
Readers that poll use `stat` (version and size from one metadata read) and `read_capped` (which
refuses an object over a size before reading it, where the backend can tell).
"""

from __future__ import annotations

import abc
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StorageError(Exception):
    """Storage cannot be reached, read or written. The message never holds a secret."""


class PreconditionFailed(StorageError):
    """A conditional write lost: the object changed (or appeared) since it was read."""


class ObjectTooLarge(StorageError):
    """An object larger than the caller's limit: refused rather than read into memory."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(
            f"storage object {key!r} is {size} bytes, over the limit of {limit} bytes to read"
        )
        self.key = key
        self.size = size
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles (across processes) with its own arguments, not the formatted message.
        return type(self), (self.key, self.size, self.limit)


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object's version and size in bytes. The version is opaque (not necessarily the
    ETag): it stays the same until the object is written, and a write of other bytes changes it."""

    version: str
    size: int


@dataclass(frozen=True)
class S3Credentials:
    """An S3 key pair and region; None leaves that part to the usual AWS chain."""

    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None


class Storage(abc.ABC):
    """Keys are '/'-separated relative paths such as 'analytics/42/overview.json'."""

    @abc.abstractmethod
    async def get(self, key: str) -> StoredObject | None:
        """The object and its ETag, or None when it does not exist."""

    @abc.abstractmethod
    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> str:
        """Write atomically, unconditionally; returns the new ETag."""

    @abc.abstractmethod
    async def put_if(
        self, key: str, data: bytes, etag: str | None, content_type: str = "application/json"
    ) -> str:
        """Write only if the object's ETag is still `etag` (None: only if it does not exist).

        Raises PreconditionFailed when another writer got there first.
        """

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove one object; a missing object is not an error."""

    @abc.abstractmethod
    async def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, sorted."""

    @abc.abstractmethod
    async def upload_file(self, path: Path, key: str) -> None:
        """Store a local file (possibly large) under `key`, atomically."""

    @abc.abstractmethod
    async def download_file(self, key: str, path: Path) -> None:
        """Copy an object to a local file; StorageError if it does not exist."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release clients and connections."""

    # The two reads below have whole-object defaults (through `get`): correct for any backend,
    # but with no cheap metadata read and a limit checked only after reading. The backends
    # override them.

    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's version and size from one metadata read, or None if missing."""
        stored = await self.get(key)
        return None if stored is None else ObjectInfo(stored.etag, len(stored.data))

    async def read_capped(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        """The object and the version of exactly those bytes, or None if missing.

        ObjectTooLarge past `max_bytes`, checked before reading where the backend can.
        """
        stored = await self.get(key)
        if stored is None:
            return None
        if len(stored.data) > max_bytes:
            raise ObjectTooLarge(key, len(stored.data), max_bytes)
        return ObjectInfo(stored.etag, len(stored.data)), stored.data

    async def delete_prefix(self, prefix: str) -> None:
        for key in await self.list(prefix):
            await self.delete(key)

    async def check_writable(self) -> None:
        """Raise StorageError unless a small object can be written and removed."""
        probe = ".gitstats-write-probe"
        await self.put(probe, b"", content_type="application/octet-stream")
        await self.delete(probe)


# --- Keys --------------------------------------------------------------------------------------

# Internal names inside a local storage folder. Keys may not use them, so list() never shows
# them and a key can never overwrite a lock or a half-written file.
LOCK_DIR = ".locks"
TMP_PREFIX = ".gitstats-tmp-"
_USAGE = "use a folder path, file:///abs/path or s3://bucket/prefix"


def _bad_key(key: str, why: str) -> StorageError:
    return StorageError(f"invalid storage key {key!r}: {why}")


def check_key(key: str) -> None:
    """StorageError unless `key` is a relative '/'-separated path that stays inside the storage."""
    if not key:
        raise _bad_key(key, "empty")
    if key.startswith("/"):
        raise _bad_key(key, "must be relative")
    if "\x00" in key:
        raise _bad_key(key, "contains a NUL character")
    segments = key.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise _bad_key(key, "empty, '.' and '..' path segments are not allowed")
    if segments[0] == LOCK_DIR or segments[-1].startswith(TMP_PREFIX):
        raise _bad_key(key, "the name is reserved for storage internals")


def check_prefix(prefix: str) -> None:
    """Like check_key, but the last segment may be empty ('state/42/') or partial ('state/4')."""
    if not prefix:
        return
    if prefix.startswith("/") or "\x00" in prefix:
        raise StorageError(f"invalid storage prefix {prefix!r}: must be a relative path")
    *folders, last = prefix.split("/")
    if any(s in ("", ".", "..") for s in folders) or last == "..":
        raise StorageError(
            f"invalid storage prefix {prefix!r}: empty, '.' and '..' path segments are not allowed"
        )


# --- Opening -----------------------------------------------------------------------------------


def open_storage(
    url: str, s3_endpoint_url: str | None = None, s3_credentials: S3Credentials | None = None
) -> Storage:
    """A backend for `url`: a folder path, `file:///path`, or `s3://bucket/prefix`.

    S3 credentials not given (or given in part) come from the usual AWS chain.
    """
    if not url:
        raise StorageError(f"empty storage URL: {_USAGE}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        from contract.storage.s3 import S3Storage

        # Never echo the netloc here: it is where someone would have put a key and secret.
        if "@" in parts.netloc:
            raise StorageError(
                "s3 storage URL must not hold credentials; use the AWS environment or config"
            )
        if not parts.netloc:
            raise StorageError(f"s3 storage URL {url!r} names no bucket: {_USAGE}")
        if parts.query or parts.fragment:
            raise StorageError(f"s3 storage URL {url!r} must have no query or fragment")
        return S3Storage(
            parts.netloc,
            urllib.parse.unquote(parts.path),
            s3_endpoint_url,
            credentials=s3_credentials,
        )
    if scheme == "file":
        from contract.storage.local import LocalStorage

        path = urllib.parse.unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise StorageError(f"file storage URL {url!r} must be file:///absolute/path")
        return LocalStorage(Path(path))
    if not scheme:
        from contract.storage.local import LocalStorage

        # Absolute now, so that messages name the real folder whatever the cwd becomes.
        return LocalStorage(Path(url).expanduser().absolute())
    raise StorageError(f"unsupported storage URL scheme {scheme + ':'!r}: {_USAGE}")
