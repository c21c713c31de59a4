"""The worker's jobs end to end, as deployed (tests/support/jobs.py): a real arq Worker on a
real Redis, the fake GitHub serving real git over HTTP, and storage in a local folder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import worker.main
from contract import layout, registry
from contract.documents import RunState
from contract.jobs import (
    PURGE_CODEBASE,
    PURGE_INSTALLATION,
    RECONCILE,
    REFRESH_CODEBASE,
    REGISTER_REPOSITORIES,
    SET_INSTALLATION_SUSPENDED,
    RegisterRequest,
    RepositoryRef,
    SyncRequest,
    deserialize_job,
    serialize_job,
)
from contract.redis_keys import generation_key, synced_key
from tests.support.fake_github import EXPIRED_TOKEN, INSTALLATION_TOKEN
from tests.support.gitrepos import git_commit_count
from tests.support.jobs import ORG, HookedStorage, Org, token_requests, write_every_phase
from tests.support.leaks import TOKEN_SHAPES, LeakScan, issued
from worker.jobs.locks import codebase_lock


async def test_register_backfills_every_repository_and_the_org(org: Org) -> None:
    register_job = await org.register()
    worker = await org.run_worker()
    assert worker.jobs_failed == 0
    assert (await org.result(register_job)).result == {
        "installation_id": org.installation_id,
        "registered": 3,
    }
    for i, repo in enumerate(org.repos):
        entry = await registry.read_entry(org.storage, org.id(i))
        assert entry is not None
        assert (entry.full_name, entry.clone_url) == (org.refs[i].full_name, org.refs[i].clone_url)
        overview = await org.overview(i)
        assert overview.full_name == f"acme/repo{i}"
        assert overview.total_commits == git_commit_count(repo.path)
        status = await org.status(i)
        assert status.state is RunState.SUCCEEDED
        assert status.refs == {"main": repo.head()}
    summary, listing = await org.org_files()
    assert summary.total_codebases == 3
    assert summary.total_commits == sum(git_commit_count(r.path) for r in org.repos)
    assert summary.total_contributors == 1 + 3  # Alice everywhere, one developer per repo
    assert [(row.full_name, row.state) for row in listing.codebases] == [
        (f"acme/repo{i}", RunState.SUCCEEDED) for i in range(3)
    ]


async def test_registered_codebases_are_listed_before_their_first_export(org: Org) -> None:
    await org.register()
    await org.run_worker(max_burst_jobs=1)  # the registration only, not the backfills

    for i in range(3):
        assert (await org.status(i)).state is RunState.QUEUED
    summary, listing = await org.org_files()
    assert (summary.total_codebases, summary.total_commits) == (3, 0)
    assert [row.state for row in listing.codebases] == [RunState.QUEUED] * 3

    await org.run_worker()
    summary, listing = await org.org_files()
    assert summary.total_commits == sum(git_commit_count(r.path) for r in org.repos)
    assert [row.state for row in listing.codebases] == [RunState.SUCCEEDED] * 3


async def test_registering_named_repositories_asks_github_for_the_rest(org: Org) -> None:
    # installation_repositories webhooks name a repository without its clone_url.
    named = RepositoryRef(id=org.id(2), full_name=org.refs[2].full_name)
    request = RegisterRequest(
        installation_id=org.installation_id, account=ORG, repositories=[named]
    )
    await org.enqueue(REGISTER_REPOSITORIES, request.model_dump(mode="json"))
    await org.run_worker()

    entry = await registry.read_entry(org.storage, org.id(2))
    assert entry is not None
    assert (entry.clone_url, entry.default_branch) == (org.refs[2].clone_url, "main")
    assert (await org.status(2)).state is RunState.SUCCEEDED
    _, listing = await org.org_files()
    assert [row.codebase_id for row in listing.codebases] == [org.id(2)]


async def test_a_sync_waits_for_the_codebase_lock(synced: Org) -> None:
    org = synced
    org.repos[0].commit({"waited.py": "1\n"})
    async with codebase_lock(org.redis, org.id(0)):
        job_id = await org.push(0)
        await org.run_worker(max_burst_jobs=1)  # finds the lock taken: comes back later
    assert (await org.overview(0)).total_commits < git_commit_count(org.repos[0].path)

    await org.run_worker()
    assert (await org.result(job_id)).job_try == 2
    assert (await org.overview(0)).total_commits == git_commit_count(org.repos[0].path)


async def test_a_push_updates_only_its_codebase_and_the_org_totals(synced: Org) -> None:
    org = synced
    untouched = {i: await org.etags(i) for i in (0, 2)}
    before, _ = await org.org_files()
    org.repos[1].commit({"new.py": "a\nb\nc\n"}, message="pushed")
    job_id = await org.push(1)
    await org.run_worker()

    assert (await org.result(job_id)).result["commits_added"] == 1
    assert (await org.overview(1)).total_commits == git_commit_count(org.repos[1].path)
    assert {i: await org.etags(i) for i in (0, 2)} == untouched
    after, listing = await org.org_files()
    assert after.total_commits == before.total_commits + 1
    assert after.additions_lines == before.additions_lines + 3
    assert len(listing.codebases) == 3


async def test_pushes_before_the_sync_starts_join_its_job(synced: Org) -> None:
    org = synced
    org.repos[0].commit({"one.py": "1\n"})
    first = await org.push(0)
    org.repos[0].commit({"two.py": "2\n"})
    second = await org.push(0)  # both arrive before the worker runs: one job, one run
    assert second == first
    worker = await org.run_worker()
    assert worker.jobs_complete == 1
    assert (await org.result(first)).result["runs"] == 1
    assert (await org.overview(0)).total_commits == git_commit_count(org.repos[0].path)


async def test_purge_removes_everything_of_the_codebase(synced: Org, tmp_path: Path) -> None:
    org = synced
    gone = org.id(1)
    org.fake.remove_repository(gone)
    await org.enqueue(PURGE_CODEBASE, {"codebase_id": gone, "account": ORG.model_dump()})
    await org.run_worker()

    assert await org.storage.list(f"analytics/{gone}/") == []
    assert await org.storage.list(layout.state_prefix(gone)) == []
    assert await registry.read_entry(org.storage, gone) is None
    summary, listing = await org.org_files()
    assert [row.codebase_id for row in listing.codebases] == [org.id(0), org.id(2)]
    assert summary.total_commits == sum(git_commit_count(org.repos[i].path) for i in (0, 2))
    assert summary.total_codebases == 2
    assert not (tmp_path / "work" / "repos" / f"{gone}.git").exists()
    assert await org.redis.get(synced_key(gone)) is None

    # A webhook that was already on its way does not bring it back.
    late = await org.push(1)
    await org.run_worker()
    assert (await org.result(late)).result["skipped"] == "purged"
    assert await org.storage.list(f"analytics/{gone}/") == []
    assert await registry.read_entry(org.storage, gone) is None


async def test_purging_the_installation_removes_the_org(synced: Org) -> None:
    org = synced
    org.fake.remove_installation(org.installation_id)
    await org.enqueue(
        PURGE_INSTALLATION,
        {"installation_id": org.installation_id, "account": ORG.model_dump()},
    )
    await org.run_worker()
    assert await org.storage.list("analytics/") == []
    assert await org.storage.list("meta/") == []
    assert await org.storage.list("state/") == []


@pytest.mark.parametrize("loss", ["repository deleted", "installation gone"])
async def test_lost_access_fails_with_a_reason_and_no_retries(synced: Org, loss: str) -> None:
    org = synced
    before, _ = await org.org_files()
    if loss == "repository deleted":
        org.fake.remove_repository(org.id(2))
    else:
        org.fake.fail_next(r"/access_tokens$", status=404)
    job_id = await org.push(2)
    worker = await org.run_worker()

    result = await org.result(job_id)
    assert (result.job_try, worker.jobs_retried, worker.jobs_failed) == (1, 0, 0)
    status = await org.status(2)
    assert status.state is RunState.FAILED
    assert status.last_error is not None
    assert "repository acme/repo2 is gone or access was revoked" in status.last_error.message
    after, listing = await org.org_files()
    assert [row.state for row in listing.codebases] == [
        RunState.SUCCEEDED,
        RunState.SUCCEEDED,
        RunState.FAILED,
    ]
    assert after.total_commits == before.total_commits  # the last export still counts


async def test_a_github_502_on_the_token_is_retried(org: Org) -> None:
    org.fake.fail_next(r"/access_tokens$", status=502)
    job_id = await org.push(0)  # not registered yet: the sync registers it from the request
    worker = await org.run_worker()

    result = await org.result(job_id)
    assert (result.job_try, worker.jobs_retried, worker.jobs_failed) == (2, 1, 0)
    assert token_requests(org.fake) == [502, 201]
    assert (await org.status(0)).state is RunState.SUCCEEDED
    assert (await org.overview(0)).total_commits == git_commit_count(org.repos[0].path)
    assert await registry.read_entry(org.storage, org.id(0)) is not None


async def test_a_token_expiring_mid_job_is_replaced(org: Org, tmp_path: Path) -> None:
    async def expire() -> None:
        org.fake.expire_tokens()

    storage = HookedStorage(tmp_path / "storage", "fetch", expire)
    job_id = await org.push(0)
    await org.run_worker(storage)

    assert (await org.result(job_id)).job_try == 1
    assert (await org.status(0)).state is RunState.SUCCEEDED
    assert token_requests(org.fake) == [201, 201]
    git = [r for r in org.fake.requests if r.path.startswith("/acme/repo0.git/")]
    # Refused once with the expired token, then the pack came with the new one. (The status of
    # the last request is not checked: libgit2 may hang up before the fake finishes it.)
    assert [(r.method, r.credential) for r in git][1:] == [
        ("GET", EXPIRED_TOKEN),
        ("GET", INSTALLATION_TOKEN),
        ("POST", INSTALLATION_TOKEN),
    ]
    assert git[1].status == 401


async def test_a_push_during_a_sync_is_in_the_documents(
    synced: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = synced
    write_every_phase(monkeypatch)
    pushed: list[str] = []

    async def push_while_running() -> None:
        # The run has fetched: this commit is not in what it is analysing.
        org.repos[0].commit({"late.py": "late\n"}, message="late")
        pushed.append(await org.push(0))

    storage = HookedStorage(tmp_path / "storage", "delta", push_while_running)
    org.repos[0].commit({"early.py": "early\n"}, message="early")
    first = await org.push(0)
    worker = await org.run_worker(storage)

    assert worker.jobs_failed == 0
    assert (await org.result(first)).result["runs"] == 2
    assert (await org.result(pushed[0])).result["skipped"] == "covered by an earlier run"
    overview = await org.overview(0)
    assert overview.total_commits == git_commit_count(org.repos[0].path)
    assert overview.head_sha == org.repos[0].head()
    summary, _ = await org.org_files()
    assert summary.total_commits == sum(git_commit_count(r.path) for r in org.repos)


async def test_reconcile_syncs_codebases_that_moved_silently(synced: Org) -> None:
    org = synced
    untouched = {i: await org.etags(i) for i in (0, 1)}
    org.repos[2].commit({"quiet.py": "no webhook\n"})
    job_id = await org.enqueue(RECONCILE)
    await org.run_worker()

    assert (await org.result(job_id)).result == {"checked": 3, "enqueued": 1, "lifecycle": 0}
    assert (await org.overview(2)).total_commits == git_commit_count(org.repos[2].path)
    assert {i: await org.etags(i) for i in (0, 1)} == untouched


async def test_refresh_follows_a_rename(synced: Org) -> None:
    org = synced
    renamed = RepositoryRef.model_validate(org.fake.rename_repository(org.id(1), "renamed"))
    request = SyncRequest(
        codebase_id=org.id(1),
        installation_id=org.installation_id,
        account=ORG,
        repository=renamed,
        trigger="renamed",
    )
    await org.enqueue(REFRESH_CODEBASE, request.model_dump(mode="json"))
    await org.run_worker()

    entry = await registry.read_entry(org.storage, org.id(1))
    assert entry is not None
    assert (entry.full_name, entry.clone_url) == ("acme/renamed", renamed.clone_url)
    assert (await org.overview(1)).full_name == "acme/renamed"
    _, listing = await org.org_files()
    assert "acme/renamed" in [row.full_name for row in listing.codebases]


async def test_a_suspended_installation_is_skipped_until_unsuspended(synced: Org) -> None:
    org = synced
    suspend = {"installation_id": org.installation_id, "account": ORG.model_dump()}
    org.fake.suspend_installation(org.installation_id)
    await org.enqueue(SET_INSTALLATION_SUSPENDED, suspend | {"suspended": True})
    await org.run_worker()
    org.repos[0].commit({"while-suspended.py": "1\n"})
    skipped = await org.push(0)
    await org.run_worker()
    assert (await org.result(skipped)).result["skipped"] == "installation suspended"
    assert (await org.overview(0)).total_commits < git_commit_count(org.repos[0].path)

    org.fake.suspend_installation(org.installation_id, suspended=False)
    await org.enqueue(SET_INSTALLATION_SUSPENDED, suspend | {"suspended": False})
    await org.run_worker()
    assert (await org.overview(0)).total_commits == git_commit_count(org.repos[0].path)


async def test_tokens_never_leak(
    org: Org, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def expire() -> None:
        org.fake.expire_tokens()

    await org.register()
    await org.run_worker(HookedStorage(tmp_path / "storage", "fetch", expire))
    org.repos[1].commit({"more.py": "more\n"})
    await org.push(1)
    await org.run_worker()
    assert len(token_requests(org.fake)) >= 3  # several tokens were in play

    for i in range(3):
        config = (tmp_path / "work" / "repos" / f"{org.id(i)}.git" / "config").read_text()
        assert f"url = {org.refs[i].clone_url}\n" in config
    scan = LeakScan([*TOKEN_SHAPES, *issued(org.fake.issued_tokens())])
    scan.folders(tmp_path / "storage", tmp_path / "work")
    scan.data("log", caplog.text)
    await scan.redis(org.redis)
    assert scan.hits == []


def test_worker_settings_come_from_the_environment_when_looked_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(RuntimeError, match="REDIS_URL is not set"):
        _ = worker.main.WorkerSettings
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret@redis.internal:6380/2")
    monkeypatch.setenv("WORKER_CONCURRENCY", "7")
    settings = worker.main.WorkerSettings
    assert settings.max_jobs == 7
    assert (settings.redis_settings.host, settings.redis_settings.port) == ("redis.internal", 6380)
    assert settings.redis_settings.database == 2
    monkeypatch.setenv("REDIS_URL", "http://:s3cret@redis.internal")
    with pytest.raises(RuntimeError, match="not a Redis URL") as raised:
        _ = worker.main.WorkerSettings
    assert "s3cret" not in str(raised.value)


def test_jobs_and_results_are_json() -> None:
    payload = {"t": 1, "r": ValueError("no token here"), "a": [{"codebase_id": 1}]}
    assert deserialize_job(serialize_job(payload)) == {
        "t": 1,
        "r": "ValueError: no token here",
        "a": [{"codebase_id": 1}],
    }


async def test_a_push_that_joined_a_queued_sync_is_not_skipped_as_covered(synced: Org) -> None:
    org = synced
    first = await org.push(0)  # queued, generation g
    generation = int(await org.redis.get(generation_key(org.id(0))))
    # A run already under way when that push came covers g, and says so as it ends.
    await org.redis.set(synced_key(org.id(0)), generation)
    org.repos[0].commit({"joined.py": "1\n"})
    assert await org.push(0) == first  # joins the queued job: generation g + 1

    await org.run_worker()

    assert (await org.result(first)).result.get("skipped") is None
    assert (await org.overview(0)).total_commits == git_commit_count(org.repos[0].path)
