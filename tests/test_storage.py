"""Both storage backends against the same contract: a local folder and S3 (moto, server mode)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.response import StreamingBody

from contract.storage import (
    ObjectInfo,
    ObjectTooLarge,
    PreconditionFailed,
    Storage,
    StorageError,
    open_storage,
)
from contract.storage.local import LocalStorage
from contract.storage.s3 import S3Storage

COUNTER = "state/7/counter.json"


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    # Picks the backend fixture by name, so every test below runs against both.
    backend: Storage = request.getfixturevalue(f"{request.param}_storage")
    return backend


async def increment(
    storage: Storage,
    key: str,
    times: int,
    after_first_read: Callable[[], Awaitable[object]] | None = None,
) -> int:
    """Read-modify-write a JSON counter `times` times with put_if; returns the conflicts met."""
    conflicts = 0
    for _ in range(times):
        while True:
            current = await storage.get(key)
            value = json.loads(current.data)["n"] if current else 0
            if after_first_read is not None:
                # Every writer has read the same version before anyone writes, so the first
                # round of writes is certain to collide instead of merely likely to.
                await after_first_read()
                after_first_read = None
            try:
                await storage.put_if(
                    key, json.dumps({"n": value + 1}).encode(), current.etag if current else None
                )
            except PreconditionFailed:
                conflicts += 1
                continue
            break
    return conflicts


def increment_in_process(root: str, times: int, barrier: Any, results: Any) -> None:
    """Entry point of a separate (spawned) process hammering the same LocalStorage folder."""
    try:
        conflicts = asyncio.run(
            increment(
                LocalStorage(Path(root)),
                COUNTER,
                times,
                after_first_read=lambda: asyncio.to_thread(barrier.wait, 60),
            )
        )
        results.put(conflicts)
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        raise


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- Round trips ----------------------------------------------------------------------------------


async def test_put_then_get_returns_data_and_the_same_etag(storage: Storage) -> None:
    etag = await storage.put("analytics/42/overview.json", b'{"a": 1}')
    got = await storage.get("analytics/42/overview.json")
    assert got is not None
    assert got.data == b'{"a": 1}'
    assert got.etag == etag

    new_etag = await storage.put("analytics/42/overview.json", b'{"a": 2}')
    assert new_etag != etag
    got = await storage.get("analytics/42/overview.json")
    assert got is not None
    assert (got.data, got.etag) == (b'{"a": 2}', new_etag)


async def test_get_of_a_missing_key_is_none(storage: Storage) -> None:
    assert await storage.get("analytics/42/missing.json") is None
    await storage.put("analytics/42/present.json", b"{}")
    # A key that is a "folder" of another key is not an object either.
    assert await storage.get("analytics/42") is None
    assert await storage.get("analytics/42/present.json/below") is None


# --- Metadata and capped reads --------------------------------------------------------------------

DOC = "analytics/42/status.json"


async def test_stat_and_read_capped_of_a_missing_key_are_none(storage: Storage) -> None:
    assert await storage.stat(DOC) is None
    assert await storage.read_capped(DOC, 1000) is None
    await storage.put("analytics/42/present.json", b"{}")
    # A "folder" of another key, or a path below one, is not an object either.
    for key in ("analytics/42", "analytics/42/present.json/below"):
        assert await storage.stat(key) is None
        assert await storage.read_capped(key, 1000) is None


async def test_stat_gives_the_size_and_a_version_that_changes_only_with_a_write(
    storage: Storage,
) -> None:
    await storage.put(DOC, b'{"a": 1}')
    first = await storage.stat(DOC)
    assert first is not None and first.size == 8
    assert await storage.stat(DOC) == first  # unchanged: the same version
    await storage.get(DOC)
    assert await storage.stat(DOC) == first  # reading is not writing

    await storage.put(DOC, b'{"a": 22}')
    second = await storage.stat(DOC)
    assert second is not None and second.size == 9
    assert second.version != first.version
    assert await storage.stat(DOC) == second

    await storage.delete(DOC)
    assert await storage.stat(DOC) is None


async def test_read_capped_returns_the_bytes_and_their_version(storage: Storage) -> None:
    await storage.put(DOC, b'{"a": 1}')
    info = await storage.stat(DOC)
    found = await storage.read_capped(DOC, 1000)
    assert found == (info, b'{"a": 1}')
    assert found is not None and found[0].size == 8

    await storage.put(DOC, b'{"a": 22}')
    again = await storage.read_capped(DOC, 1000)
    assert again is not None and again[1] == b'{"a": 22}'
    assert again[0] == await storage.stat(DOC)
    assert again[0].version != found[0].version


async def test_read_capped_at_the_cap_succeeds_and_past_it_refuses(storage: Storage) -> None:
    data = b'{"a": 1}'
    await storage.put(DOC, data)
    found = await storage.read_capped(DOC, len(data))  # exactly at the cap
    assert found is not None and found[1] == data

    with pytest.raises(ObjectTooLarge) as raised:
        await storage.read_capped(DOC, len(data) - 1)
    error = raised.value
    assert isinstance(error, StorageError)
    assert (error.key, error.size, error.limit) == (DOC, len(data), len(data) - 1)
    message = str(error)
    assert DOC in message and "is 8 bytes" in message and "limit of 7 bytes" in message

    with pytest.raises(ObjectTooLarge):
        await storage.read_capped(DOC, 0)
    assert await storage.read_capped(DOC, len(data)) == found  # the refusals changed nothing


async def test_local_read_capped_checks_the_size_before_reading(
    local_storage: LocalStorage,
) -> None:
    await local_storage.put(DOC, b"x" * 100)
    with pytest.raises(ObjectTooLarge) as raised:
        await local_storage.read_capped(DOC, 50)
    # The size on disk, from fstat: a check after reading would know max_bytes + 1 bytes only.
    assert raised.value.size == 100


async def test_s3_read_capped_checks_the_length_before_reading(
    s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await s3_storage.put(DOC, b"x" * 100)
    reads: list[int | None] = []
    real_read = StreamingBody.read

    async def counting_read(self: StreamingBody, amt: int | None = None) -> bytes:
        reads.append(amt)
        data: bytes = await real_read(self, amt)
        return data

    monkeypatch.setattr(StreamingBody, "read", counting_read)
    with pytest.raises(ObjectTooLarge) as raised:
        await s3_storage.read_capped(DOC, 50)
    assert raised.value.size == 100  # from Content-Length
    assert reads == []  # the body was never read
    found = await s3_storage.read_capped(DOC, 100)
    assert found is not None and found[1] == b"x" * 100
    assert reads  # the spy does see a read


async def test_s3_read_capped_errors_hold_no_credentials(s3_server: str) -> None:
    storage = S3Storage("gitstats-no-such-bucket", "", s3_server)
    try:
        with pytest.raises(StorageError) as raised:
            await storage.read_capped("a.json", 1000)
    finally:
        await storage.close()
    message = str(raised.value)
    assert "NoSuchBucket" in message
    assert "gitstats-no-such-bucket" in message
    assert "testing" not in message  # the dummy access key and secret
    assert not isinstance(raised.value, ObjectTooLarge)


class _DefaultReads(LocalStorage):
    """A local folder with the Storage ABC's own stat and read_capped, which go through get."""

    stat = Storage.stat
    read_capped = Storage.read_capped


