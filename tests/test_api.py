"""The read API serves the stored documents as DESIGN says: ETags and 304s, pages and cursors,
202 before a codebase's first export, 400s, a size cap, and an OpenAPI document of it all.

Documents are written into storage here, built from the contract's models: no worker runs.
The caller is an admin token unless said otherwise (test_api_auth.py covers who sees what).
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate as validate_openapi
from pytest_aiohttp import AiohttpClient

from contract import layout
from contract.documents import ContributorActivity, OrgSummary, Overview, RunState, Status
from contract.storage import ObjectInfo
from contract.storage.local import LocalStorage
from service.api.directory import OrgDirectory
from service.api.errors import DocumentTooLarge
from service.api.models import (
    ActivitySeries,
    BranchesPage,
    CodebasesPage,
    ContributorActivityPage,
    OwnershipPage,
)
from service.api.openapi import ENDPOINTS
from service.api.reader import JSON_OBJECT, RAW, DocumentReader
from tests.support.api import (
    ADMIN,
    Client,
    Codebase,
    api_settings,
    get,
    publish_codebase,
    publish_org,
    put_contributor_activity,
    put_json,
    start_api,
)
from tests.support.fake_github import FakeGitHub

# --- The app -----------------------------------------------------------------------------------


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, storage: LocalStorage, redis_url: str, fake_github: FakeGitHub
) -> Client:
    return await start_api(aiohttp_client, api_settings(storage, redis_url, fake_github))


ACME = Codebase(codebase_id=11, org_id=1001, org_login="acme", name="alpha", branches=7)
CB = f"/api/v1/codebases/{ACME.codebase_id}/analytics"


# --- Documents, ETags and 304 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "model"),
    [
        ("overview", Overview),
        ("branches", BranchesPage),
        ("activity", ActivitySeries),
        ("ownership", OwnershipPage),
        ("contributors/activity", ContributorActivityPage),
        ("status", Status),
    ],
)
async def test_every_codebase_document_is_served(
    client: Client, storage: LocalStorage, endpoint: str, model: Any
) -> None:
    await publish_codebase(storage, ACME)
    status, headers, body = await get(client, f"{CB}/{endpoint}")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert headers["ETag"].startswith('"')
    model.model_validate_json(body)


async def test_overview_is_the_stored_bytes_and_polling_it_is_304(
    client: Client, storage: LocalStorage
) -> None:
    await publish_codebase(storage, ACME)
    status, headers, body = await get(client, f"{CB}/overview")
    assert status == 200
    assert body == ACME.overview().to_json()
    assert "private" in headers["Cache-Control"]
    etag = headers["ETag"]

    status, again, body = await get(client, f"{CB}/overview", **{"If-None-Match": etag})
    assert (status, body, again["ETag"]) == (304, b"", etag)
    # Weak comparison, and a list of tags, as RFC 9110 has it.
    status, _, _ = await get(client, f"{CB}/overview", **{"If-None-Match": f'"x", W/{etag}'})
    assert status == 304

    changed = replace(ACME, commits=11)
    await put_json(storage, layout.codebase_document(11, "overview"), changed.overview())
    status, headers, body = await get(client, f"{CB}/overview", **{"If-None-Match": etag})
    assert status == 200
    assert Overview.model_validate_json(body).total_commits == 11
    assert headers["ETag"] != etag


async def test_header_names_are_spelled_as_rfc_9110_spells_them(
    client: Client, storage: LocalStorage
) -> None:
    # Names are case-insensitive, yet clients that keep headers in a plain dict match them
    # exactly: the spelling on the wire is part of what the API answers.
    await publish_codebase(storage, ACME)
    async with client.get(f"{CB}/overview", headers=ADMIN) as response:
        etag = response.headers["ETag"]
        names = {name for name, _ in response.raw_headers}
    async with client.get(f"{CB}/overview", headers=ADMIN | {"If-None-Match": etag}) as response:
        assert response.status == 304
        not_modified = {name for name, _ in response.raw_headers}
    assert {b"ETag", b"Cache-Control", b"Vary", b"Content-Type"} <= names
    assert {b"ETag", b"Cache-Control", b"Vary"} <= not_modified


async def test_each_page_and_filter_has_its_own_etag(client: Client, storage: LocalStorage) -> None:
    await publish_codebase(storage, ACME)
    etags = set()
    for query in ("limit=2", "limit=3", "granularity=week", "granularity=month"):
        endpoint = "activity" if "granularity" in query else "branches"
        status, headers, _ = await get(client, f"{CB}/{endpoint}?{query}")
        assert status == 200
        etags.add(headers["ETag"])
        status, _, body = await get(
            client, f"{CB}/{endpoint}?{query}", **{"If-None-Match": headers["ETag"]}
        )
        assert (status, body) == (304, b"")
    assert len(etags) == 4


# --- Before the first export -------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint", ["overview", "branches", "activity", "ownership", "contributors/activity"]
)
async def test_registered_but_not_exported_is_202_with_its_status(
    client: Client, storage: LocalStorage, endpoint: str
) -> None:
    await publish_codebase(storage, ACME, exported=False)
    status, headers, body = await get(client, f"{CB}/{endpoint}")
    assert status == 202
    assert headers["Retry-After"] == "5"
    assert "ETag" in headers
    assert body == ACME.status(RunState.QUEUED).to_json()


async def test_before_any_status_the_202_says_queued(client: Client, storage: LocalStorage) -> None:
    await publish_codebase(storage, ACME, exported=False, status=False)
    for endpoint in ("overview", "status"):
        status, headers, body = await get(client, f"{CB}/{endpoint}")
        assert status == 202
        assert int(headers["Retry-After"]) > 0
        assert Status.model_validate_json(body).state is RunState.QUEUED


async def test_a_failed_first_run_asks_to_come_back_later(
    client: Client, storage: LocalStorage
) -> None:
    await publish_codebase(storage, ACME, exported=False)
    failed = ACME.status(RunState.FAILED)
    await put_json(storage, layout.codebase_document(11, "status"), failed)
    status, headers, body = await get(client, f"{CB}/overview")
    assert (status, headers["Retry-After"], body) == (202, "60", failed.to_json())
    # The status endpoint itself answers the stored status.
    status, _, body = await get(client, f"{CB}/status")
    assert (status, body) == (200, failed.to_json())


@pytest.mark.parametrize("endpoint", ["overview", "contributors/activity"])
async def test_unknown_codebase_is_404(
    client: Client, storage: LocalStorage, endpoint: str
) -> None:
    await publish_codebase(storage, ACME)
    status, headers, body = await get(client, f"/api/v1/codebases/999/analytics/{endpoint}")
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["status"] == 404


# --- Pages -------------------------------------------------------------------------------------


async def walk(client: Client, path: str, list_name: str, limit: int) -> list[list[Any]]:
    """Every page of `path`, following next_cursor."""
    pages, cursor = [], None
    while True:
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, _, body = await get(client, f"{path}?{query}")
        assert status == 200, body
        answer = json.loads(body)
        pages.append(answer[list_name])
        cursor = answer["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "next_cursor never ends"


@pytest.mark.parametrize(
    ("path", "list_name", "limit", "sizes"),
    [
        (f"{CB}/branches", "branches", 3, [3, 3, 1]),
        (f"{CB}/branches", "branches", 7, [7]),
        (f"{CB}/ownership", "contributors", 2, [2, 2, 1]),
        (f"{CB}/contributors/activity", "contributors", 2, [2, 2, 1]),
        ("/api/v1/orgs/acme/analytics/codebases", "codebases", 2, [2, 2, 1]),
    ],
)
async def test_pages_follow_next_cursor_to_the_end(
    client: Client, storage: LocalStorage, path: str, list_name: str, limit: int, sizes: list[int]
) -> None:
    people = tuple(f"dev{i}@example.com" for i in range(5))
    org = [replace(ACME, contributors=people)] + [
        Codebase(codebase_id=20 + i, org_id=1001, org_login="acme", name=f"repo-{i}")
        for i in range(4)
    ]
    for codebase in org:
        await publish_codebase(storage, codebase)
    await publish_org(storage, org)

    pages = await walk(client, path, list_name, limit)
    assert [len(page) for page in pages] == sizes
    _, _, whole = await get(client, path)  # default limit: all of them on one page
    answer = json.loads(whole)
    assert answer["next_cursor"] is None
    assert [item for page in pages for item in page] == answer[list_name]


async def test_a_cursor_of_an_older_version_starts_over(
    client: Client, storage: LocalStorage
) -> None:
    await publish_codebase(storage, ACME)
    _, _, body = await get(client, f"{CB}/branches?limit=3")
    first_page = json.loads(body)
    cursor = first_page["next_cursor"]
    _, _, body = await get(client, f"{CB}/branches?limit=3&cursor={cursor}")
    assert json.loads(body)["branches"][0]["name"] == "feature-03"

    await put_json(
        storage,
        layout.codebase_document(11, "branches"),
        replace(ACME, branches=8).branches_document(),
    )
    _, _, body = await get(client, f"{CB}/branches?limit=3&cursor={cursor}")
    restarted = json.loads(body)
    assert [b["name"] for b in restarted["branches"]] == ["main", "feature-01", "feature-02"]
    assert restarted["total_branches"] == 8


async def test_contributor_activity_is_paged_over_its_contributors(
    client: Client, storage: LocalStorage
) -> None:
    codebase = replace(
        ACME,
        contributors=("ada@example.com", "bob@example.com", "dependabot[bot]@example.com"),
        bots=("dependabot[bot]@example.com",),
    )
    await publish_codebase(storage, codebase)
    path = f"{CB}/contributors/activity"
    status, headers, body = await get(client, f"{path}?limit=1")
    assert status == 200, body
    page = ContributorActivityPage.model_validate_json(body)
    stored = codebase.contributor_activity()
    assert page.contributors == stored.contributors[:1]
    assert page.total_contributors == stored.total_contributors == 2  # the bot is no person
    assert page.next_cursor is not None

    etag = headers["ETag"]
    status, again, body = await get(client, f"{path}?limit=1", **{"If-None-Match": etag})
    assert (status, body, again["ETag"]) == (304, b"", etag)
    status, second, _ = await get(client, f"{path}?limit=1&cursor={page.next_cursor}")
    assert status == 200 and second["ETag"] != etag

    grown = replace(codebase, contributors=(*codebase.contributors, "cy@example.com"))
    await put_contributor_activity(storage, 11, grown.contributor_activity())
    status, _, body = await get(client, f"{path}?limit=1", **{"If-None-Match": etag})
    assert status == 200
    assert ContributorActivityPage.model_validate_json(body).total_contributors == 3


def each_week_of(document: ContributorActivity, **changes: Any) -> ContributorActivity:
    rows = [
        row.model_copy(update={"weeks": [week.model_copy(update=changes) for week in row.weeks]})
        for row in document.contributors
    ]
    return document.model_copy(update={"contributors": rows})


async def test_contributor_activity_stored_whole_is_served_as_it_is(
    client: Client, storage: LocalStorage
) -> None:
    """As stored before each person's weeks were an object of their own: the weeks inline."""
    await publish_codebase(storage, ACME)
    whole = ACME.contributor_activity()
    await put_json(storage, layout.codebase_document(11, "contributor_activity"), whole)
    for key in await storage.list(layout.contributor_weeks_objects(11)):
        await storage.delete(key)
    status, _, body = await get(client, f"{CB}/contributors/activity")
    assert status == 200, body
    assert ContributorActivityPage.model_validate_json(body).contributors == whole.contributors


