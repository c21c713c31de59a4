"""Storage in a local folder: atomic by rename, compare-and-swap under a file lock."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from contract.storage import (
    LOCK_DIR,
    TMP_PREFIX,
    ObjectInfo,
    ObjectTooLarge,
    PreconditionFailed,
    Storage,
    StorageError,
    StoredObject,
    check_key,
    check_prefix,
)
from contract.storage.files import (
    COPY_CHUNK,
    copy_hashing,
    etag_of,
    fsync_dir,
    new_hash,
    reason,
    same_etag,
    write_atomically,
)


class _Unconditional(enum.Enum):
    TOKEN = enum.auto()


_UNCONDITIONAL = _Unconditional.TOKEN
# Reading these means "there is no object under that key" (a folder or a file is in the way).
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


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
        check_key(key)
        return self.root.joinpath(*key.split("/"))

    def _error(self, action: str, key: str | None, exc: BaseException) -> StorageError:
        where = f" (key {key!r})" if key else ""
        return StorageError(f"cannot {action} storage folder {self.root}{where}: {reason(exc)}")

    @contextlib.contextmanager
    def _os_errors(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._error(action, key, exc) from exc

    @contextlib.contextmanager
    def _locked(self, key: str, *, remove: bool = False) -> Iterator[None]:
        # One lock file per key, under .locks/ so that keys and list() never see it. flock locks
        # belong to an open file description, so two open()s conflict between threads of one
        # process just as between processes. A lock file is removed (`remove`, when its key is
        # deleted) only by its holder, and a waiter that then gets the lock checks that the
        # file it locked is still the one at the path: if not, it locks the one there now, so
        # two writers never hold two inodes of one lock.
        lock_dir = self.root / LOCK_DIR
        lock_dir.mkdir(parents=True, exist_ok=True)
        path = lock_dir / (hashlib.sha256(key.encode()).hexdigest() + ".lock")
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if _still_at(fd, path):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        try:
            yield
            if remove:
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the lock

    def _current_etag(self, path: Path) -> str | None:
        try:
            with open(path, "rb") as file:
                digest = new_hash()
                while chunk := file.read(COPY_CHUNK):
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
                if expected is not None and (current is None or not same_etag(current, expected)):
                    state = "no longer exists" if current is None else "changed since it was read"
                    raise PreconditionFailed(f"{key!r} {state} in storage folder {self.root}")
            return write_atomically(path, fill)

    def _get_sync(self, key: str) -> StoredObject | None:
        path = self._path(key)
        with self._os_errors("read from", key):
            try:
                data = path.read_bytes()
            except _MISSING:
                return None
        return StoredObject(data=data, etag=etag_of(data))

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
        # The key's lock file goes with it: lock files are as many as the keys, not all keys ever.
        with self._os_errors("delete from", key), self._locked(key, remove=True):
            try:
                path.unlink()
            except _MISSING:
                return
            fsync_dir(path.parent)

    def _list_sync(self, prefix: str) -> list[str]:
        check_prefix(prefix)
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
                    if not (base == "" and d == LOCK_DIR)
                    and ((base + d + "/").startswith(prefix) or prefix.startswith(base + d + "/"))
                ]
                keys.extend(
                    base + name
                    for name in filenames
                    if not name.startswith(TMP_PREFIX) and (base + name).startswith(prefix)
                )
        return sorted(keys)

    def _upload_sync(self, path: Path, key: str) -> None:
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed by the with block below
        except OSError as exc:
            raise StorageError(f"cannot read local file {path}: {reason(exc)}") from exc
        with source:
            self._write_sync(key, lambda target: copy_hashing(source, target), _UNCONDITIONAL)

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
                write_atomically(path, lambda target: copy_hashing(source, target))
            except OSError as exc:
                raise StorageError(f"cannot write local file {path}: {reason(exc)}") from exc

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
        return etag_of(data)

    return fill


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is the file at `path` (it was not removed or replaced)."""
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)
