"""The fake GitHub is a fixture others depend on: check it behaves as GitHub does."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pygit2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gidgethub import BadRequest, GitHubBroken, HTTPException, RateLimitExceeded
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_installation_access_token, get_jwt

from tests.support.fake_github import (
    APP_JWT,
    EXPIRED_TOKEN,
    INSTALLATION_TOKEN,
    REVOKED_TOKEN,
    FakeGitHub,
    running_fake_github,
)
from tests.support.gitrepos import Content, GitRepo, RepoPath, git_env

ORG_ID = 1001


class GaveUp(Exception):
    """Raised by the test's credentials callback to stop libgit2 retrying."""


class CountingCredentials(pygit2.RemoteCallbacks):
    """Answer with one token, and give up (raise) after `max_attempts` requests."""

    def __init__(self, token: str, max_attempts: int = 2) -> None:
        super().__init__()
        self.token = token
        self.max_attempts = max_attempts
        self.attempts = 0

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: Any
    ) -> pygit2.UserPass:
        self.attempts += 1
        if self.attempts > self.max_attempts:
            raise GaveUp(f"refused {self.max_attempts} times")
        return pygit2.UserPass("x-access-token", self.token)


@pytest.fixture
async def gh(fake_github: FakeGitHub) -> AsyncIterator[GitHubAPI]:
    async with aiohttp.ClientSession() as session:
        yield GitHubAPI(session, "gitstats-test", base_url=fake_github.base_url)


def _source(path: Path, files: Mapping[RepoPath, Content] | None = None) -> GitRepo:
    repo = GitRepo.init(path)
    repo.commit(files or {"README.md": "hello\n"}, "first")
    return repo


def _org(fake: FakeGitHub, login: str = "acme", account_id: int = ORG_ID) -> int:
    return fake.add_installation(login, account_id)


def _git_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "credential.helper=", *args],
        cwd=cwd,
        env=git_env(extra={"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _expires(body: dict[str, Any]) -> float:
    return datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()


# -- the App: JWT → installation token ---------------------------------------------------


async def test_app_jwt_gets_installation_token(fake_github: FakeGitHub, gh: GitHubAPI) -> None:
    installation = _org(fake_github)
    body = await get_installation_access_token(
        gh,
        installation_id=str(installation),
        app_id=fake_github.app_id,
        private_key=fake_github.private_key_pem,
    )
    token = body["token"]
    assert token.startswith("ghs_") and len(token) == 40
    assert body["expires_at"].endswith("Z")
    assert abs(_expires(body) - (time.time() + 3600)) < 60
    assert body["permissions"] == {"contents": "read", "metadata": "read"}
    assert body["repository_selection"] == "selected"
    listing = await gh.getitem("/installation/repositories", oauth_token=token)
    assert listing["total_count"] == 0

    post, get = fake_github.requests
    assert (post.method, post.status, post.credential) == ("POST", 201, APP_JWT)
    assert (get.status, get.credential, get.installation_id) == (
        200,
        INSTALLATION_TOKEN,
        installation,
    )
    assert token not in repr(fake_github.requests)


async def test_client_id_is_accepted_as_issuer(fake_github: FakeGitHub, gh: GitHubAPI) -> None:
    installation = _org(fake_github)
    token = get_jwt(app_id=fake_github.client_id, private_key=fake_github.private_key_pem)
    body = await gh.post(f"/app/installations/{installation}/access_tokens", data=b"", jwt=token)
    assert body["token"].startswith("ghs_")


def _other_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _jwt(fake: FakeGitHub, **claims: Any) -> str:
    return jwt.encode(claims, fake.private_key_pem, algorithm="RS256")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other key", "A JSON web token could not be decoded"),
        ("other issuer", "A JSON web token could not be decoded"),
        ("not a JWT", "A JSON web token could not be decoded"),
        ("HS256", "A JSON web token could not be decoded"),
        ("expired", "'Expiration time' claim ('exp') must be a numeric value"),
        ("too long", "'Expiration time' claim ('exp') is too far in the future"),
        ("issued in the future", "'Issued at' claim ('iat') must be an Integer"),
    ],
)
async def test_bad_app_jwt_is_401(
    fake_github: FakeGitHub, gh: GitHubAPI, case: str, message: str
) -> None:
    installation = _org(fake_github)
    now = int(time.time())
    token = {
        "other key": lambda: get_jwt(app_id=fake_github.app_id, private_key=_other_key()),
        "other issuer": lambda: get_jwt(app_id="999", private_key=fake_github.private_key_pem),
        "not a JWT": lambda: "a.b.c",
        "HS256": lambda: jwt.encode(
            {"iss": fake_github.app_id, "iat": now, "exp": now + 60}, "s" * 32, algorithm="HS256"
        ),
        "expired": lambda: _jwt(fake_github, iss=fake_github.app_id, iat=now - 700, exp=now - 100),
        "too long": lambda: _jwt(fake_github, iss=fake_github.app_id, iat=now, exp=now + 660),
        "issued in the future": lambda: _jwt(
            fake_github, iss=fake_github.app_id, iat=now + 300, exp=now + 600
        ),
    }[case]()
    with pytest.raises(BadRequest) as caught:
        await gh.post(f"/app/installations/{installation}/access_tokens", data=b"", jwt=token)
    assert caught.value.status_code == 401
    assert str(caught.value).startswith(message)