async def test_contributor_activity_read_as_a_push_replaces_it_is_the_new_one(
    client: Client, storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push writes the weeks its new index names, the index, then deletes the weeks only
    the old one named: a page whose index was read just before finds them gone, and is
    answered from the new index. Weeks missing for good are the stored document's fault."""
    await publish_codebase(storage, ACME)
    path = f"{CB}/contributors/activity"
    before = ACME.contributor_activity()
    later = each_week_of(before, commits=2)
    read = LocalStorage.read_capped
    deleted: list[str] = []

    async def push_between(self: LocalStorage, key: str, limit: int) -> Any:
        if key.startswith(layout.contributor_weeks_objects(11)) and not deleted:
            deleted.append(key)  # before any await: the page's other reads wait for none
            kept = set(await put_contributor_activity(self, 11, later))
            for gone in set(await self.list(layout.contributor_weeks_objects(11))) - kept:
                await self.delete(gone)
                deleted.append(gone)
        return await read(self, key, limit)

    monkeypatch.setattr(LocalStorage, "read_capped", push_between)
    status, _, body = await get(client, path)
    assert status == 200, body
    page = ContributorActivityPage.model_validate_json(body)
    assert len(deleted) == 1 + len(before.contributors)  # every weeks object the page named
    assert page.contributors == later.contributors != before.contributors

    monkeypatch.setattr(LocalStorage, "read_capped", read)
    for key in await put_contributor_activity(storage, 11, each_week_of(later, commits=3)):
        await storage.delete(key)
    status, _, body = await get(client, f"{path}?limit=2")
    assert status == 500, body
    assert b"the weeks objects it names are not stored" in body


# --- Activity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "granularity", "starts"),
    [
        (
            "",
            "week",
            [f"2024-01-{d:02d}" for d in (1, 8, 15, 22, 29)]
            + ["2024-02-05", "2024-02-12", "2024-02-19"],
        ),
        ("granularity=month", "month", ["2024-01-01", "2024-02-01", "2024-03-01"]),
        # A period is kept when it overlaps since..until (both days included).
        ("since=2024-01-10&until=2024-01-22", "week", ["2024-01-08", "2024-01-15", "2024-01-22"]),
        ("granularity=month&since=2024-02-29", "month", ["2024-02-01", "2024-03-01"]),
        ("granularity=month&until=2024-01-31", "month", ["2024-01-01"]),
        ("since=2024-02-19T10:00:00Z", "week", ["2024-02-19"]),
        ("since=2025-01-01", "week", []),
    ],
)
async def test_activity_by_granularity_and_dates(
    client: Client, storage: LocalStorage, query: str, granularity: str, starts: list[str]
) -> None:
    await publish_codebase(storage, ACME)
    status, _, body = await get(client, f"{CB}/activity?{query}")
    assert status == 200, body
    answer = ActivitySeries.model_validate_json(body)
    assert answer.granularity == granularity
    assert [p.period_start for p in answer.periods] == starts
    assert answer.punch_card == ACME.activity().punch_card