async def test_the_default_stat_and_read_capped_read_through_get(tmp_path: Path) -> None:
    storage = _DefaultReads(tmp_path / "root")
    assert await storage.stat(DOC) is None
    assert await storage.read_capped(DOC, 1000) is None

    etag = await storage.put(DOC, b'{"a": 1}')
    info = ObjectInfo(etag, 8)
    assert await storage.stat(DOC) == info
    assert await storage.read_capped(DOC, 8) == (info, b'{"a": 1}')
    with pytest.raises(ObjectTooLarge) as raised:
        await storage.read_capped(DOC, 7)
    assert (raised.value.key, raised.value.size, raised.value.limit) == (DOC, 8, 7)

    await storage.put(DOC, b'{"a": 22}')
    changed = await storage.stat(DOC)
    assert changed is not None and changed.version != info.version and changed.size == 9


# --- Conditional writes ---------------------------------------------------------------------------


async def test_put_if_none_creates_only_when_absent(storage: Storage) -> None:
    etag = await storage.put_if("meta/codebases/1.json", b"first", None)
    got = await storage.get("meta/codebases/1.json")
    assert got is not None
    assert (got.data, got.etag) == (b"first", etag)

    with pytest.raises(PreconditionFailed):
        await storage.put_if("meta/codebases/1.json", b"second", None)
    got = await storage.get("meta/codebases/1.json")
    assert got is not None
    assert got.data == b"first"