async def test_installation_token_is_not_an_app_jwt(fake_github: FakeGitHub, gh: GitHubAPI) -> None:
    installation = _org(fake_github)
    token = fake_github.issue_token(installation)["token"]
    with pytest.raises(BadRequest) as caught:
        await gh.post(f"/app/installations/{installation}/access_tokens", data=b"", jwt=token)
    assert caught.value.status_code == 401


async def test_unknown_installation_is_404(fake_github: FakeGitHub, gh: GitHubAPI) -> None:
    with pytest.raises(BadRequest) as caught:
        await get_installation_access_token(
            gh,
            installation_id="4242",
            app_id=fake_github.app_id,
            private_key=fake_github.private_key_pem,
        )
    assert caught.value.status_code == 404


async def test_app_installations_suspension_and_removal(
    fake_github: FakeGitHub, gh: GitHubAPI
) -> None:
    first, second = _org(fake_github), _org(fake_github, "other", ORG_ID + 1)
    app_jwt = get_jwt(app_id=fake_github.app_id, private_key=fake_github.private_key_pem)
    listed = [i async for i in gh.getiter("/app/installations?per_page=1", jwt=app_jwt)]
    assert [(i["id"], i["account"]["login"]) for i in listed] == [
        (first, "acme"),
        (second, "other"),
    ]

    fake_github.suspend_installation(first)
    assert (await gh.getitem(f"/app/installations/{first}", jwt=app_jwt))["suspended_at"]
    with pytest.raises(HTTPException) as refused:
        await get_installation_access_token(
            gh,
            installation_id=str(first),
            app_id=fake_github.app_id,
            private_key=fake_github.private_key_pem,
        )
    assert refused.value.status_code == 403
    fake_github.suspend_installation(first, suspended=False)
    assert (await gh.getitem(f"/app/installations/{first}", jwt=app_jwt))["suspended_at"] is None

    fake_github.remove_installation(second)
    with pytest.raises(HTTPException) as gone:
        await gh.getitem(f"/app/installations/{second}", jwt=app_jwt)
    assert gone.value.status_code == 404
    token = fake_github.issue_token(first)["token"]
    with pytest.raises(HTTPException) as not_a_jwt:
        await gh.getitem("/app/installations", oauth_token=token)
    assert not_a_jwt.value.status_code == 401


async def test_token_lifetime_expiry_and_revocation() -> None:
    with running_fake_github(token_lifetime=timedelta(seconds=5)) as fake:
        installation = _org(fake)
        short = fake.issue_token(installation)
        assert 0 < _expires(short) - time.time() <= 6

        fake.token_lifetime = 3600
        kept, revoked = (fake.issue_token(installation)["token"] for _ in range(2))
        fake.revoke(revoked)
        async with aiohttp.ClientSession() as session:
            api = GitHubAPI(session, "gitstats-test", base_url=fake.base_url)
            await api.getitem("/installation/repositories", oauth_token=kept)
            with pytest.raises(BadRequest) as caught:
                await api.getitem("/installation/repositories", oauth_token=revoked)
            assert caught.value.status_code == 401
            assert str(caught.value) == "Bad credentials"

            fake.expire_tokens()
            for token in (short["token"], kept):
                with pytest.raises(BadRequest) as caught:
                    await api.getitem("/installation/repositories", oauth_token=token)
                assert caught.value.status_code == 401
            fresh = fake.issue_token(installation)["token"]
            await api.getitem("/installation/repositories", oauth_token=fresh)
        kinds = [r.credential for r in fake.requests]
        assert kinds == [
            INSTALLATION_TOKEN,
            REVOKED_TOKEN,
            EXPIRED_TOKEN,
            EXPIRED_TOKEN,
            INSTALLATION_TOKEN,
        ]