# --- 400 ---------------------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "path",
    [
        f"{CB}/branches?limit=0",
        f"{CB}/branches?limit=101",
        f"{CB}/branches?limit=ten",
        f"{CB}/branches?limit=-1",
        f"{CB}/branches?limit=",
        f"{CB}/ownership?cursor=not-a-cursor!",
        f"{CB}/ownership?cursor={b64('v1:x:0123456789abcdef')}",
        f"{CB}/ownership?cursor={b64('{}')}",
        f"{CB}/contributors/activity?limit=0",
        f"{CB}/contributors/activity?cursor=not-a-cursor!",
        "/api/v1/orgs/acme/analytics/codebases?cursor=%%%",
        "/api/v1/orgs/acme/analytics/codebases?limit=1000",
        f"{CB}/activity?granularity=day",
        f"{CB}/activity?since=yesterday",
        f"{CB}/activity?until=2024-13-01",
        f"{CB}/activity?since=2024-02-01&until=2024-01-01",
        "/api/v1/codebases/abc/analytics/overview",
        "/api/v1/codebases/0/analytics/overview",
        "/api/v1/codebases/-5/analytics/status",
        "/api/v1/codebases/12345678901234567890123/analytics/overview",
    ],
)
async def test_bad_parameters_are_400(client: Client, storage: LocalStorage, path: str) -> None:
    await publish_codebase(storage, ACME)
    await publish_org(storage, [ACME])
    status, _, body = await get(client, path)
    assert status == 400, body
    assert json.loads(body)["message"]