async def test_put_if_etag_succeeds_when_current_and_fails_when_stale(storage: Storage) -> None:
    first = await storage.put("state/1/manifest.json", b"v1")
    second = await storage.put_if("state/1/manifest.json", b"v2", first)
    got = await storage.get("state/1/manifest.json")
    assert got is not None
    assert (got.data, got.etag) == (b"v2", second)

    with pytest.raises(PreconditionFailed):
        await storage.put_if("state/1/manifest.json", b"v3 from a stale read", first)
    got = await storage.get("state/1/manifest.json")
    assert got is not None
    assert got.data == b"v2"


async def test_put_if_etag_on_a_deleted_object_fails(storage: Storage) -> None:
    etag = await storage.put("state/1/manifest.json", b"v1")
    await storage.delete("state/1/manifest.json")
    with pytest.raises(PreconditionFailed):
        await storage.put_if("state/1/manifest.json", b"v2", etag)
    assert await storage.get("state/1/manifest.json") is None


async def test_concurrent_tasks_never_lose_an_increment(storage: Storage) -> None:
    tasks = 20
    barrier = asyncio.Barrier(tasks)
    conflicts = await asyncio.gather(
        *(increment(storage, COUNTER, 1, after_first_read=barrier.wait) for _ in range(tasks))
    )
    got = await storage.get(COUNTER)
    assert got is not None
    assert json.loads(got.data) == {"n": tasks}
    # All 20 wrote against the same version first: exactly one can have won that round.
    assert sum(conflicts) >= tasks - 1
    assert await storage.list("") == [COUNTER]


async def test_concurrent_processes_never_lose_an_increment(
    local_storage: LocalStorage,
) -> None:
    processes, times = 4, 10
    # spawn, not fork: this process runs threads (moto, asyncio's executor).
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=increment_in_process, args=(str(local_storage.root), times, barrier, results)
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [await asyncio.to_thread(results.get, True, 120) for _ in workers]
    for worker in workers:
        await asyncio.to_thread(worker.join, 60)
        assert worker.exitcode == 0

    assert all(isinstance(outcome, int) for outcome in outcomes), outcomes
    got = await local_storage.get(COUNTER)
    assert got is not None
    assert json.loads(got.data) == {"n": processes * times}
    assert sum(outcomes) >= processes - 1
    assert await local_storage.list("") == [COUNTER]


# --- Listing and deleting -------------------------------------------------------------------------

KEYS = [
    "analytics/42/overview.json",
    "state/4/other",
    "state/42/a/b.bin",
    "state/42/manifest.json",
    "state/420/x",
]


async def test_list_returns_exactly_the_keys_under_a_prefix(storage: Storage) -> None:
    for key in reversed(KEYS):
        await storage.put_if(key, key.encode(), None)

    assert await storage.list("state/42/") == ["state/42/a/b.bin", "state/42/manifest.json"]
    # A plain string prefix, not a folder: "state/4" also matches state/42 and state/420.
    assert await storage.list("state/4") == KEYS[1:]
    assert await storage.list("state/42") == KEYS[2:]
    assert await storage.list("") == KEYS
    assert await storage.list("nothing/") == []