# -- installation token endpoints --------------------------------------------------------


async def test_installation_repositories_paginate(
    fake_github: FakeGitHub, gh: GitHubAPI, tmp_path: Path
) -> None:
    installation = _org(fake_github)
    names = [f"repo{i}" for i in range(5)]
    for name in names:
        fake_github.add_repository(installation, "acme", name, tmp_path / name)
    other = fake_github.add_installation("other", 2002)
    fake_github.add_repository(other, "other", "hidden", tmp_path / "hidden")
    token = fake_github.issue_token(installation)["token"]

    seen = [
        repo["full_name"]
        async for repo in gh.getiter(
            "/installation/repositories?per_page=2", oauth_token=token, iterable_key="repositories"
        )
    ]
    assert seen == [f"acme/{name}" for name in names]
    assert [r.query for r in fake_github.requests] == [
        "per_page=2",
        "per_page=2&page=2",
        "per_page=2&page=3",
    ]

    base = fake_github.base_url
    async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as session:
        async with session.get(f"{base}/installation/repositories?per_page=2") as resp:
            body = await resp.json()
            assert resp.headers["Link"] == (
                f'<{base}/installation/repositories?per_page=2&page=2>; rel="next", '
                f'<{base}/installation/repositories?per_page=2&page=3>; rel="last"'
            )
        assert body["total_count"] == 5
        assert body["repository_selection"] == "selected"
        assert len(body["repositories"]) == 2
        async with session.get(f"{base}/installation/repositories?per_page=2&page=3") as resp:
            assert resp.headers["Link"] == (
                f'<{base}/installation/repositories?per_page=2&page=2>; rel="prev", '
                f'<{base}/installation/repositories?per_page=2&page=1>; rel="first"'
            )
            assert [r["name"] for r in (await resp.json())["repositories"]] == ["repo4"]
        async with session.get(f"{base}/installation/repositories") as resp:
            assert "Link" not in resp.headers
            assert resp.headers["x-ratelimit-remaining"].isdigit()


async def test_repository_object_and_visibility(
    fake_github: FakeGitHub, gh: GitHubAPI, tmp_path: Path
) -> None:
    installation = _org(fake_github)
    added = fake_github.add_repository(
        installation, "acme", "widgets", tmp_path / "w", repo_id=77, default_branch="trunk"
    )
    second = fake_github.add_repository(installation, "acme", "gadgets", tmp_path / "g")
    other = fake_github.add_installation("other", 2002, "User")
    fake_github.add_repository(other, "other", "secret", tmp_path / "s")
    fake_github.add_repository(other, "other", "open", tmp_path / "o", private=False)
    token = fake_github.issue_token(installation)["token"]

    repo = await gh.getitem("/repos/acme/widgets", oauth_token=token)
    assert repo == added
    assert repo["id"] == 77 and repo["name"] == "widgets" and repo["full_name"] == "acme/widgets"
    assert repo["private"] is True and repo["archived"] is False
    assert repo["default_branch"] == "trunk"
    assert repo["node_id"] and repo["html_url"]
    assert {k: repo["owner"][k] for k in ("login", "id", "type")} == {
        "login": "acme",
        "id": ORG_ID,
        "type": "Organization",
    }
    assert repo["clone_url"] == f"{fake_github.base_url}/acme/widgets.git"
    assert (await gh.getitem("/repos/ACME/Widgets", oauth_token=token))["id"] == 77

    for missing in ("/repos/other/secret", "/repos/acme/nothing"):
        with pytest.raises(BadRequest) as caught:
            await gh.getitem(missing, oauth_token=token)
        assert caught.value.status_code == 404
    public = await gh.getitem("/repos/other/open", oauth_token=token)
    assert public["owner"]["type"] == "User" and public["visibility"] == "public"

    with pytest.raises(BadRequest) as caught:
        await gh.getitem("/repos/acme/widgets", oauth_token="ghs_" + "x" * 36)
    assert caught.value.status_code == 401
    assert str(caught.value) == "Bad credentials"

    # A token scoped down to some repositories sees only those.
    app_jwt = get_jwt(app_id=fake_github.app_id, private_key=fake_github.private_key_pem)
    url = f"/app/installations/{installation}/access_tokens"
    scoped = await gh.post(url, data={"repository_ids": [second["id"]]}, jwt=app_jwt)
    assert scoped["repository_selection"] == "selected"
    assert [r["name"] for r in scoped["repositories"]] == ["gadgets"]
    listing = await gh.getitem("/installation/repositories", oauth_token=scoped["token"])
    assert [r["name"] for r in listing["repositories"]] == ["gadgets"]
    with pytest.raises(BadRequest) as caught:
        await gh.getitem("/repos/acme/widgets", oauth_token=scoped["token"])
    assert caught.value.status_code == 404
    for wrong in (
        {"repositories": ["secret"]},
        {"repository_ids": [999]},
        {"permissions": {"contents": "write"}},
        {"permissions": {"issues": "read"}},
    ):
        with pytest.raises(BadRequest) as caught:
            await gh.post(url, data=wrong, jwt=app_jwt)
        assert caught.value.status_code == 422, wrong
    narrowed = await gh.post(url, data={"permissions": {"metadata": "read"}}, jwt=app_jwt)
    assert narrowed["permissions"] == {"metadata": "read"}


