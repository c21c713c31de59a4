"""Reconcile rebuilds everything Redis held and every webhook that never came (DESIGN.md,
"Faults": Redis restarted with its queue lost): it lists the App's installations and their
repositories from GitHub, registers what is missing, purges what is gone and syncs what moved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contract import layout, registry
from contract.documents import SCHEMA_VERSION, RunState
from contract.jobs import RECONCILE
from contract.storage import Storage
from tests.support.gitrepos import GitRepo, git_commit_count
from tests.support.jobs import ORG, Org
from tests.support.storage_faults import RefusingStorage


async def reconcile(org: Org, storage: Storage | None = None) -> dict[str, Any]:
    job_id = await org.enqueue(RECONCILE)
    worker = await org.run_worker(storage)
    assert worker.jobs_failed == 0
    return dict((await org.result(job_id)).result)


async def registered(org: Org) -> set[int]:
    return {entry.codebase_id for entry in await registry.list_entries(org.storage)}


async def test_a_repository_whose_registration_was_lost_is_registered_and_synced(
    synced: Org, tmp_path: Path
) -> None:
    org = synced
    repo = GitRepo.init(tmp_path / "late")
    repo.commit({"late.py": "1\n"})
    repo.commit({"later.py": "2\n"})
    added = org.fake.add_repository(org.installation_id, ORG.login, "late", repo.path)

    await reconcile(org)

    assert await registered(org) == {*map(org.id, range(3)), added["id"]}
    overview = await org.storage.get(f"analytics/{added['id']}/overview.json")
    assert overview is not None
    _, listing = await org.org_files()
    assert len(listing.codebases) == 4
    summary, _ = await org.org_files()
    assert summary.total_commits == sum(git_commit_count(r.path) for r in [*org.repos, repo])


async def test_a_repository_removed_without_a_webhook_is_purged(synced: Org) -> None:
    org = synced
    org.fake.remove_repository(org.id(1))

    await reconcile(org)

    assert await registered(org) == {org.id(0), org.id(2)}
    assert await org.storage.list(f"analytics/{org.id(1)}/") == []
    summary, _ = await org.org_files()
    assert summary.total_codebases == 2


async def test_an_installation_removed_without_a_webhook_is_purged(synced: Org) -> None:
    org = synced
    org.fake.remove_installation(org.installation_id)

    await reconcile(org)

    assert await registered(org) == set()
    assert await org.storage.list("analytics/") == []


async def test_a_suspension_without_a_webhook_is_applied(synced: Org) -> None:
    org = synced
    org.fake.suspend_installation(org.installation_id)

    await reconcile(org)

    assert {entry.suspended for entry in await registry.list_entries(org.storage)} == {True}
    assert await registered(org) == set(map(org.id, range(3)))  # suspended, not purged


async def test_when_github_fails_nothing_is_purged(synced: Org) -> None:
    org = synced
    org.fake.remove_repository(org.id(1))
    org.fake.fail_next(r"^/app/installations$", status=502, times=10)

    result = await reconcile(org)

    assert result["lifecycle"] == 0
    assert await registered(org) == set(map(org.id, range(3)))


async def test_a_queue_lost_with_redis_is_rebuilt(org: Org) -> None:
    # The installation webhook was taken (its registration queued), then Redis lost everything.
    await org.register()
    await org.redis.flushdb()

    await reconcile(org)

    assert await registered(org) == set(map(org.id, range(3)))
    for i in range(3):
        assert (await org.overview(i)).total_commits == git_commit_count(org.repos[i].path)


async def test_a_sync_that_keeps_failing_on_the_same_refs_backs_off(
    synced: Org, tmp_path: Path
) -> None:
    org = synced
    org.repos[2].commit({"quiet.py": "no webhook\n"})
    # Every run of this codebase fails to commit: its sync gives up after its tries.
    broken = RefusingStorage(tmp_path / "storage", f"state/{org.id(2)}/manifest.json", 10**6)

    first = await reconcile(org, broken)
    again = await reconcile(org, broken)  # the same refs, within the backoff

    assert (first["enqueued"], first.get("backing_off", 0)) == (1, 0)
    assert (again["enqueued"], again.get("backing_off")) == (0, 1)
    assert (await org.status(2)).state is RunState.FAILED

    org.repos[2].commit({"pushed.py": "new refs\n"})  # new refs are tried at once
    assert (await reconcile(org))["enqueued"] == 1
    assert (await org.overview(2)).total_commits == git_commit_count(org.repos[2].path)


async def test_documents_of_an_older_schema_are_written_again(synced: Org) -> None:
    """After an upgrade, a codebase nobody pushes to is synced once, so that its documents
    gain what the new version adds."""
    key = layout.codebase_document(synced.id(1), "status")
    stored = await synced.storage.get(key)
    assert stored is not None
    old = json.loads(stored.data) | {"schema_version": SCHEMA_VERSION - 1}
    await synced.storage.put(key, json.dumps(old).encode())

    result = await reconcile(synced)

    assert result["enqueued"] == 1
    assert (await synced.status(1)).schema_version == SCHEMA_VERSION
    assert (await reconcile(synced))["enqueued"] == 0