# --- Orgs --------------------------------------------------------------------------------------


async def test_org_summary_by_login_or_id(client: Client, storage: LocalStorage) -> None:
    await publish_codebase(storage, ACME)
    await publish_org(storage, [ACME])
    stored = await storage.get(layout.org_document(1001, "org_summary"))
    assert stored is not None
    for ref in ("acme", "ACME", "1001"):
        status, _, body = await get(client, f"/api/v1/orgs/{ref}/analytics/summary")
        assert (status, body) == (200, stored.data)
    for ref in ("globex", "2002"):
        status, _, _ = await get(client, f"/api/v1/orgs/{ref}/analytics/summary")
        assert status == 404


async def test_org_summary_counts_pending_codebases_but_not_their_numbers(
    client: Client, storage: LocalStorage
) -> None:
    pending = Codebase(codebase_id=12, org_id=1001, org_login="acme", name="beta")
    await publish_codebase(storage, ACME)
    await publish_codebase(storage, pending, exported=False)
    await publish_org(storage, [ACME, pending], pending=[12])
    _, _, body = await get(client, "/api/v1/orgs/acme/analytics/summary")
    summary = OrgSummary.model_validate_json(body)
    assert (summary.total_codebases, summary.total_commits) == (2, ACME.commits)
    _, _, body = await get(client, "/api/v1/orgs/acme/analytics/codebases")
    rows = CodebasesPage.model_validate_json(body).codebases
    assert {(r.codebase_id, r.state) for r in rows} == {
        (11, RunState.SUCCEEDED),
        (12, RunState.QUEUED),
    }