async def test_rename_redirects_and_remove_is_404(
    fake_github: FakeGitHub, gh: GitHubAPI, tmp_path: Path
) -> None:
    installation = _org(fake_github)
    added = fake_github.add_repository(installation, "acme", "old", tmp_path / "r")
    token = fake_github.issue_token(installation)["token"]
    renamed = fake_github.rename_repository(added["id"], "new")
    assert renamed["full_name"] == "acme/new"

    # GitHub answers the old name 301 → /repositories/{id}; aiohttp follows it.
    repo = await gh.getitem("/repos/acme/old", oauth_token=token)
    assert repo["full_name"] == "acme/new"
    assert [(r.path, r.status) for r in fake_github.requests] == [
        ("/repos/acme/old", 301),
        (f"/repositories/{added['id']}", 200),
    ]

    fake_github.remove_repository("acme/new")
    for path in ("/repos/acme/new", "/repos/acme/old", f"/repositories/{added['id']}"):
        with pytest.raises(BadRequest) as caught:
            await gh.getitem(path, oauth_token=token)
        assert caught.value.status_code == 404
    listing = await gh.getitem("/installation/repositories", oauth_token=token)
    assert listing["total_count"] == 0


# -- user endpoints ----------------------------------------------------------------------


async def test_user_endpoints(fake_github: FakeGitHub, gh: GitHubAPI, tmp_path: Path) -> None:
    acme = _org(fake_github)
    r1, r2, r3 = (
        fake_github.add_repository(acme, "acme", name, tmp_path / name)["id"]
        for name in ("one", "two", "three")
    )
    other = fake_github.add_installation("other", 2002)
    fake_github.add_repository(other, "other", "x", tmp_path / "x")
    alice = fake_github.add_user("alice", 31)
    bob = fake_github.add_user("bob")
    fake_github.grant(alice, acme, repo_ids=[r1], admin_repo_ids=[r2], org_role="member")

    user = await gh.getitem("/user", oauth_token=alice)
    assert (user["login"], user["id"], user["type"]) == ("alice", 31, "User")

    installations = await gh.getitem("/user/installations", oauth_token=alice)
    assert installations["total_count"] == 1
    (inst,) = installations["installations"]
    assert inst["id"] == acme
    assert {k: inst["account"][k] for k in ("login", "id", "type")} == {
        "login": "acme",
        "id": ORG_ID,
        "type": "Organization",
    }

    repos = await gh.getitem(f"/user/installations/{acme}/repositories", oauth_token=alice)
    assert repos["total_count"] == 2
    perms = {r["id"]: r["permissions"] for r in repos["repositories"]}
    assert set(perms) == {r1, r2}
    assert perms[r1] == {
        "admin": False,
        "maintain": False,
        "push": False,
        "triage": False,
        "pull": True,
    }
    assert perms[r2]["admin"] is True and perms[r2]["pull"] is True
    with pytest.raises(BadRequest) as caught:
        await gh.getitem(f"/user/installations/{other}/repositories", oauth_token=alice)
    assert caught.value.status_code == 404

    membership = await gh.getitem("/user/memberships/orgs/acme", oauth_token=alice)
    assert (membership["state"], membership["role"]) == ("active", "member")
    assert membership["organization"]["login"] == "acme"
    assert membership["organization"]["id"] == ORG_ID
    assert (membership["user"]["login"], membership["user"]["id"]) == ("alice", 31)
    for org, token in (("other", alice), ("acme", bob), ("nowhere", alice)):
        with pytest.raises(BadRequest) as caught:
            await gh.getitem(f"/user/memberships/orgs/{org}", oauth_token=token)
        assert caught.value.status_code == 404

    # An org owner is admin on every repository of the organisation.
    fake_github.grant(alice, acme, repo_ids=[r1], org_role="admin")
    membership = await gh.getitem("/user/memberships/orgs/acme", oauth_token=alice)
    assert membership["role"] == "admin"
    repos = await gh.getitem(f"/user/installations/{acme}/repositories", oauth_token=alice)
    assert {r["id"] for r in repos["repositories"] if r["permissions"]["admin"]} == {r1, r2, r3}

    assert (await gh.getitem("/user/installations", oauth_token=bob))["total_count"] == 0

    with pytest.raises(BadRequest) as caught:
        await gh.getitem("/user", oauth_token="ghu_" + "x" * 36)
    assert caught.value.status_code == 401 and str(caught.value) == "Bad credentials"
    installation_token = fake_github.issue_token(acme)["token"]
    with pytest.raises(BadRequest) as caught:
        await gh.getitem("/user/installations", oauth_token=installation_token)
    assert caught.value.status_code == 403
    with pytest.raises(BadRequest) as caught:
        await gh.getitem("/installation/repositories", oauth_token=alice)
    assert caught.value.status_code == 403
    fake_github.revoke(alice)
    with pytest.raises(BadRequest) as caught:
        await gh.getitem("/user", oauth_token=alice)
    assert caught.value.status_code == 401
    assert alice not in repr(fake_github.requests)


