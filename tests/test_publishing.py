"""Readers see only committed state: documents are published after the run's manifest is
committed, and a document that a failed or superseded run left behind is written again.

Storage faults are a local folder that refuses one kind of write; the lost lock is another job's
token put in the lock's place mid-run (tests/support/jobs.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from contract import layout
from contract.documents import (
    Activity,
    Branches,
    ContributorActivityIndex,
    ContributorWeek,
    Document,
    Overview,
    Ownership,
    PathsDirectory,
    Status,
    Teams,
    weeks_digest,
)
from contract.redis_keys import codebase_lock_key
from contract.storage import StorageError
from contract.storage.local import LocalStorage
from tests.support.documents import assert_equals_a_clean_run, read_documents
from tests.support.gitrepos import GitRepo
from tests.support.jobs import HookedStorage, Org, write_every_phase
from tests.support.storage_faults import RefusingStorage
from worker.engine.export import body_and_hash, content_hash
from worker.engine.pipeline import STATUS_LATENCY_S, analyze_codebase
from worker.engine.store import Manifest

CODEBASE = 1
WEEKS = TypeAdapter(list[ContributorWeek])
DOCUMENT_MODELS: dict[str, type[Document]] = {
    "overview": Overview,
    "branches": Branches,
    "activity": Activity,
    "ownership": Ownership,
    "contributor_activity": ContributorActivityIndex,
    "teams": Teams,
    "status": Status,
    "paths": PathsDirectory,
}


async def analyze(repo: GitRepo, storage: LocalStorage, work: Path) -> None:
    await analyze_codebase(str(repo.path), storage, CODEBASE, work)


async def overview_bytes(storage: LocalStorage) -> bytes:
    stored = await storage.get(layout.codebase_document(CODEBASE, "overview"))
    assert stored is not None
    return stored.data


async def test_a_run_that_cannot_commit_publishes_nothing(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.py": "a = 1\n"})
    kept = git_repo.head()
    storage = RefusingStorage(tmp_path / "storage", "manifest.json", times=0)
    await analyze(git_repo, storage, tmp_path / "work")
    before = await overview_bytes(storage)

    git_repo.commit({"b.py": "b = 2\n" * 50})
    storage.times = 1  # the manifest write of the next run fails: it never commits
    with pytest.raises(StorageError, match="injected"):
        await analyze(git_repo, storage, tmp_path / "work")
    assert await overview_bytes(storage) == before  # readers never saw the uncommitted commit

    git_repo.reset_branch("main", kept)  # and the commit is force-pushed away
    await analyze(git_repo, storage, tmp_path / "work")
    await assert_equals_a_clean_run(storage, CODEBASE, git_repo.path, tmp_path)


async def test_a_document_not_written_after_the_commit_is_written_by_the_next_run(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.py": "a = 1\n"})
    storage = RefusingStorage(tmp_path / "storage", "overview.json", times=0)
    await analyze(git_repo, storage, tmp_path / "work")

    git_repo.commit({"b.py": "b = 2\n"})
    storage.times = 1
    with pytest.raises(StorageError, match="injected"):
        await analyze(git_repo, storage, tmp_path / "work")
    await analyze(git_repo, storage, tmp_path / "work")  # nothing new to extract
    await assert_equals_a_clean_run(storage, CODEBASE, git_repo.path, tmp_path)


async def test_a_push_writes_the_weeks_of_the_people_it_touched(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    """contributor_activity's weeks are an object per person, named by its content: a push
    writes those of the people whose weeks changed, and deletes those only the index it
    replaced named; what a run that failed wrote goes with the next run."""
    ada, bob = ("Ada", "ada@example.com"), ("Bob", "bob@example.com")
    git_repo.commit({"a.py": "a = 1\n"}, author=ada)
    git_repo.commit({"b.py": "b = 1\nc = 1\n"}, author=bob)
    storage = RefusingStorage(tmp_path / "storage", "contributor_activity.json", times=0)
    prefix = layout.contributor_weeks_objects(CODEBASE)

    async def weeks() -> dict[str, str]:
        found = {}
        for key in await storage.list(prefix):
            info = await storage.stat(key)
            assert info is not None
            found[key.removeprefix(f"analytics/{CODEBASE}/").removesuffix(".json")] = info.version
        return found

    await analyze(git_repo, storage, tmp_path / "work")
    first = await weeks()
    git_repo.commit({"a.py": "a = 2\nb = 3\n"}, author=ada)
    result = await analyze_codebase(str(git_repo.path), storage, CODEBASE, tmp_path / "work")
    second = await weeks()
    assert len(first) == len(second) == 2
    (bobs,) = first.keys() & second.keys()
    assert first[bobs] == second[bobs]  # not written again
    (adas,) = second.keys() - first.keys()
    assert [n for n in result.documents_written if n.startswith(layout.WEEKS_PREFIX)] == [adas]

    kept = git_repo.head()
    git_repo.commit({"b.py": "b = 2\n"}, author=bob)
    storage.times = 1  # the index is not written: the run fails once it wrote Bob's weeks
    with pytest.raises(StorageError, match="injected"):
        await analyze(git_repo, storage, tmp_path / "work")
    assert len(await weeks()) == 3
    git_repo.reset_branch("main", kept)  # and that commit is force-pushed away
    await analyze(git_repo, storage, tmp_path / "work")
    assert await weeks() == second
    await assert_equals_a_clean_run(storage, CODEBASE, git_repo.path, tmp_path)


class StatusWatch(LocalStorage):
    """A local folder that records each status written (when, and what it says), and holds the
    upload of a push's parts until `release` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.statuses: list[tuple[float, dict[str, Any]]] = []
        self.storing = asyncio.Event()  # a status says the run is in its store phase
        self.release: asyncio.Event | None = None

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> str:
        if key == layout.codebase_document(CODEBASE, "status"):
            status = json.loads(data)
            self.statuses.append((time.monotonic(), status))
            if status["phase"] == "store":
                self.storing.set()
        return await super().put(key, data, content_type)

    async def upload_file(self, path: Path, key: str) -> None:
        if self.release is not None and "/parts/" in key:
            await self.release.wait()
        await super().upload_file(path, key)