async def test_local_lock_files_go_with_their_keys(local_storage: LocalStorage) -> None:
    for key in KEYS:
        await local_storage.put_if(key, b"x", None)
    locks = local_storage.root / ".locks"
    assert len(list(locks.iterdir())) == len(KEYS)

    for key in KEYS[1:]:
        await local_storage.delete(key)
    await local_storage.delete("state/never/written")  # a key that was never there leaves none

    assert len(list(locks.iterdir())) == 1
    # And the lock still serialises writers of a key deleted and written again.
    await local_storage.put_if(KEYS[1], b"again", None)
    with pytest.raises(PreconditionFailed):
        await local_storage.put_if(KEYS[1], b"twice", None)


async def test_local_list_hides_lock_and_temp_files(local_storage: LocalStorage) -> None:
    for key in KEYS:
        await local_storage.put_if(key, b"x", None)
    # What a writer killed between mkstemp and rename leaves behind.
    (local_storage.root / "state" / "42" / ".gitstats-tmp-crashed").write_bytes(b"partial")

    on_disk = files_under(local_storage.root)
    assert any(name.startswith(".locks/") for name in on_disk)
    assert "state/42/.gitstats-tmp-crashed" in on_disk
    assert await local_storage.list("") == KEYS
    assert await local_storage.list("state/42/") == ["state/42/a/b.bin", "state/42/manifest.json"]


async def test_delete_and_delete_prefix(storage: Storage) -> None:
    for key in KEYS:
        await storage.put(key, b"x")

    await storage.delete("state/4/other")
    await storage.delete("state/4/other")  # a missing object is not an error
    assert await storage.get("state/4/other") is None

    await storage.delete_prefix("state/42/")
    assert await storage.list("") == ["analytics/42/overview.json", "state/420/x"]
    await storage.delete_prefix("state/42/")  # nothing left to delete: not an error


# --- Files ----------------------------------------------------------------------------------------