# -- fault injection ---------------------------------------------------------------------


async def test_fail_next_answers_502_once(fake_github: FakeGitHub, gh: GitHubAPI) -> None:
    installation = _org(fake_github)
    token = fake_github.issue_token(installation)["token"]
    fake_github.fail_next(r"^/installation/repositories$")
    with pytest.raises(GitHubBroken) as caught:
        await gh.getitem("/installation/repositories", oauth_token=token)
    assert caught.value.status_code == 502
    await gh.getitem("/installation/repositories", oauth_token=token)
    assert [r.status for r in fake_github.requests] == [502, 200]


async def test_rate_limit_next(fake_github: FakeGitHub, gh: GitHubAPI) -> None:
    installation = _org(fake_github)
    token = fake_github.issue_token(installation)["token"]
    fake_github.rate_limit_next("/installation/", reset_in=120)
    with pytest.raises(RateLimitExceeded) as caught:
        await gh.getitem("/installation/repositories", oauth_token=token)
    limit = caught.value.rate_limit
    assert limit.remaining == 0
    assert 60 < (limit.reset_datetime - datetime.now(UTC)).total_seconds() <= 121
    assert f"installation ID {installation}" in str(caught.value)
    await gh.getitem("/installation/repositories", oauth_token=token)
    assert gh.rate_limit is not None and gh.rate_limit.remaining > 0


# -- git over HTTP -----------------------------------------------------------------------


def test_pygit2_clones_and_fetches(fake_github: FakeGitHub, tmp_path: Path) -> None:
    source = _source(tmp_path / "src")
    installation = _org(fake_github)
    repo = fake_github.add_repository(installation, "acme", "widgets", source.path)
    token = fake_github.issue_token(installation)["token"]

    callbacks = CountingCredentials(token)
    clone = pygit2.clone_repository(
        repo["clone_url"], str(tmp_path / "clone"), bare=True, callbacks=callbacks
    )
    assert callbacks.attempts == 1
    assert str(clone.head.target) == source.head()

    later = source.commit({"more.txt": "more\n"}, "second", date="2024-02-01T00:00:00+00:00")
    clone.remotes["origin"].fetch(callbacks=CountingCredentials(token))
    assert str(clone.references["refs/remotes/origin/main"].target) == later
    assert clone.get(later) is not None
    statuses = [(r.method, r.status, r.credential) for r in fake_github.requests]
    assert ("POST", 200, INSTALLATION_TOKEN) in statuses
    assert token not in repr(fake_github.requests)


