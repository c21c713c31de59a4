"""Lifecycle jobs act on what GitHub says when they run, not on what their webhook said: GitHub
delivers suspend and unsuspend, removal and re-addition in no promised order, and a purge that
nobody at GitHub asked for must not remove a live codebase."""

from __future__ import annotations

from contract import registry
from contract.jobs import (
    PURGE_CODEBASE,
    PURGE_INSTALLATION,
    REFRESH_CODEBASE,
    REGISTER_REPOSITORIES,
    SET_INSTALLATION_SUSPENDED,
    Account,
    RegisterRequest,
)
from tests.support.gitrepos import git_commit_count
from tests.support.jobs import ORG, Org
from worker.jobs.locks import codebase_lock


def installation_job(org: Org, **extra: object) -> dict[str, object]:
    return {"installation_id": org.installation_id, "account": ORG.model_dump(), **extra}


async def suspended(org: Org) -> set[bool]:
    entries = await registry.list_entries(org.storage)
    return {entry.suspended for entry in entries}


async def test_suspend_and_unsuspend_delivered_out_of_order_end_as_github_says(
    synced: Org,
) -> None:
    org = synced
    org.fake.suspend_installation(org.installation_id)
    org.fake.suspend_installation(org.installation_id, suspended=False)  # GitHub: active
    # The unsuspend delivery arrives first, the suspend one last.
    await org.enqueue(SET_INSTALLATION_SUSPENDED, installation_job(org, suspended=False))
    await org.enqueue(SET_INSTALLATION_SUSPENDED, installation_job(org, suspended=True))
    await org.run_worker()

    assert await suspended(org) == {False}
    org.repos[0].commit({"after.py": "1\n"})
    await org.push(0)
    await org.run_worker()
    assert (await org.overview(0)).total_commits == git_commit_count(org.repos[0].path)


async def test_a_suspension_github_confirms_is_applied(synced: Org) -> None:
    org = synced
    org.fake.suspend_installation(org.installation_id)
    await org.enqueue(SET_INSTALLATION_SUSPENDED, installation_job(org, suspended=False))
    await org.run_worker()
    assert await suspended(org) == {True}


async def test_a_repository_github_still_shows_is_not_purged(synced: Org) -> None:
    org = synced
    # Removed and added back: the removal's delivery comes after the addition's.
    job = await org.enqueue(PURGE_CODEBASE, {"codebase_id": org.id(1), "account": ORG.model_dump()})
    await org.run_worker()

    assert (await org.result(job)).result["skipped"] == "still on GitHub"
    assert await registry.read_entry(org.storage, org.id(1)) is not None
    assert (await org.overview(1)).total_commits == git_commit_count(org.repos[1].path)


async def test_an_installation_github_still_has_is_not_purged(synced: Org) -> None:
    org = synced
    job = await org.enqueue(PURGE_INSTALLATION, installation_job(org))
    await org.run_worker()

    assert (await org.result(job)).result["skipped"] == "still installed"
    assert len(await registry.list_entries(org.storage)) == 3
    summary, _ = await org.org_files()
    assert summary.total_codebases == 3


async def test_an_org_renamed_on_github_is_renamed_here(synced: Org) -> None:
    org = synced
    org.fake.rename_account(org.installation_id, "acme-corp")
    # What the installation_target "renamed" webhook asks for.
    await org.enqueue(
        REGISTER_REPOSITORIES,
        RegisterRequest(
            installation_id=org.installation_id, account=Account(id=ORG.id, login="acme-corp")
        ).model_dump(mode="json"),
    )
    await org.run_worker()

    entries = await registry.list_entries(org.storage)
    assert {e.org_login for e in entries} == {"acme-corp"}
    assert {e.full_name for e in entries} == {f"acme-corp/repo{i}" for i in range(3)}
    summary, listing = await org.org_files()
    assert summary.org_login == "acme-corp"
    assert {row.full_name for row in listing.codebases} == {e.full_name for e in entries}


async def test_a_refresh_waits_for_the_codebase_it_would_change(synced: Org) -> None:
    org = synced
    before = await registry.read_entry(org.storage, org.id(1))
    org.fake.rename_repository(org.id(1), "renamed")
    request = {
        "codebase_id": org.id(1),
        "installation_id": org.installation_id,
        "account": ORG.model_dump(),
        "repository": org.refs[1].model_dump(mode="json"),
        "trigger": "renamed",
    }
    job = await org.enqueue(REFRESH_CODEBASE, request)
    async with codebase_lock(org.redis, org.id(1)):  # a sync of it is running
        await org.run_worker(max_burst_jobs=1)
        assert await registry.read_entry(org.storage, org.id(1)) == before

    await org.run_worker()
    assert (await org.result(job)).result["full_name"] == "acme/renamed"
    entry = await registry.read_entry(org.storage, org.id(1))
    assert entry is not None and entry.full_name == "acme/renamed"