async def test_the_status_follows_the_phases_without_a_write_for_each(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    """A push's phases take milliseconds each: the status is written when a run begins, at
    most every STATUS_LATENCY_S after that, and when it ends; a phase that lasts is shown
    while it lasts."""
    git_repo.commit({"a.py": "a = 1\n"})
    storage = StatusWatch(tmp_path / "storage")
    await analyze(git_repo, storage, tmp_path / "work")
    written = [at for at, _ in storage.statuses]
    assert storage.statuses[0][1]["state"] == "running"
    assert storage.statuses[-1][1]["state"] == "succeeded"
    gaps = [later - earlier for earlier, later in itertools.pairwise(written[:-1])]
    assert all(gap >= STATUS_LATENCY_S * 0.9 for gap in gaps), gaps

    git_repo.commit({"b.py": "b = 2\n"})
    storage.statuses.clear()
    storage.release = asyncio.Event()
    run = asyncio.ensure_future(analyze(git_repo, storage, tmp_path / "work"))
    await asyncio.wait_for(storage.storing.wait(), timeout=30)
    assert not run.done()  # seen while the store phase waits on its upload
    storage.release.set()
    await run
    assert storage.statuses[-1][1]["state"] == "succeeded"


async def test_a_run_that_lost_its_lock_writes_nothing(
    synced: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = synced
    write_every_phase(monkeypatch)
    before = await org.document(0, "overview")
    manifest = await org.storage.get(layout.manifest(org.id(0)))

    async def another_job_takes_the_lock() -> None:
        # As if this job stalled past the lock's TTL and another took the codebase.
        await org.redis.set(codebase_lock_key(org.id(0)), "another-job", px=600_000)

    org.repos[0].commit({"late.py": "late\n"})
    hooked = HookedStorage(tmp_path / "storage", "aggregate", another_job_takes_the_lock)
    await org.push(0)
    await org.run_worker(hooked, max_burst_jobs=1)

    assert await org.document(0, "overview") == before
    assert await org.storage.get(layout.manifest(org.id(0))) == manifest
    assert (await org.status(0)).state.value == "running"  # the status stays the owner's

    await org.redis.delete(codebase_lock_key(org.id(0)))  # the other job is done
    await org.run_worker()
    assert (await org.overview(0)).total_commits == before["total_commits"] + 1


async def test_a_storage_failure_is_reported_without_where_storage_is(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.py": "a = 1\n"})
    storage = RefusingStorage(tmp_path / "storage", "manifest.json", times=1)
    with pytest.raises(StorageError, match="injected"):
        await analyze(git_repo, storage, tmp_path / "work")

    status = (await read_documents(storage, CODEBASE, ["status"]))["status"]
    assert status["state"] == "failed"
    assert str(tmp_path) not in status["last_error"]["message"]
    assert "storage could not be read or written" in status["last_error"]["message"]


async def test_what_an_unfinished_run_uploaded_is_collected_by_the_next(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.py": "a = 1\n"})
    storage = RefusingStorage(tmp_path / "storage", "manifest.json", times=0)
    await analyze(git_repo, storage, tmp_path / "work")
    kept = set(await storage.list(layout.state_prefix(CODEBASE)))

    git_repo.commit({"b.py": "b = 2\n"})
    storage.times = 1  # its parts and snapshot are uploaded, its manifest never written
    with pytest.raises(StorageError, match="injected"):
        await analyze(git_repo, storage, tmp_path / "work")
    left = set(await storage.list(layout.state_prefix(CODEBASE))) - kept
    assert left  # the unfinished run's uploads

    await analyze(git_repo, storage, tmp_path / "work")
    after = set(await storage.list(layout.state_prefix(CODEBASE)))
    stored = await storage.get(layout.manifest(CODEBASE))
    assert stored is not None
    assert after == Manifest.model_validate_json(stored.data).objects()
    await assert_equals_a_clean_run(storage, CODEBASE, git_repo.path, tmp_path)


async def test_the_hash_of_what_a_document_says_leaves_out_only_when_it_was_made(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    """Publishing serializes each document once and hashes it without its generation time: the
    same hash as a serialization that leaves the time out, for every document a run makes,
    activity's included, which is assembled from JSON written in Arrow, and the weeks of
    contributor_activity's people, written in Arrow too: their bytes are the models', names
    that JSON escapes included."""
    git_repo.commit({"a.py": "a = 1\n", "docs/b.md": "# b\n"})
    git_repo.commit(
        {"a.py": "a = 2\nb = 3\n"}, author=('Zo\u00eb "Z" O\\Br\u00efen \u2713', "zoe@example.com")
    )
    storage = LocalStorage(tmp_path / "storage")
    await analyze(git_repo, storage, tmp_path / "work")
    checked, weeks = 0, 0
    for key in await storage.list(f"analytics/{CODEBASE}/"):
        stored = await storage.get(key)
        assert stored is not None
        name = key.removeprefix(f"analytics/{CODEBASE}/").removesuffix(".json")
        if name.startswith(layout.WEEKS_PREFIX):
            # A person's weeks, written by Arrow: byte for byte the models' JSON.
            listed = WEEKS.validate_json(stored.data)
            assert len(listed) == 1 and WEEKS.dump_json(listed) == stored.data
            assert name.removeprefix(layout.WEEKS_PREFIX) == weeks_digest(stored.data)
            weeks += 1
            continue
        model = DOCUMENT_MODELS[name.split("/")[0]]
        document = model.model_validate_json(stored.data)
        body, digest = body_and_hash(document)
        assert body == document.to_json() == stored.data
        assert digest == content_hash(document)
        made = list(type(document).model_fields)[-1]
        assert made in ("generated_at", "updated_at")
        later = document.model_copy(update={made: datetime(2030, 1, 1, tzinfo=UTC)})
        assert body_and_hash(later)[1] == digest and body_and_hash(later)[0] != body
        checked += 1
    assert checked >= 7
    # The two people's weeks differ (their lines do): two objects.
    assert weeks == 2
