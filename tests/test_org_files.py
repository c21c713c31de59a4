"""Org files are merged by compare-and-swap: many codebases finishing at once lose none."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime

import pytest

from contract import layout
from contract.documents import (
    TOP_HOTSPOTS,
    AuthoredTotals,
    CodebaseRow,
    CodebasesList,
    Excluded,
    ExcludedFigures,
    LanguageShare,
    OrgHotspot,
    OrgLanguage,
    OrgSummary,
    Overview,
    RunState,
    Status,
)
from contract.org_state import CodebaseContribution, OrgState, org_state_key, summarize
from contract.registry import CodebaseEntry
from contract.storage import Storage
from worker.jobs.org_files import (
    contribution_from_documents,
    drop_org_if_empty,
    merge_codebase_into_org,
    merge_codebases_into_org,
    pending_contribution,
    set_codebase_state_in_org,
)

ORG_ID, ORG_LOGIN = 4242, "acme"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    backend: Storage = request.getfixturevalue(f"{request.param}_storage")
    return backend


def key_of(email: str) -> str:
    return hashlib.sha256(email.lower().encode()).hexdigest()


def contribution(i: int) -> CodebaseContribution:
    """Codebase i: its own numbers, one contributor of its own and one everybody shares, and a
    bot of its own whose work is not authored."""
    row = CodebaseRow(
        codebase_id=1000 + i,
        full_name=f"acme/repo-{i:02d}",
        default_branch="main",
        primary_language="Python",
        total_commits=i + 1,
        total_contributors=2,
        total_branches=1,
        total_churn=11 * i,
        total_lines=100 + i,
        last_commit_at=NOW,
        state=RunState.SUCCEEDED,
        updated_at=NOW,
    )
    return CodebaseContribution(
        row=row,
        exported=True,
        additions_lines=10 * i,
        deletions_lines=i,
        languages=[OrgLanguage(language="Python", type="programming", bytes=100 * i, files=i)],
        contributor_keys=sorted(
            {key_of("shared@example.com"), key_of(f"dev{i}@example.com"), key_of(f"bot{i}@x")}
        ),
        authored=AuthoredTotals(
            commits=i,
            contributors=2,
            additions_lines=9 * i,
            deletions_lines=i // 2,
            addition_bytes=90 * i,
            deletion_bytes=5 * i,
        ),
        authored_contributor_keys=sorted(
            {key_of("shared@example.com"), key_of(f"dev{i}@example.com")}
        ),
    )


async def read_org_files(storage: Storage) -> tuple[OrgSummary, CodebasesList, OrgState]:
    summary = await storage.get(layout.org_document(ORG_ID, "org_summary"))
    listing = await storage.get(layout.org_document(ORG_ID, "codebases_list"))
    state = await storage.get(org_state_key(ORG_ID))
    assert summary is not None and listing is not None and state is not None
    return (
        OrgSummary.model_validate_json(summary.data),
        CodebasesList.model_validate_json(listing.data),
        OrgState.model_validate_json(state.data),
    )


async def test_concurrent_merges_keep_every_codebase(storage: Storage) -> None:
    n = 20
    await asyncio.gather(
        *(
            merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1000 + i, contribution(i))
            for i in range(n)
        )
    )
    summary, listing, state = await read_org_files(storage)
    assert len(state.codebases) == n
    assert [row.codebase_id for row in listing.codebases] == [1000 + i for i in range(n)]
    assert summary.total_codebases == n
    assert summary.total_commits == sum(i + 1 for i in range(n))
    assert summary.additions_lines == sum(10 * i for i in range(n))
    assert summary.deletions_lines == sum(range(n))
    assert summary.total_churn == summary.additions_lines + summary.deletions_lines
    assert summary.total_lines == sum(100 + i for i in range(n))
    assert summary.total_contributors == 2 * n + 1  # a person and a bot each, one shared
    assert summary.languages == [
        OrgLanguage(language="Python", type="programming", bytes=100 * sum(range(n)), files=190)
    ]
    assert summary.authored == AuthoredTotals(
        commits=sum(range(n)),
        contributors=n + 1,  # one each, plus the one they share
        additions_lines=9 * sum(range(n)),
        deletions_lines=sum(i // 2 for i in range(n)),
        addition_bytes=90 * sum(range(n)),
        deletion_bytes=5 * sum(range(n)),
    )


async def test_concurrent_removals_and_updates(storage: Storage) -> None:
    await merge_codebases_into_org(
        storage, ORG_ID, ORG_LOGIN, {1000 + i: contribution(i) for i in range(10)}
    )
    updated = contribution(3).model_copy(update={"additions_lines": 1_000})
    await asyncio.gather(
        *(
            merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1000 + i, None)
            for i in range(5, 10)
        ),
        merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1003, updated),
        set_codebase_state_in_org(storage, ORG_ID, ORG_LOGIN, 1001, RunState.FAILED),
    )
    summary, listing, _ = await read_org_files(storage)
    assert [row.codebase_id for row in listing.codebases] == [1000, 1001, 1002, 1003, 1004]
    assert listing.codebases[1].state is RunState.FAILED
    assert summary.additions_lines == 0 + 10 + 20 + 1_000 + 40
    assert summary.total_commits == 1 + 2 + 3 + 4 + 5  # a failed run keeps its last numbers
    assert summary.authored.commits == 0 + 1 + 2 + 3 + 4


async def test_pending_codebases_are_listed_but_not_counted(
    storage: Storage,
) -> None:
    entry = CodebaseEntry(
        codebase_id=7,
        org_id=ORG_ID,
        org_login=ORG_LOGIN,
        installation_id=1,
        full_name="acme/new",
        clone_url="https://example.invalid/acme/new.git",
        registered_at=NOW,
        updated_at=NOW,
    )
    await merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1001, contribution(1))
    await merge_codebases_into_org(
        storage,
        ORG_ID,
        ORG_LOGIN,
        {7: pending_contribution(entry), 1001: pending_contribution(entry)},
        keep_existing=True,
    )
    summary, listing, _ = await read_org_files(storage)
    assert summary.total_codebases == 2
    assert summary.total_commits == 2  # only the exported one
    assert (summary.authored.commits, summary.authored.contributors) == (1, 2)
    assert {(r.codebase_id, r.state) for r in listing.codebases} == {
        (7, RunState.QUEUED),
        (1001, RunState.SUCCEEDED),  # registering again did not reset it
    }


async def test_unchanged_state_leaves_the_public_files_alone(storage: Storage) -> None:
    await merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1001, contribution(1))
    before = await storage.get(layout.org_document(ORG_ID, "org_summary"))
    await merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1001, contribution(1))
    after = await storage.get(layout.org_document(ORG_ID, "org_summary"))
    assert before is not None and after is not None
    assert after.etag == before.etag  # pollers see no change, so none is reported


async def test_an_emptied_org_is_dropped(storage: Storage) -> None:
    await merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1001, contribution(1))
    assert not await drop_org_if_empty(storage, ORG_ID)
    await merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1001, None)
    assert await drop_org_if_empty(storage, ORG_ID)
    assert await storage.list(f"analytics/orgs/{ORG_ID}/") == []
    assert await storage.get(org_state_key(ORG_ID)) is None


def test_contribution_from_documents_takes_keys_from_the_run() -> None:
    overview = Overview(
        codebase_id=5,
        full_name="acme/five",
        default_branch="main",
        head_sha="a" * 40,
        total_commits=3,
        merge_commits=0,
        total_contributors=2,
        total_branches=1,
        additions_lines=30,
        deletions_lines=4,
        addition_bytes=300,
        deletion_bytes=40,
        total_churn=34,
        net_sloc=26,
        total_churn_bytes=340,
        net_bytes=260,
        total_files=2,
        total_lines=26,
        total_bytes=260,
        primary_language="Go",
        languages=[LanguageShare(language="Go", type="programming", bytes=260, files=2)],
        first_commit_at=NOW,
        last_commit_at=NOW,
        authored=AuthoredTotals(
            commits=2,
            contributors=1,
            additions_lines=20,
            deletions_lines=3,
            addition_bytes=200,
            deletion_bytes=30,
        ),
        excluded=Excluded(
            ignored_revisions=ExcludedFigures(commits=0, additions_lines=0, deletions_lines=0),
            bots=ExcludedFigures(commits=1, additions_lines=10, deletions_lines=1),
            vendored=ExcludedFigures(commits=0, additions_lines=0, deletions_lines=0),
            generated=ExcludedFigures(commits=0, additions_lines=0, deletions_lines=0),
        ),
        generated_at=NOW,
    )
    status = Status(codebase_id=5, state=RunState.SUCCEEDED, updated_at=NOW)
    keys = [key_of("b@example.com"), key_of("a@example.com"), key_of("a@example.com")]
    authored_keys = [key_of("a@example.com"), key_of("a@example.com")]
    result = contribution_from_documents(overview, status, keys, authored_keys)
    assert result.exported
    assert result.contributor_keys == sorted(set(keys))  # EMAIL_MODE=omit: none in ownership
    assert result.authored_contributor_keys == [key_of("a@example.com")]
    assert result.authored == overview.authored
    assert (result.additions_lines, result.deletions_lines) == (30, 4)
    assert result.row.total_churn == 34 and result.row.state is RunState.SUCCEEDED
    assert result.languages == [OrgLanguage(language="Go", type="programming", bytes=260, files=2)]


async def test_an_org_state_stored_before_the_authored_figures_still_loads(
    storage: Storage,
) -> None:
    # An org state written before schema 2: its codebases add no authored work until their
    # next export, and merging another codebase keeps them.
    old = OrgState(org_id=ORG_ID, org_login=ORG_LOGIN, codebases={"1001": contribution(1)})
    stored = old.model_dump(mode="json")
    for codebase in stored["codebases"].values():
        del codebase["authored"], codebase["authored_contributor_keys"]
    await storage.put(org_state_key(ORG_ID), json.dumps(stored).encode())

    await merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1002, contribution(2))
    summary, listing, state = await read_org_files(storage)
    assert [row.codebase_id for row in listing.codebases] == [1001, 1002]
    assert state.codebases["1001"].authored_contributor_keys == []
    assert summary.total_commits == 2 + 3
    assert summary.authored == contribution(2).authored


async def test_the_summary_lists_the_top_hotspots_across_codebases(storage: Storage) -> None:
    """Each codebase gives its top files; the summary keeps the largest TOP_HOTSPOTS of all,
    ties by codebase and path, and only of the codebases the caller sees."""
    for i in (1, 2, 3):
        spots = [
            OrgHotspot(
                codebase_id=1000 + i,
                full_name=f"acme/repo-{i:02d}",
                path=f"src/f{n}.py",
                hotspot=(n * i) % 7,
                recent_commits=n,
                lines=i,
            )
            for n in range(8)
        ]
        given = contribution(i).model_copy(update={"hotspots": spots})
        await merge_codebase_into_org(storage, ORG_ID, ORG_LOGIN, 1000 + i, given)
    summary, _, state = await read_org_files(storage)
    every = [spot for c in state.codebases.values() for spot in c.hotspots if spot.hotspot]
    expected = sorted(every, key=lambda s: (-s.hotspot, s.codebase_id, s.path))[:TOP_HOTSPOTS]
    assert summary.top_hotspots == expected
    assert len(expected) == TOP_HOTSPOTS and all(spot.hotspot > 0 for spot in expected)
    assert expected[0].hotspot == 6 and len({s.codebase_id for s in expected}) > 1
    seen = summarize(state, {1002}, NOW).top_hotspots
    assert seen and {spot.codebase_id for spot in seen} == {1002}
