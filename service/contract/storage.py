"""Durable storage: one interface, a local folder or an S3 bucket behind it.

Every write is atomic: a reader sees the old object or the new one, never a part.
Conditional writes (`put_if`) are the compare-and-swap that org files and manifests rely on.
Readers that poll use `stat` (version and size from one metadata read) and `read_capped` (which
refuses an object over a size before reading it, where the backend can tell).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import fcntl
import hashlib
import os
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any, BinaryIO, ParamSpec, TypeVar

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError


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


# --- Shared helpers ----------------------------------------------------------------------------

# Internal names inside a local storage folder. Keys may not use them, so list() never shows
# them and a key can never overwrite a lock or a half-written file.
_LOCK_DIR = ".locks"
_TMP_PREFIX = ".gitstats-tmp-"
_COPY_CHUNK = 1024 * 1024
_USAGE = "use a folder path, file:///abs/path or s3://bucket/prefix"


def _bad_key(key: str, why: str) -> StorageError:
    return StorageError(f"invalid storage key {key!r}: {why}")


def _check_key(key: str) -> None:
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
    if segments[0] == _LOCK_DIR or segments[-1].startswith(_TMP_PREFIX):
        raise _bad_key(key, "the name is reserved for storage internals")


def _check_prefix(prefix: str) -> None:
    """Like _check_key, but the last segment may be empty ('state/42/') or partial ('state/4')."""
    if not prefix:
        return
    if prefix.startswith("/") or "\x00" in prefix:
        raise StorageError(f"invalid storage prefix {prefix!r}: must be a relative path")
    *folders, last = prefix.split("/")
    if any(s in ("", ".", "..") for s in folders) or last == "..":
        raise StorageError(
            f"invalid storage prefix {prefix!r}: empty, '.' and '..' path segments are not allowed"
        )


def _reason(exc: BaseException) -> str:
    """The OS reason of an error on one line ('Permission denied'), without the path."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def _new_hash() -> Any:
    # MD5 only as a content fingerprint (the same scheme S3 uses for single-part ETags).
    return hashlib.md5(usedforsecurity=False)


def _etag_of(data: bytes) -> str:
    digest = _new_hash()
    digest.update(data)
    return f'"{digest.hexdigest()}"'


def _copy_hashing(src: BinaryIO, dst: BinaryIO) -> str:
    """Copy src to dst in chunks; returns the ETag of what was copied."""
    digest = _new_hash()
    while chunk := src.read(_COPY_CHUNK):
        digest.update(chunk)
        dst.write(chunk)
    return f'"{digest.hexdigest()}"'


def _same_etag(a: str, b: str) -> bool:
    # ETags are opaque, but S3 tolerates a missing pair of quotes, so do we.
    return a.strip('"') == b.strip('"')


def _fsync_dir(folder: Path) -> None:
    # Makes a rename durable. Some filesystems refuse fsync on a folder; the data itself is
    # already synced then, so that is not worth failing the write for.
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_temp(target: Path) -> tuple[BinaryIO, str]:
    """A new temporary file next to `target` (same folder, so os.replace is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
    return os.fdopen(fd, "wb"), tmp_name


def _commit_temp(file: BinaryIO, tmp_name: str, target: Path) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()
    os.replace(tmp_name, target)
    _fsync_dir(target.parent)


def _discard_temp(file: BinaryIO, tmp_name: str) -> None:
    with contextlib.suppress(OSError):
        file.close()
    with contextlib.suppress(OSError):
        os.unlink(tmp_name)


def _write_atomically(target: Path, fill: Callable[[BinaryIO], str]) -> str:
    """Write `target` through a synced temp file and a rename; returns what `fill` returns."""
    file, tmp_name = _open_temp(target)
    try:
        etag = fill(file)
        _commit_temp(file, tmp_name, target)
    except BaseException:
        _discard_temp(file, tmp_name)
        raise
    return etag


_P = ParamSpec("_P")
_T = TypeVar("_T")


async def _local_io(path: Path, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking local-file work in a thread; an OSError names the local file."""
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except OSError as exc:
        raise StorageError(f"cannot write local file {path}: {_reason(exc)}") from exc


