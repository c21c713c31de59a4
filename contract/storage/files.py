"""Local-file work both backends share: atomic writes through a synced temp file, hashing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, ParamSpec, TypeVar

from contract.storage import TMP_PREFIX, StorageError

COPY_CHUNK = 1024 * 1024


def reason(exc: BaseException) -> str:
    """The OS reason of an error on one line ('Permission denied'), without the path."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def new_hash() -> Any:
    # MD5 only as a content fingerprint (the same scheme S3 uses for single-part ETags).
    return hashlib.md5(usedforsecurity=False)


def etag_of(data: bytes) -> str:
    digest = new_hash()
    digest.update(data)
    return f'"{digest.hexdigest()}"'


def copy_hashing(src: BinaryIO, dst: BinaryIO) -> str:
    """Copy src to dst in chunks; returns the ETag of what was copied."""
    digest = new_hash()
    while chunk := src.read(COPY_CHUNK):
        digest.update(chunk)
        dst.write(chunk)
    return f'"{digest.hexdigest()}"'


def same_etag(a: str, b: str) -> bool:
    # ETags are opaque, but S3 tolerates a missing pair of quotes, so do we.
    return a.strip('"') == b.strip('"')


def fsync_dir(folder: Path) -> None:
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


def open_temp(target: Path) -> tuple[BinaryIO, str]:
    """A new temporary file next to `target` (same folder, so os.replace is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=target.parent)
    return os.fdopen(fd, "wb"), tmp_name


def commit_temp(file: BinaryIO, tmp_name: str, target: Path) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()
    os.replace(tmp_name, target)
    fsync_dir(target.parent)


def discard_temp(file: BinaryIO, tmp_name: str) -> None:
    with contextlib.suppress(OSError):
        file.close()
    with contextlib.suppress(OSError):
        os.unlink(tmp_name)


def write_atomically(target: Path, fill: Callable[[BinaryIO], str]) -> str:
    """Write `target` through a synced temp file and a rename; returns what `fill` returns."""
    file, tmp_name = open_temp(target)
    try:
        etag = fill(file)
        commit_temp(file, tmp_name, target)
    except BaseException:
        discard_temp(file, tmp_name)
        raise
    return etag


_P = ParamSpec("_P")
_T = TypeVar("_T")


async def local_io(path: Path, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking local-file work in a thread; an OSError names the local file."""
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except OSError as exc:
        raise StorageError(f"cannot write local file {path}: {reason(exc)}") from exc
