"""Only GitHub is believed: a signed payload names which codebase to look at, and nothing else
of it reaches the registry, git or a document (DESIGN.md, "What we ask of GitHub").

The worker runs as deployed (tests/support/jobs.py) against the fake GitHub, whose git host is
its API's own address; a second server on loopback stands for a host a payload might name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pygit2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from contract import registry
from contract.jobs import REFRESH_CODEBASE, SyncRequest, enqueue_sync
from tests.support.gitrepos import GitRepo, git_commit_count
from tests.support.jobs import ORG, Org
from worker.jobs.github_app import (
    GitCredentials,
    InstallationTokens,
    UntrustedGitHost,
    git_host_of,
)


class Catcher:
    """A host that is not GitHub: asks every request for Basic credentials and keeps what came."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})


@pytest.fixture
async def catcher() -> AsyncIterator[tuple[Catcher, str]]:
    caught = Catcher()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", caught.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield caught, str(server.make_url("/acme/repo0.git"))


def sync_request(org: Org, i: int, **repository: object) -> SyncRequest:
    """A push for repository `i` whose payload says what `repository` says of it."""
    return SyncRequest(
        codebase_id=org.id(i),
        installation_id=org.installation_id,
        account=ORG,
        repository=org.refs[i].model_copy(update=repository),
        trigger="push",
    )


async def test_a_payloads_clone_url_gets_no_token_and_is_not_kept(
    org: Org, catcher: tuple[Catcher, str]
) -> None:
    caught, elsewhere = catcher
    await enqueue_sync(org.redis, sync_request(org, 0, clone_url=elsewhere))
    worker = await org.run_worker()

    assert worker.jobs_failed == 0
    assert caught.authorizations == []  # git never went there, let alone with a token
    entry = await registry.read_entry(org.storage, org.id(0))
    assert entry is not None
    assert entry.clone_url == org.fake.repository(org.id(0))["clone_url"]
    assert (await org.overview(0)).total_commits == git_commit_count(org.repos[0].path)


@pytest.mark.parametrize("form", ["path", "file URL"])
async def test_a_local_path_in_a_payload_publishes_nothing_of_it(
    org: Org, tmp_path: Path, form: str
) -> None:
    other = GitRepo.init(tmp_path / "someone-elses")
    for n in range(7):
        other.commit({f"secret{n}.txt": f"{n}\n"}, message=f"secret {n}")
    source = str(other.path) if form == "path" else other.path.as_uri()
    await enqueue_sync(org.redis, sync_request(org, 0, clone_url=source))
    await org.run_worker()

    overview = await org.overview(0)
    assert overview.total_commits == git_commit_count(org.repos[0].path)
    assert overview.total_commits != git_commit_count(other.path)


async def test_a_repository_the_installation_cannot_see_is_not_registered(
    org: Org, tmp_path: Path
) -> None:
    # Another org's repository, named in a payload signed for this org's installation.
    theirs = org.fake.add_installation("them", 4242)
    repo = GitRepo.init(tmp_path / "theirs")
    repo.commit({"a.txt": "a\n"})
    data = org.fake.add_repository(theirs, "them", "private", repo.path)
    request = sync_request(org, 0).model_copy(
        update={"codebase_id": data["id"], "repository": sync_request(org, 0).repository}
    )
    job_id = (await enqueue_sync(org.redis, request))[1]
    await org.run_worker()

    assert "failed" in (await org.result(job_id)).result
    assert await registry.read_entry(org.storage, data["id"]) is None
    assert await org.storage.list(f"analytics/{data['id']}/") == []


async def test_refresh_takes_the_repository_from_github_by_id(synced: Org) -> None:
    org = synced
    # A payload for codebase 1 that names repository 2 and a URL elsewhere.
    request = sync_request(org, 1).model_copy(
        update={
            "repository": org.refs[2].model_copy(update={"clone_url": "http://127.0.0.1:9/x.git"})
        }
    )
    job_id = await org.enqueue(REFRESH_CODEBASE, request.model_dump(mode="json"))
    await org.run_worker()

    assert (await org.result(job_id)).result["full_name"] == org.refs[1].full_name
    for i in (1, 2):
        entry = await registry.read_entry(org.storage, org.id(i))
        assert entry is not None
        assert (entry.full_name, entry.clone_url) == (org.refs[i].full_name, org.refs[i].clone_url)


@pytest.mark.parametrize(
    ("api_url", "git_host"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://API.GitHub.com/", "https://github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("https://ghe.example.com:443/api/v3", "https://ghe.example.com"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
    ],
)
def test_the_git_host_is_derived_from_the_api_url(api_url: str, git_host: str) -> None:
    assert git_host_of(api_url) == git_host


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com.evil.example/acme/repo0.git",
        "http://github.com/acme/repo0.git",  # not the same scheme: a token would go in clear
        "https://github.com:8443/acme/repo0.git",
        "https://user:pass@github.com/acme/repo0.git",
        "file:///srv/acme/repo0.git",
        "/srv/acme/repo0.git",
        "git@github.com:acme/repo0.git",
    ],
)
async def test_credentials_are_refused_to_any_other_url(url: str) -> None:
    minted: list[int] = []

    async def mint(installation_id: int) -> object:
        minted.append(installation_id)
        raise AssertionError("no token may be minted for another host")

    tokens = InstallationTokens(mint, git_host="https://github.com")  # type: ignore[arg-type]
    credentials = tokens.git_credentials(1, "ghs_cached", asyncio.get_running_loop())
    with pytest.raises(UntrustedGitHost):
        await asyncio.to_thread(credentials.credentials, url, None, pygit2.enums.CredentialType(1))
    good = await asyncio.to_thread(
        credentials.credentials,
        "https://github.com/acme/repo0.git",
        None,
        pygit2.enums.CredentialType(1),
    )
    assert good.credential_tuple == ("x-access-token", "ghs_cached")
    assert minted == []
    assert isinstance(credentials, GitCredentials)