@pytest.mark.parametrize("problem", ["wrong", "expired", "revoked"])
def test_pygit2_refuses_bad_token(fake_github: FakeGitHub, tmp_path: Path, problem: str) -> None:
    installation = _org(fake_github)
    repo = fake_github.add_repository(installation, "acme", "w", _source(tmp_path / "src").path)
    token = fake_github.issue_token(installation)["token"]
    if problem == "wrong":
        token = "ghs_" + "x" * 36
    elif problem == "expired":
        fake_github.expire_tokens()
    else:
        fake_github.revoke(token)

    callbacks = CountingCredentials(token, max_attempts=2)
    with pytest.raises(GaveUp):
        pygit2.clone_repository(
            repo["clone_url"], str(tmp_path / "c"), bare=True, callbacks=callbacks
        )
    # libgit2 asks again after each 401: twice answered, the third time the callback raised.
    assert callbacks.attempts == 3
    assert {r.status for r in fake_github.requests} == {401}
    assert not any(r.path.endswith("git-upload-pack") for r in fake_github.requests)


def test_pygit2_userpass_on_401_gives_up_after_replays(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    """A fixed UserPass is re-sent on every 401; libgit2 stops after 15 replays."""
    installation = _org(fake_github)
    repo = fake_github.add_repository(installation, "acme", "w", _source(tmp_path / "src").path)
    callbacks = pygit2.RemoteCallbacks(credentials=pygit2.UserPass("x-access-token", "ghs_bad"))
    with pytest.raises(pygit2.GitError, match="too many redirects or authentication replays"):
        pygit2.clone_repository(
            repo["clone_url"], str(tmp_path / "c"), bare=True, callbacks=callbacks
        )
    assert 2 < len(fake_github.requests) <= 20


def _pkt(line: str) -> bytes:
    return f"{len(line) + 4:04x}{line}".encode()


async def test_upload_pack_streams_a_chunked_request_body(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    source = _source(tmp_path / "src")
    installation = _org(fake_github)
    repo = fake_github.add_repository(installation, "acme", "widgets", source.path)
    token = fake_github.issue_token(installation)["token"]

    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()

    async def body() -> AsyncIterator[bytes]:
        # A body of unknown length: aiohttp sends it chunked, with no Content-Length.
        yield _pkt(f"want {source.head()}\n")
        yield b"0000"
        yield _pkt("done\n")

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{repo['clone_url']}/git-upload-pack",
            data=body(),
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-git-upload-pack-request",
            },
        ) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-git-upload-pack-result"
        answer = await resp.read()
    assert answer.startswith(b"0008NAK\n")
    assert answer[8:12] == b"PACK"


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_stall_git_holds_git_requests_until_resumed(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    installation = _org(fake_github)
    repo = fake_github.add_repository(installation, "acme", "w", _source(tmp_path / "src").path)
    token = fake_github.issue_token(installation)["token"]
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    refs = f"{repo['clone_url']}/info/refs?service=git-upload-pack"
    fake_github.stall_git()

    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {basic}"}) as session:
        # A client that gives up on the stalled server is answered nothing once it resumes.
        with pytest.raises(TimeoutError):
            await session.get(refs, timeout=aiohttp.ClientTimeout(total=0.2))
        await _until(lambda: fake_github.git_requests_held == 1, "the first request to be held")
        held = asyncio.create_task(session.get(refs))
        await _until(lambda: fake_github.git_requests_held == 2, "the second request to be held")
        assert not held.done()
        await session.get(f"{fake_github.base_url}/installation/repositories")  # REST flows
        resumed_at = time.time()
        fake_github.resume_git()
        async with await held as response:
            assert response.status == 200
            assert b"# service=git-upload-pack" in await response.read()
        async with session.get(refs) as response:  # no longer held
            assert response.status == 200
            await response.read()

    await _until(lambda: len(fake_github.requests) == 4, "the given-up request to be logged")
    git = [r for r in fake_github.requests if r.path.endswith("/info/refs")]
    # In the order they were answered: the one whose client gave up first, with no answer.
    assert [r.status for r in git] == [499, 200, 200]
    assert [r.received_at < resumed_at for r in git] == [True, True, False]
    assert fake_github.git_requests_held == 2


def test_git_cli_clones_non_bare_and_bare(fake_github: FakeGitHub, tmp_path: Path) -> None:
    source = _source(tmp_path / "src")
    # Enough branches that git gzips its upload-pack request (bodies over 1 KiB).
    for i in range(40):
        source.branch(f"topic/{i:02d}")
    bare = source.clone_bare(tmp_path / "bare.git")
    installation = _org(fake_github)
    fake_github.add_repository(installation, "acme", "worktree", source.path)
    fake_github.add_repository(installation, "acme", "bare", bare)
    token = fake_github.issue_token(installation)["token"]

    for name in ("worktree", "bare"):
        url = f"http://x-access-token:{token}@127.0.0.1:{fake_github.port}/acme/{name}.git"
        dest = tmp_path / f"clone-{name}"
        done = _git_cli("clone", "-q", "--mirror", url, str(dest))
        assert done.returncode == 0, done.stderr
        assert GitRepo(dest).head("topic/39") == source.head()
        assert len(GitRepo(dest).branches()) == 41
    posts = [r for r in fake_github.requests if r.method == "POST"]
    assert posts and all(r.status == 200 for r in posts)
    assert "gzip" in {r.content_encoding for r in posts}

    # Fetch only: a push is refused.
    work = tmp_path / "work"
    url = f"http://x-access-token:{token}@127.0.0.1:{fake_github.port}/acme/worktree.git"
    assert _git_cli("clone", "-q", url, str(work)).returncode == 0
    GitRepo(work).commit({"new.txt": "new\n"}, "pushed?")
    pushed = _git_cli("push", "-q", "origin", "main", cwd=work)
    assert pushed.returncode != 0
    assert any(r.status == 403 and "receive-pack" in r.query for r in fake_github.requests)
    assert token not in repr(fake_github.requests)


def test_git_cli_refuses_bad_token_and_hides_other_repositories(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    source = _source(tmp_path / "src")
    acme = _org(fake_github)
    other = fake_github.add_installation("other", 2002)
    fake_github.add_repository(acme, "acme", "mine", source.path)
    fake_github.add_repository(other, "other", "theirs", source.path)
    token = fake_github.issue_token(acme)["token"]
    host = f"127.0.0.1:{fake_github.port}"

    bad = _git_cli(
        "clone", "-q", f"http://x-access-token:ghs_nope@{host}/acme/mine.git", str(tmp_path / "a")
    )
    assert bad.returncode != 0 and "Authentication failed" in bad.stderr
    anonymous = _git_cli("clone", "-q", f"http://{host}/acme/mine.git", str(tmp_path / "b"))
    assert anonymous.returncode != 0
    # Valid credentials that cannot read the repository: 404, as GitHub hides it.
    hidden = _git_cli(
        "clone", "-q", f"http://x-access-token:{token}@{host}/other/theirs.git", str(tmp_path / "c")
    )
    assert hidden.returncode != 0 and "not found" in hidden.stderr
    assert fake_github.requests[-1].status == 404


def test_git_follows_rename_and_fail_next(fake_github: FakeGitHub, tmp_path: Path) -> None:
    source = _source(tmp_path / "src")
    installation = _org(fake_github)
    repo = fake_github.add_repository(installation, "acme", "old", source.path)
    token = fake_github.issue_token(installation)["token"]
    fake_github.rename_repository(repo["id"], "new")

    fake_github.fail_next(r"/info/refs$")
    with pytest.raises(pygit2.GitError, match="502"):
        pygit2.clone_repository(
            repo["clone_url"], str(tmp_path / "a"), bare=True, callbacks=CountingCredentials(token)
        )
    # The old URL still clones: GitHub redirects it to the new name.
    clone = pygit2.clone_repository(
        repo["clone_url"], str(tmp_path / "b"), bare=True, callbacks=CountingCredentials(token)
    )
    assert str(clone.head.target) == source.head()
    statuses = [r.status for r in fake_github.requests]
    assert statuses[0] == 502 and 301 in statuses
    assert fake_github.requests[-1].path == "/acme/new.git/git-upload-pack"