# --- The size cap ------------------------------------------------------------------------------


async def test_a_document_over_the_cap_is_refused_not_read(
    aiohttp_client: AiohttpClient, storage: LocalStorage, redis_url: str, fake_github: FakeGitHub
) -> None:
    many = replace(ACME, contributors=tuple(f"dev{i}@example.com" for i in range(50)))
    await publish_codebase(storage, many)
    size = len(many.ownership().to_json())
    client = await start_api(
        aiohttp_client, api_settings(storage, redis_url, fake_github), max_document_bytes=size - 1
    )
    status, _, body = await get(client, f"{CB}/ownership")
    assert status == 500
    assert "API_MAX_DOCUMENT_BYTES" in json.loads(body)["message"]
    status, _, _ = await get(client, f"{CB}/status")  # small documents are still served
    assert status == 200


# --- OpenAPI -----------------------------------------------------------------------------------


async def test_openapi_describes_every_route(client: Client) -> None:
    async with client.get("/api/openapi.json") as response:  # no token needed
        assert response.status == 200
        document = json.loads(await response.read())
        etag = response.headers["ETag"]
    validate_openapi(document)
    assert document["openapi"].startswith("3.1")

    routes = {
        resource.canonical
        for resource in client.app.router.resources()
        if resource.canonical.startswith("/api/")
    }
    assert routes == {e.path for e in ENDPOINTS} | {"/api/openapi.json"}
    assert routes <= set(document["paths"])
    for path in routes - {"/api/openapi.json"}:
        operation = document["paths"][path]["get"]
        assert {"200", "304", "400", "401", "404", "503"} <= set(operation["responses"])
        names = {p["name"] for p in operation["parameters"]}
        assert {segment[1:-1] for segment in path.split("/") if segment.startswith("{")} <= names
    paged = document["paths"]["/api/v1/codebases/{id}/analytics/branches"]["get"]
    assert {"limit", "cursor"} <= {p["name"] for p in paged["parameters"]}
    schemas = document["components"]["schemas"]
    assert {"Overview", "BranchesPage", "OrgSummary", "Status", "ErrorBody"} <= set(schemas)
    # schema_version 2's fields are described where the documents carry them.
    assert {"authored", "excluded"} <= set(schemas["Overview"]["required"])
    assert "authored" in schemas["OrgSummary"]["required"]
    assert {"is_bot", "co_authored_commits", "authored_addition_bytes"} <= set(
        schemas["Contributor"]["properties"]
    )
    assert "authored_additions_lines" in schemas["ActivityPeriod"]["properties"]
    weeks = schemas["ContributorActivityRow"]["properties"]["weeks"]
    assert weeks["items"] == {"$ref": "#/components/schemas/ContributorWeek"}
    activity = document["paths"]["/api/v1/codebases/{id}/analytics/contributors/activity"]["get"]
    assert {"limit", "cursor"} <= {p["name"] for p in activity["parameters"]}
    assert activity["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ContributorActivityPage"
    }
    assert "202" in activity["responses"]

    async with client.get("/api/openapi.json", headers={"If-None-Match": etag}) as response:
        assert response.status == 304


# --- The reader: what polling costs ------------------------------------------------------------


