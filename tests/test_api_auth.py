"""Who sees what through the read API: admin tokens see every org; a GitHub user token sees the
orgs it administers whole and otherwise only the repositories it administers; the rest is 404.

Tokens are resolved against the fake GitHub; the documents are written into storage directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from contract import layout
from contract.documents import CodebasesList, OrgSummary
from contract.org_state import OrgState, summarize
from contract.storage.local import LocalStorage
from service.api.auth import PrincipalResolver
from service.api.errors import Unauthorized
from tests.support.api import (
    ADMIN_TOKEN,
    Client,
    Codebase,
    api_settings,
    publish_codebase,
    publish_org,
    start_api,
)
from tests.support.fake_github import FakeGitHub

ALPHA = Codebase(codebase_id=11, org_id=1001, org_login="acme", name="alpha", commits=10)
BETA = Codebase(
    codebase_id=12,
    org_id=1001,
    org_login="acme",
    name="beta",
    commits=20,
    contributors=("bob@example.com", "cy@example.com", "renovate[bot]@example.com"),
    bots=("renovate[bot]@example.com",),
)
GAMMA = Codebase(codebase_id=13, org_id=1001, org_login="acme", name="gamma")  # not exported
DELTA = Codebase(codebase_id=21, org_id=2002, org_login="globex", name="delta", commits=5)


@dataclass
class World:
    client: Client
    github: FakeGitHub
    tokens: dict[str, str]
    acme: OrgState


@pytest.fixture
async def world(
    aiohttp_client: AiohttpClient, tmp_path: Path, redis_url: str, fake_github: FakeGitHub
) -> World:
    """Two orgs on the fake GitHub and in storage, and one user of each kind."""
    storage = LocalStorage(tmp_path / "storage")
    acme = fake_github.add_installation("acme", 1001)
    globex = fake_github.add_installation("globex", 2002)
    for codebase, installation in ((ALPHA, acme), (BETA, acme), (GAMMA, acme), (DELTA, globex)):
        fake_github.add_repository(
            installation, codebase.org_login, codebase.name, tmp_path, repo_id=codebase.codebase_id
        )
        await publish_codebase(storage, codebase, exported=codebase is not GAMMA)
    acme_state = await publish_org(storage, [ALPHA, BETA, GAMMA], pending=[GAMMA.codebase_id])
    await publish_org(storage, [DELTA])

    tokens = {"admin": ADMIN_TOKEN}
    for login in ("owner", "dev", "member", "outsider"):
        tokens[login] = fake_github.add_user(login)
    fake_github.grant(tokens["owner"], acme, org_role="admin")
    # Reads alpha and beta, administers alpha only.
    fake_github.grant(tokens["dev"], acme, repo_ids=[11, 12], admin_repo_ids=[11])
    fake_github.grant(tokens["member"], acme, org_role="member")
    fake_github.grant(tokens["outsider"], globex, org_role="admin")

    client = await start_api(aiohttp_client, api_settings(storage, redis_url, fake_github))
    return World(client, fake_github, tokens, acme_state)


async def status_of(world: World, who: str, path: str) -> int:
    headers = {"Authorization": f"Bearer {world.tokens[who]}"}
    async with world.client.get(path, headers=headers) as response:
        return response.status


ORG = "/api/v1/orgs/{}/analytics/summary"
LIST = "/api/v1/orgs/{}/analytics/codebases"
CODEBASE = "/api/v1/codebases/{}/analytics/overview"
PATHS = {
    "acme": ORG.format("acme"),
    "acme by id": ORG.format(1001),
    "acme list": LIST.format("acme"),
    "globex": ORG.format("globex"),
    "alpha": CODEBASE.format(11),
    "beta": CODEBASE.format(12),
    "gamma": CODEBASE.format(13),
    "delta": CODEBASE.format(21),
    "delta status": "/api/v1/codebases/21/analytics/status",
}
# 404 for whatever a caller may not see: never 403. gamma is registered, not exported: 202.
MATRIX = {
    "admin": {"acme": 200, "acme by id": 200, "acme list": 200, "globex": 200, "alpha": 200,
              "beta": 200, "gamma": 202, "delta": 200, "delta status": 200},
    "owner": {"acme": 200, "acme by id": 200, "acme list": 200, "globex": 404, "alpha": 200,
              "beta": 200, "gamma": 202, "delta": 404, "delta status": 404},
    "dev": {"acme": 200, "acme by id": 200, "acme list": 200, "globex": 404, "alpha": 200,
            "beta": 404, "gamma": 404, "delta": 404, "delta status": 404},
    "member": {"acme": 404, "acme by id": 404, "acme list": 404, "globex": 404, "alpha": 404,
               "beta": 404, "gamma": 404, "delta": 404, "delta status": 404},
    "outsider": {"acme": 404, "acme by id": 404, "acme list": 404, "globex": 200,
                 "alpha": 404, "beta": 404, "gamma": 404, "delta": 200, "delta status": 200},
}  # fmt: skip


@pytest.mark.parametrize("who", list(MATRIX))
async def test_who_sees_what(world: World, who: str) -> None:
    seen = {name: await status_of(world, who, path) for name, path in PATHS.items()}
    assert seen == MATRIX[who]


async def test_a_repository_admin_gets_org_answers_over_their_repositories(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.tokens['dev']}"}
    async with world.client.get(ORG.format("acme"), headers=headers) as response:
        summary = OrgSummary.model_validate_json(await response.read())
    expected = summarize(world.acme, {ALPHA.codebase_id}, summary.updated_at)
    assert summary == expected
    assert (summary.total_codebases, summary.total_commits) == (1, ALPHA.commits)
    assert summary.total_contributors == len(ALPHA.contributors)
    assert summary.authored == ALPHA.overview().authored  # beta's authored work left out

    async with world.client.get(LIST.format("acme"), headers=headers) as response:
        listing = json.loads(await response.read())
    assert [row["codebase_id"] for row in listing["codebases"]] == [ALPHA.codebase_id]
    assert listing["next_cursor"] is None
    CodebasesList.model_validate({k: v for k, v in listing.items() if k != "next_cursor"})


async def test_an_org_admin_gets_the_exported_org_files(world: World, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage")
    headers = {"Authorization": f"Bearer {world.tokens['owner']}"}
    for name, path in (("org_summary", ORG), ("codebases_list", LIST)):
        stored = await storage.get(layout.org_document(1001, name))
        assert stored is not None
        async with world.client.get(path.format("acme"), headers=headers) as response:
            answer = json.loads(await response.read())
        answer.pop("next_cursor", None)
        assert answer == json.loads(stored.data)
        if name == "org_summary":
            authored = OrgSummary.model_validate(answer).authored
            # Bob works on both, renovate[bot] is no person: ada, bob and cy.
            assert (authored.commits, authored.contributors) == (10 + 20 - 1, 3)


INVALID = 'Bearer realm="gitstats", error="invalid_token"'


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, 'Bearer realm="gitstats"'),
        ("Basic YWRtMTo=", INVALID),
        ("Bearer", INVALID),
        ("Bearer adm1x", INVALID),
        ("Bearer ghu_" + "0" * 36, INVALID),
        ("Bearer two words", INVALID),
    ],
)
async def test_without_a_valid_token_it_is_401(
    world: World, authorization: str | None, challenge: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in (PATHS["alpha"], PATHS["acme"]):
        async with world.client.get(path, headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == challenge
            assert json.loads(await response.read())["status"] == 401


def github_calls(world: World, path: str) -> int:
    return sum(1 for r in world.github.requests if r.path == path)


async def test_a_token_is_resolved_once_and_cached(world: World) -> None:
    # Concurrent first requests share one resolution; later ones use the cached one.
    statuses = await asyncio.gather(
        *(status_of(world, "dev", path) for path in PATHS.values() for _ in range(2))
    )
    assert statuses.count(200) == 2 * sum(1 for s in MATRIX["dev"].values() if s == 200)
    assert await status_of(world, "dev", PATHS["alpha"]) == 200
    assert github_calls(world, "/user") == 1
    assert github_calls(world, "/user/installations") == 1


async def test_a_revoked_token_is_401_and_remembered(world: World) -> None:
    world.github.revoke(world.tokens["dev"])
    assert await status_of(world, "dev", PATHS["alpha"]) == 401
    assert await status_of(world, "dev", PATHS["alpha"]) == 401
    assert github_calls(world, "/user") == 1


@pytest.mark.parametrize("fault", ["down", "rate limited", "installations down"])
async def test_github_unavailable_is_503_and_not_cached(world: World, fault: str) -> None:
    if fault == "down":
        world.github.fail_next(r"^/user$", 502)
    elif fault == "rate limited":
        world.github.rate_limit_next(r"^/user/installations$")
    else:
        world.github.fail_next(r"^/user/installations/\d+/repositories$", 500)
    headers = {"Authorization": f"Bearer {world.tokens['owner']}"}
    async with world.client.get(PATHS["alpha"], headers=headers) as response:
        assert response.status == 503
        assert "Retry-After" in response.headers
    assert await status_of(world, "owner", PATHS["alpha"]) == 200


async def test_tokens_are_never_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world.github.fail_next(r"^/user$", 502)
    for who in ("dev", "dev", "owner", "member"):
        await status_of(world, who, PATHS["alpha"])
    world.github.revoke(world.tokens["member"])
    await status_of(world, "member", PATHS["acme"])
    text = caplog.text
    assert "resolved GitHub user" in text
    for who, token in world.tokens.items():
        assert token not in text, who


async def test_resolution_follows_github_pagination(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    """Over 100 repositories in one installation and over 100 installations."""
    repos = fake_github.add_installation("big", 3003)
    for i in range(105):
        fake_github.add_repository(repos, "big", f"r{i}", tmp_path, repo_id=5000 + i)
    token = fake_github.add_user("busy")
    fake_github.grant(token, repos, repo_ids=[5000], admin_repo_ids=[5000, 5104])
    for i in range(101):
        other = fake_github.add_installation(f"org{i}", 10_000 + i)
        fake_github.grant(token, other, org_role="admin" if i == 100 else "member")
    async with aiohttp.ClientSession() as session:
        resolver = PrincipalResolver(session, fake_github.base_url, [], app_id=fake_github.app_id)
        principal = await resolver.resolve(token)
    assert principal.name == "busy"
    assert principal.repo_admin == {5000, 5104}
    assert principal.orgs_admin == {10_100}
    assert principal.orgs["big"] == 3003 and len(principal.orgs) == 102


async def test_another_apps_installations_grant_nothing(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    """A user token that reaches an org through another App's installation (or any token that
    is not this App's user-to-server token) sees nothing of that org here."""
    ours = fake_github.add_installation("acme", 1001)
    theirs = fake_github.add_installation("initech", 4004, app_id="99")
    token = fake_github.add_user("someone")
    fake_github.grant(token, ours, org_role="member")
    fake_github.grant(token, theirs, org_role="admin")
    async with aiohttp.ClientSession() as session:
        resolver = PrincipalResolver(session, fake_github.base_url, [], app_id=fake_github.app_id)
        principal = await resolver.resolve(token)
        by_client_id = PrincipalResolver(
            session, fake_github.base_url, [], app_id=fake_github.client_id
        )
        assert (await by_client_id.resolve(token)).orgs == principal.orgs
        unconfigured = PrincipalResolver(session, fake_github.base_url, [])
        assert (await unconfigured.resolve(token)).orgs == {}
    assert principal.orgs == {"acme": 1001}
    assert principal.orgs_admin == frozenset()


async def test_refused_tokens_never_push_a_valid_one_out_of_the_cache(
    fake_github: FakeGitHub,
) -> None:
    installation = fake_github.add_installation("acme", 1001)
    token = fake_github.add_user("someone")
    fake_github.grant(token, installation, org_role="admin")
    async with aiohttp.ClientSession() as session:
        resolver = PrincipalResolver(
            session, fake_github.base_url, [], app_id=fake_github.app_id, max_entries=4
        )
        await resolver.resolve(token)
        for n in range(8):
            with pytest.raises(Unauthorized):
                await resolver.resolve(f"ghu_not_a_token_{n}")
        fake_github.clear_requests()
        await resolver.resolve(token)  # still cached: no GitHub call
    assert fake_github.requests == []
