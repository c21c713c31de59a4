"""GET /api/v1/codebases/{id}/analytics/paths over what the engine stored for the paths
fixture: each directory's children in each order, paginated, equal to the git-built oracle's
listing; an unknown directory is 404, a malformed prefix or sort 400."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from contract.documents import EmailMode
from contract.paths import display_path
from contract.registry import CodebaseEntry, write_entry
from contract.storage.local import LocalStorage
from tests.support.api import api_settings, get, start_api
from tests.support.fake_github import FakeGitHub
from tests.support.paths import build_paths_repo, children, paths_oracle
from worker.engine.pipeline import analyze_codebase

CODEBASE = 77
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
async def served(
    tmp_path: Path, aiohttp_client: Any, redis_url: str, fake_github: FakeGitHub
) -> tuple[Client, dict[bytes, dict[str, Any]]]:
    fixture = build_paths_repo(tmp_path / "repo")
    storage = LocalStorage(tmp_path / "storage")
    await analyze_codebase(
        str(fixture.repo.path), storage, CODEBASE, tmp_path / "work", email_mode=EmailMode.PLAIN
    )
    entry = CodebaseEntry(
        codebase_id=CODEBASE,
        org_id=5,
        org_login="acme",
        installation_id=9,
        full_name="acme/paths",
        clone_url="https://github.com/acme/paths.git",
        default_branch="main",
        registered_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )
    await write_entry(storage, entry)
    client = await start_api(aiohttp_client, api_settings(storage, redis_url, fake_github))
    return client, paths_oracle(fixture.repo)


async def listing(client: Client, prefix: str, sort: str, limit: int) -> list[str]:
    """Every child's path, page after page."""
    paths, cursor = [], None
    while True:
        query = {"prefix": prefix, "sort": sort, "limit": str(limit)}
        if cursor:
            query["cursor"] = cursor
        url = client.make_url(f"/api/v1/codebases/{CODEBASE}/analytics/paths").with_query(query)
        status, _, body = await get(client, str(url.relative()))
        assert status == 200, body
        answer = json.loads(body)
        paths += [entry["path"] for entry in answer["paths"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            return paths


@pytest.mark.parametrize("sort", ["churn", "hotspot", "recent"])
async def test_each_directory_lists_its_children_as_the_oracle_orders_them(
    served: tuple[Client, dict[bytes, dict[str, Any]]], sort: str
) -> None:
    client, rows = served
    directories = [path for path, row in rows.items() if row["kind"] == "dir"]
    assert len(directories) > 5
    for directory in directories:
        expected = [display_path(row["path"]) for row in children(rows, directory, sort)]
        for prefix in {display_path(directory), display_path(directory) + "/"}:
            assert await listing(client, prefix, sort, 2) == expected, (directory, sort)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("prefix=no/such/dir", 404),
        ("sort=size", 400),
        ("prefix=a%5Cb", 400),  # a backslash that starts no escape
    ],
)
async def test_bad_or_unknown_prefixes(
    served: tuple[Client, dict[bytes, dict[str, Any]]], query: str, status: int
) -> None:
    client, _ = served
    answer, _, body = await get(client, f"/api/v1/codebases/{CODEBASE}/analytics/paths?{query}")
    assert answer == status, body


async def test_teams_answer_the_stored_document(
    served: tuple[Client, dict[bytes, dict[str, Any]]], tmp_path: Path
) -> None:
    """GET .../teams answers teams.json as the engine stored it (its figures are checked
    against the oracle in test_paths_oracle.py), with an ETag that a poll can send back."""
    client, _ = served
    url = f"/api/v1/codebases/{CODEBASE}/analytics/teams"
    answer, headers, body = await get(client, url)
    assert answer == 200, body
    stored = LocalStorage(tmp_path / "storage")
    document = await stored.get(f"analytics/{CODEBASE}/teams.json")
    assert document is not None
    assert json.loads(body) == json.loads(document.data)
    teams = json.loads(body)
    assert [team["owner"] for team in teams["teams"]] == sorted(
        {team["owner"] for team in teams["teams"]}, key=str.lower
    )
    assert teams["codeowners"] == {"path": ".github/CODEOWNERS", "problems": []}
    again, _, _ = await get(client, url, **{"If-None-Match": headers["ETag"]})
    assert again == 304
    missing, _, _ = await get(client, "/api/v1/codebases/999999/analytics/teams")
    assert missing == 404