class CountingStorage(LocalStorage):
    """A storage folder whose metadata and object reads are counted."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.stats = 0
        self.reads: list[str] = []

    async def stat(self, key: str) -> ObjectInfo | None:
        self.stats += 1
        return await super().stat(key)

    async def read_capped(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        self.reads.append(key)
        return await super().read_capped(key, max_bytes)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def counted_reader(
    storage: LocalStorage,
) -> tuple[str, CountingStorage, Clock, DocumentReader]:
    """An overview stored, and a reader over storage that counts its calls, on a clock of ours
    (documents are fresh for 1 s)."""
    key = layout.codebase_document(11, "overview")
    await put_json(storage, key, ACME.overview())
    objects, clock = CountingStorage(storage.root), Clock()
    reader = DocumentReader(
        objects, max_document_bytes=1 << 20, cache_bytes=1 << 20, fresh_for=1.0, clock=clock
    )
    return key, objects, clock, reader


async def test_polling_costs_one_metadata_read_at_most(storage: LocalStorage) -> None:
    key, objects, clock, reader = await counted_reader(storage)
    info = await reader.probe(key)
    assert info is not None
    loaded = await reader.load(key, info, RAW)
    assert loaded is not None and loaded.content == ACME.overview().to_json()
    assert (objects.stats, len(objects.reads)) == (1, 1)

    # Within the freshness window: no storage call at all.
    assert await reader.probe(key) == info
    assert (objects.stats, len(objects.reads)) == (1, 1)
    # After it: one metadata read; unchanged, so the cached copy is served.
    clock.now += 1.5
    info_again = await reader.probe(key)
    assert info_again == info
    assert await reader.load(key, info, RAW) == loaded
    assert (objects.stats, len(objects.reads)) == (2, 1)

    # Changed: the next load reads the new version, once.
    await put_json(storage, key, replace(ACME, commits=99).overview())
    clock.now += 1.5
    changed = await reader.probe(key)
    assert changed is not None and changed != info
    reloaded = await reader.load(key, changed, JSON_OBJECT)
    assert reloaded is not None and reloaded.content["total_commits"] == 99
    assert (objects.stats, len(objects.reads)) == (3, 2)


async def test_polls_that_find_a_document_stale_at_once_share_one_metadata_read(
    storage: LocalStorage,
) -> None:
    key, objects, clock, reader = await counted_reader(storage)
    info = await reader.probe(key)
    assert info is not None and await reader.load(key, info, RAW) is not None
    clock.now += 1.5
    assert await asyncio.gather(*(reader.probe(key) for _ in range(10))) == [info] * 10
    assert objects.stats == 2


async def test_the_cap_is_checked_before_reading(storage: LocalStorage) -> None:
    key = layout.codebase_document(11, "ownership")
    await put_json(storage, key, ACME.ownership())
    objects = CountingStorage(storage.root)
    reader = DocumentReader(objects, max_document_bytes=10, cache_bytes=1 << 20, fresh_for=1.0)
    info = await reader.probe(key)
    assert info is not None
    with pytest.raises(DocumentTooLarge):
        await reader.load(key, info, RAW)
    assert objects.reads == []


async def test_a_document_grown_past_the_cap_since_its_probe_is_too_large(
    storage: LocalStorage,
) -> None:
    # The cap is then met by storage's read_capped: still the API's answer, not a storage error.
    key = layout.codebase_document(11, "status")
    await storage.put(key, b"{}")
    reader = DocumentReader(storage, max_document_bytes=10, cache_bytes=1 << 20, fresh_for=1.0)
    info = await reader.probe(key)
    assert info is not None
    await storage.put(key, b'{"grown": "past the cap"}')
    with pytest.raises(DocumentTooLarge) as raised:
        await reader.load(key, info, RAW)
    assert "API_MAX_DOCUMENT_BYTES" in raised.value.message


async def test_org_logins_are_learnt_again_after_the_refresh_interval(
    storage: LocalStorage,
) -> None:
    await publish_org(storage, [ACME])
    clock = Clock()
    orgs = OrgDirectory(storage, refresh_interval=10.0, clock=clock)
    assert await orgs.org_id("Acme") == 1001
    globex = Codebase(codebase_id=21, org_id=2002, org_login="globex", name="delta")
    await publish_org(storage, [globex])
    assert await orgs.org_id("globex") is None  # a miss refreshes at most every 10 s
    clock.now += 10
    assert await orgs.org_id("globex") == 2002
    assert await orgs.org_id("acme") == 1001