async def test_upload_and_download_a_3mb_file(storage: Storage, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    source = tmp_path / "in" / "blob.bin"
    source.parent.mkdir()
    source.write_bytes(payload)

    await storage.upload_file(source, "state/9/blob.bin")
    got = await storage.get("state/9/blob.bin")
    assert got is not None
    assert got.data == payload

    target = tmp_path / "out" / "nested" / "copy.bin"
    await storage.download_file("state/9/blob.bin", target)
    assert target.read_bytes() == payload
    assert os.listdir(target.parent) == ["copy.bin"]  # no temp file left behind

    with pytest.raises(StorageError):
        await storage.download_file("state/9/missing.bin", tmp_path / "out" / "missing.bin")
    assert not (tmp_path / "out" / "missing.bin").exists()


# aioboto3's managed upload hands each part to aiohttp as bytes, which aiohttp warns about
# past 1 MiB; neither the parts nor how they are sent are ours to choose.
@pytest.mark.filterwarnings(
    "ignore:Sending a large body directly with raw bytes might lock the event loop:ResourceWarning"
)
async def test_s3_large_upload_goes_multipart(
    s3_storage: S3Storage, s3_server: str, tmp_path: Path
) -> None:
    payload = os.urandom(12 * 1024 * 1024)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    storage = S3Storage(s3_storage.bucket, "big", s3_server, multipart_threshold=5 * 1024 * 1024)
    try:
        await storage.upload_file(source, "big.bin")
        got = await storage.get("big.bin")
        assert got is not None
        assert got.data == payload
        # A multipart ETag ends in "-<parts>"; a single PUT's is a plain MD5.
        assert got.etag.strip('"').rpartition("-")[2] == "2"
    finally:
        await storage.close()


# --- Errors ---------------------------------------------------------------------------------------


async def test_s3_builds_one_client_and_reuses_it(
    s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = []
    real_client = s3_storage._session.client

    def counting_client(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return real_client(*args, **kwargs)

    monkeypatch.setattr(s3_storage._session, "client", counting_client)
    # Many first calls at once: only one of them may build the client.
    await asyncio.gather(*(s3_storage.put(f"k/{i}", b"x") for i in range(10)))
    assert len(await s3_storage.list("k/")) == 10
    assert len(made) == 1

    await s3_storage.close()
    assert await s3_storage.get("k/0") is not None  # usable again after close: a new client
    assert len(made) == 2


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
async def test_local_unwritable_location_raises_a_one_line_storage_error(
    tmp_path: Path, where: str
) -> None:
    afile = tmp_path / "afile"
    afile.write_bytes(b"not a folder")
    root = afile / "sub" if where == "under_a_file" else afile
    storage = LocalStorage(root)  # construction does no I/O and must not fail

    with pytest.raises(StorageError) as raised:
        await storage.check_writable()
    message = str(raised.value)
    assert "\n" not in message
    assert str(root) in message
    assert "Not a directory" in message
    assert afile.read_bytes() == b"not a folder"


async def test_s3_errors_become_storage_errors_without_credentials(
    s3_server: str,
) -> None:
    storage = S3Storage("gitstats-no-such-bucket", "", s3_server)
    try:
        with pytest.raises(StorageError) as raised:
            await storage.get("a.json")
    finally:
        await storage.close()
    message = str(raised.value)
    assert "NoSuchBucket" in message
    assert "gitstats-no-such-bucket" in message
    assert "testing" not in message  # the dummy access key and secret
    assert not isinstance(raised.value, PreconditionFailed)


@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "a/../../escape",
        "/etc/passwd",
        "",
        "a//b",
        "a/./b",
        ".locks/x",
        "a/.gitstats-tmp-1",
    ],
)
async def test_keys_that_leave_the_storage_or_hit_internals_are_rejected(
    storage: Storage, key: str
) -> None:
    with pytest.raises(StorageError):
        await storage.put(key, b"x")
    with pytest.raises(StorageError):
        await storage.put_if(key, b"x", None)
    with pytest.raises(StorageError):
        await storage.get(key)
    with pytest.raises(StorageError):
        await storage.stat(key)
    with pytest.raises(StorageError):
        await storage.read_capped(key, 1000)
    with pytest.raises(StorageError):
        await storage.delete(key)
    assert await storage.list("") == []


async def test_list_rejects_a_prefix_with_dotdot(storage: Storage) -> None:
    with pytest.raises(StorageError):
        await storage.list("../")
    with pytest.raises(StorageError):
        await storage.list("state/../..")


async def test_local_dotdot_key_writes_nothing_outside(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    with pytest.raises(StorageError):
        await storage.put("../escape", b"x")
    assert not (tmp_path / "escape").exists()


# --- open_storage ---------------------------------------------------------------------------------


async def test_open_storage_s3_url() -> None:
    storage = open_storage("s3://my-bucket/some/prefix", "http://127.0.0.1:9")
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix, storage.endpoint_url) == (
        "my-bucket",
        "some/prefix/",
        "http://127.0.0.1:9",
    )
    await storage.close()

    bare = open_storage("s3://my-bucket")
    assert isinstance(bare, S3Storage)
    assert (bare.bucket, bare.prefix, bare.endpoint_url) == ("my-bucket", "", None)


def test_open_storage_file_url_and_plain_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_url = open_storage(f"file://{tmp_path}/data")
    assert isinstance(from_url, LocalStorage)
    assert from_url.root == tmp_path / "data"

    plain = open_storage(str(tmp_path / "plain"))
    assert isinstance(plain, LocalStorage)
    assert plain.root == tmp_path / "plain"

    monkeypatch.chdir(tmp_path)
    relative = open_storage("rel/folder")
    assert isinstance(relative, LocalStorage)
    assert relative.root == tmp_path / "rel" / "folder"


@pytest.mark.parametrize("url", ["ftp://host/x", "http://example.invalid/bucket", "gs://b/p"])
def test_open_storage_rejects_other_schemes(url: str) -> None:
    with pytest.raises(StorageError, match="unsupported storage URL"):
        open_storage(url)


@pytest.mark.parametrize("url", ["", "s3:///no-bucket", "file://otherhost/x"])
def test_open_storage_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(StorageError, match="storage URL"):
        open_storage(url)


def test_open_storage_never_echoes_credentials_in_an_s3_url() -> None:
    with pytest.raises(StorageError) as raised:
        open_storage("s3://AKIAEXAMPLE:s3cr3t@bucket/prefix")
    assert "s3cr3t" not in str(raised.value)
    assert "AKIAEXAMPLE" not in str(raised.value)