class _Unconditional(enum.Enum):
    TOKEN = enum.auto()


_UNCONDITIONAL = _Unconditional.TOKEN
# Reading these means "there is no object under that key" (a folder or a file is in the way).
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


# --- Local folder ------------------------------------------------------------------------------


class LocalStorage(Storage):
    """A folder on this machine. Conditional writes hold an flock per key, so threads, tasks
    and processes on the same host are serialized (not hosts sharing the folder over NFS)."""

    def __init__(self, root: Path) -> None:
        # No I/O here: the folder is created by the first write, so a bad location shows up as
        # a StorageError from check_writable() and not as an OSError from a constructor.
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root.joinpath(*key.split("/"))

    def _error(self, action: str, key: str | None, exc: BaseException) -> StorageError:
        where = f" (key {key!r})" if key else ""
        return StorageError(f"cannot {action} storage folder {self.root}{where}: {_reason(exc)}")

    @contextlib.contextmanager
    def _os_errors(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._error(action, key, exc) from exc

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        # One lock file per key, under .locks/ so that keys and list() never see it. flock locks
        # belong to an open file description, so two open()s conflict between threads of one
        # process just as between processes. Lock files are never removed: unlinking one while
        # a waiter holds it open would let a third writer lock a fresh inode alongside it.
        lock_dir = self.root / _LOCK_DIR
        lock_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest() + ".lock"
        fd = os.open(lock_dir / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _current_etag(self, path: Path) -> str | None:
        try:
            with open(path, "rb") as file:
                digest = _new_hash()
                while chunk := file.read(_COPY_CHUNK):
                    digest.update(chunk)
        except _MISSING:
            return None
        return f'"{digest.hexdigest()}"'

    def _write_sync(
        self, key: str, fill: Callable[[BinaryIO], str], expected: str | _Unconditional | None
    ) -> str:
        path = self._path(key)
        with self._os_errors("write to", key), self._locked(key):
            # Unconditional writes take the lock too, so that a put landing between a
            # put_if's check and its rename cannot be silently overwritten.
            if expected is not _UNCONDITIONAL:
                current = self._current_etag(path)
                if expected is None and current is not None:
                    raise PreconditionFailed(
                        f"{key!r} already exists in storage folder {self.root}"
                    )
                if expected is not None and (current is None or not _same_etag(current, expected)):
                    state = "no longer exists" if current is None else "changed since it was read"
                    raise PreconditionFailed(f"{key!r} {state} in storage folder {self.root}")
            return _write_atomically(path, fill)

    def _get_sync(self, key: str) -> StoredObject | None:
        path = self._path(key)
        with self._os_errors("read from", key):
            try:
                data = path.read_bytes()
            except _MISSING:
                return None
        return StoredObject(data=data, etag=_etag_of(data))

    @staticmethod
    def _info(st: os.stat_result) -> ObjectInfo:
        # Objects are only ever replaced by a rename, so inode, mtime and size tell versions
        # apart without hashing the content.
        return ObjectInfo(f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}", st.st_size)

    def _stat_sync(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        with self._os_errors("read from", key):
            try:
                st = os.stat(path)
            except _MISSING:
                return None
        # A folder in the way is not an object, as for get().
        return self._info(st) if S_ISREG(st.st_mode) else None

    def _read_capped_sync(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        path = self._path(key)
        with self._os_errors("read from", key):
            try:
                # One open file is one whole version: fstat and read see the same one.
                file = open(path, "rb")  # noqa: SIM115 - closed by the with block below
            except _MISSING:
                return None
            with file:
                info = self._info(os.fstat(file.fileno()))
                if info.size > max_bytes:
                    raise ObjectTooLarge(key, info.size, max_bytes)
                data = file.read(max_bytes + 1)
        if len(data) > max_bytes:  # written in place behind our back: still never past the cap
            raise ObjectTooLarge(key, len(data), max_bytes)
        return info, data

    def _delete_sync(self, key: str) -> None:
        path = self._path(key)
        with self._os_errors("delete from", key), self._locked(key):
            try:
                path.unlink()
            except _MISSING:
                return
            _fsync_dir(path.parent)

    def _list_sync(self, prefix: str) -> list[str]:
        _check_prefix(prefix)
        # Walk only the deepest folder the prefix names; its last segment is a plain string prefix.
        folder = prefix.rpartition("/")[0]
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        keys: list[str] = []

        def on_error(exc: OSError) -> None:
            # A folder that does not exist (yet, or any more) simply holds no keys.
            if not isinstance(exc, _MISSING):
                raise exc

        with self._os_errors("list"):
            for dirpath, dirnames, filenames in os.walk(start, onerror=on_error):
                rel = os.path.relpath(dirpath, self.root)
                base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                # Prune folders that cannot hold a match, and the lock folder at the top.
                dirnames[:] = [
                    d
                    for d in dirnames
                    if not (base == "" and d == _LOCK_DIR)
                    and ((base + d + "/").startswith(prefix) or prefix.startswith(base + d + "/"))
                ]
                keys.extend(
                    base + name
                    for name in filenames
                    if not name.startswith(_TMP_PREFIX) and (base + name).startswith(prefix)
                )
        return sorted(keys)

    def _upload_sync(self, path: Path, key: str) -> None:
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed by the with block below
        except OSError as exc:
            raise StorageError(f"cannot read local file {path}: {_reason(exc)}") from exc
        with source:
            self._write_sync(key, lambda target: _copy_hashing(source, target), _UNCONDITIONAL)

    def _download_sync(self, key: str, path: Path) -> None:
        try:
            # Objects are only ever replaced by a rename, so this handle sees one whole version.
            source = open(self._path(key), "rb")  # noqa: SIM115 - closed by the with block below
        except _MISSING:
            raise StorageError(f"no object {key!r} in storage folder {self.root}") from None
        except OSError as exc:
            raise self._error("read from", key, exc) from exc
        with source:
            try:
                _write_atomically(path, lambda target: _copy_hashing(source, target))
            except OSError as exc:
                raise StorageError(f"cannot write local file {path}: {_reason(exc)}") from exc

    # The public methods run the blocking work above in worker threads: flock can wait for
    # another writer, and fsync can take long, neither of which may stall the event loop.

    async def get(self, key: str) -> StoredObject | None:
        return await asyncio.to_thread(self._get_sync, key)

    async def stat(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._stat_sync, key)

    async def read_capped(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        return await asyncio.to_thread(self._read_capped_sync, key, max_bytes)

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> str:
        return await asyncio.to_thread(self._write_sync, key, _writer(data), _UNCONDITIONAL)

    async def put_if(
        self, key: str, data: bytes, etag: str | None, content_type: str = "application/json"
    ) -> str:
        return await asyncio.to_thread(self._write_sync, key, _writer(data), etag)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete_sync, key)

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list_sync, prefix)

    async def upload_file(self, path: Path, key: str) -> None:
        await asyncio.to_thread(self._upload_sync, Path(path), key)

    async def download_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self._download_sync, key, Path(path))

    async def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""


def _writer(data: bytes) -> Callable[[BinaryIO], str]:
    def fill(file: BinaryIO) -> str:
        file.write(data)
        return _etag_of(data)

    return fill


# --- S3 ----------------------------------------------------------------------------------------

_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
# A HEAD answer has no body, so a missing object shows as its HTTP status, not as NoSuchKey.
_HEAD_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def _error_code(exc: ClientError) -> tuple[str, int | None]:
    code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status


class S3Storage(Storage):
    """Objects in an S3 bucket under a key prefix, through one lazily created aioboto3 client.

    Credentials and region come from the usual AWS chain (environment, config files, roles).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        *,
        multipart_threshold: int = 16 * 1024 * 1024,
    ) -> None:
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        # Files at least this large go through the managed multipart upload.
        self.multipart_threshold = multipart_threshold
        self._session = aioboto3.Session()
        self._client: Any = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        # Many tasks may make the first call at once; only one of them may build the client.
        self._client_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def _where(self, key: str | None) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key or ''}"

    @contextlib.contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        # Only the error code, the class name and the endpoint go into the message: S3 error
        # bodies and credential-provider errors can carry the access key id or process output.
        try:
            yield
        except ClientError as exc:
            code, status = _error_code(exc)
            raise StorageError(
                f"S3 {operation} failed for {self._where(key)}: {code} (HTTP {status})"
            ) from exc
        except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
            detail = type(exc).__name__
            endpoint = getattr(exc, "kwargs", {}).get("endpoint_url")
            if endpoint:
                detail += f" ({endpoint})"
            raise StorageError(f"S3 {operation} failed for {self._where(key)}: {detail}") from exc

    async def _s3(self) -> Any:
        """The shared client, created on first use."""
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    stack = contextlib.AsyncExitStack()
                    config = AioConfig(max_pool_connections=64, retries={"mode": "standard"})
                    with self._errors("connect"):
                        client = await stack.enter_async_context(
                            self._session.client(
                                "s3", endpoint_url=self.endpoint_url, config=config
                            )
                        )
                    self._exit_stack, self._client = stack, client
        return self._client

    async def close(self) -> None:
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        if stack is not None:
            await stack.aclose()

    async def get(self, key: str) -> StoredObject | None:
        found = await self.read_capped(key, sys.maxsize)
        return None if found is None else StoredObject(data=found[1], etag=found[0].version)

    async def stat(self, key: str) -> ObjectInfo | None:
        """One HEAD request; the version is the ETag."""
        _check_key(key)
        s3 = await self._s3()
        with self._errors("head", key):
            try:
                found = await s3.head_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as exc:
                if _error_code(exc)[0] in _HEAD_MISSING_CODES:
                    return None
                raise
        return ObjectInfo(str(found["ETag"]), int(found["ContentLength"]))

    async def read_capped(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        """One GET, whose Content-Length is checked before the body is read."""
        _check_key(key)
        s3 = await self._s3()
        with self._errors("get", key):
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as exc:
                if _error_code(exc)[0] == "NoSuchKey":
                    return None
                raise
            info = ObjectInfo(str(response["ETag"]), int(response["ContentLength"]))
            # Leaving the block releases the connection, whether the body was read or not.
            body = response["Body"]
            async with body:
                if info.size > max_bytes:
                    raise ObjectTooLarge(key, info.size, max_bytes)
                data = await body.read()
        return info, data

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> str:
        _check_key(key)
        s3 = await self._s3()
        with self._errors("put", key):
            response = await s3.put_object(
                Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type
            )
        return str(response["ETag"])

    async def put_if(
        self, key: str, data: bytes, etag: str | None, content_type: str = "application/json"
    ) -> str:
        _check_key(key)
        s3 = await self._s3()
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        with self._errors("conditional put", key):
            try:
                response = await s3.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=data,
                    ContentType=content_type,
                    **condition,
                )
            except ClientError as exc:
                code, status = _error_code(exc)
                # 412: the condition failed. 409: a concurrent conditional write to the same key
                # was in flight. NoSuchKey on If-Match: the object was deleted since it was read.
                if (
                    status in (409, 412)
                    or code in _PRECONDITION_CODES
                    or (etag is not None and code == "NoSuchKey")
                ):
                    raise PreconditionFailed(
                        f"conditional put lost for {self._where(key)}: {code}"
                    ) from exc
                raise
        return str(response["ETag"])

    async def delete(self, key: str) -> None:
        _check_key(key)
        s3 = await self._s3()
        with self._errors("delete", key):
            await s3.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    async def list(self, prefix: str) -> list[str]:
        _check_prefix(prefix)
        s3 = await self._s3()
        keys: list[str] = []
        with self._errors("list", prefix):
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", ()))
        return sorted(keys)

    async def delete_prefix(self, prefix: str) -> None:
        """Delete in batches of 1000 (one request each) rather than one request per key."""
        keys = await self.list(prefix)
        s3 = await self._s3()
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self.prefix + key} for key in keys[start : start + 1000]]
            with self._errors("delete", prefix):
                response = await s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if errors := response.get("Errors"):
                first = errors[0]
                raise StorageError(
                    f"S3 delete failed for {len(errors)} object(s) under {self._where(prefix)}, "
                    f"e.g. {first.get('Key')}: {first.get('Code')}"
                )

    async def upload_file(self, path: Path, key: str) -> None:
        _check_key(key)
        path = Path(path)
        try:
            size = path.stat().st_size
            # One request for the common case; both paths become visible only when complete.
            data = (
                await asyncio.to_thread(path.read_bytes)
                if size < self.multipart_threshold
                else None
            )
        except OSError as exc:
            raise StorageError(f"cannot read local file {path}: {_reason(exc)}") from exc
        if data is not None:
            await self.put(key, data, content_type="application/octet-stream")
            return
        s3 = await self._s3()
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=max(8 * 1024 * 1024, self.multipart_threshold // 8),
        )
        with self._errors("upload", key):
            try:
                await s3.upload_file(
                    str(path),
                    self.bucket,
                    self.prefix + key,
                    ExtraArgs={"ContentType": "application/octet-stream"},
                    Config=config,
                )
            except OSError as exc:
                # aiohttp's connection errors and TimeoutError are OSErrors too: not the file's.
                if isinstance(exc, aiohttp.ClientError | TimeoutError):
                    raise
                raise StorageError(f"cannot read local file {path}: {_reason(exc)}") from exc

    async def download_file(self, key: str, path: Path) -> None:
        _check_key(key)
        path = Path(path)
        s3 = await self._s3()
        with self._errors("download", key):
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as exc:
                if _error_code(exc)[0] == "NoSuchKey":
                    raise StorageError(f"no object at {self._where(key)}") from None
                raise
            body = response["Body"]
            async with body:
                file, tmp_name = await _local_io(path, _open_temp, path)
                try:
                    # Network errors from read() go to self._errors; file errors to _local_io.
                    while chunk := await body.read(_COPY_CHUNK):
                        await _local_io(path, file.write, chunk)
                    await _local_io(path, _commit_temp, file, tmp_name, path)
                except BaseException:
                    _discard_temp(file, tmp_name)
                    raise


# --- Opening -----------------------------------------------------------------------------------


def open_storage(url: str, s3_endpoint_url: str | None = None) -> Storage:
    """A backend for `url`: a folder path, `file:///path`, or `s3://bucket/prefix`."""
    if not url:
        raise StorageError(f"empty storage URL: {_USAGE}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        # Never echo the netloc here: it is where someone would have put a key and secret.
        if "@" in parts.netloc:
            raise StorageError(
                "s3 storage URL must not hold credentials; use the AWS environment or config"
            )
        if not parts.netloc:
            raise StorageError(f"s3 storage URL {url!r} names no bucket: {_USAGE}")
        if parts.query or parts.fragment:
            raise StorageError(f"s3 storage URL {url!r} must have no query or fragment")
        return S3Storage(parts.netloc, urllib.parse.unquote(parts.path), s3_endpoint_url)
    if scheme == "file":
        path = urllib.parse.unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise StorageError(f"file storage URL {url!r} must be file:///absolute/path")
        return LocalStorage(Path(path))
    if not scheme:
        # Absolute now, so that messages name the real folder whatever the cwd becomes.
        return LocalStorage(Path(url).expanduser().absolute())
    raise StorageError(f"unsupported storage URL scheme {scheme + ':'!r}: {_USAGE}")
