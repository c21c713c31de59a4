"""A fake GitHub on loopback for the tests: the REST calls the service makes, and git over HTTP.

`FakeGitHub` serves, from a background thread with its own event loop (so it keeps
answering while a test blocks, and other processes can reach it):

- the App: `POST /app/installations/{id}/access_tokens` (403 while the installation is
  suspended), `GET /app/installations` (paginated) and `GET /app/installations/{id}`,
  authenticated by an RS256 JWT checked against the fake's own key pair (`private_key_pem` is
  the App's private key);
- installation tokens: `GET /installation/repositories` (paginated, with a `Link`
  header), `GET /repos/{owner}/{repo}` and `GET /repositories/{id}`;
- user tokens: `GET /user`, `GET /user/installations`,
  `GET /user/installations/{id}/repositories`, `GET /user/memberships/orgs/{org}`;
- git's smart HTTP protocol, fetch only, through `git http-backend` run as a CGI, at each
  repository's `clone_url`, behind Basic auth `x-access-token:<installation token>`.

Each fake repository is a real repository on disk that the test owns (bare, or non-bare
and then its `.git` is served), read live on every request. Tests control the state with
plain, thread-safe methods, inject faults (`fail_next`, `rate_limit_next`, `stall_git`) and
read the request log (`requests`), which records the kind of credential used, never a token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import string
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "FakeGitHub",
    "RecordedRequest",
    "fake_github",
    "running_fake_github",
]

log = logging.getLogger(__name__)

DOCS = "https://docs.github.com/rest"
JWT_MAX_LIFETIME = 600  # GitHub refuses an App JWT whose `exp` is over 10 minutes away.
JWT_CLOCK_SKEW = 60  # Leeway for an `iat` slightly in the future.
GIT_USERNAME = "x-access-token"
DEFAULT_PERMISSIONS: Mapping[str, str] = {"contents": "read", "metadata": "read"}
READ_PERMISSIONS = {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True}
ADMIN_PERMISSIONS = {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}

# Credential kinds as recorded in `RecordedRequest.credential`.
NO_CREDENTIAL = "none"
APP_JWT = "app_jwt"
BAD_JWT = "bad_jwt"
INSTALLATION_TOKEN = "installation_token"
USER_TOKEN = "user_token"
EXPIRED_TOKEN = "expired_token"
REVOKED_TOKEN = "revoked_token"
UNKNOWN_TOKEN = "unknown_token"

_TOKEN_ALPHABET = string.ascii_letters + string.digits
_GIT_SUFFIX = r"{suffix:info/refs|git-upload-pack|git-receive-pack}"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake answered; `credential` is a kind (see module constants)."""

    method: str
    path: str
    query: str
    status: int
    credential: str
    received_at: float  # time.time() when the request arrived
    scheme: str | None = None  # "basic", "bearer" or "token", as sent
    installation_id: int | None = None
    user: str | None = None
    content_encoding: str | None = None


# -- state ------------------------------------------------------------------------------


def _now_iso(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, number: int) -> str:
    """GitHub's legacy global node id, e.g. base64 of "010:Repository42"."""
    return base64.b64encode(f"{len(kind):02d}:{kind}{number}".encode()).decode()


def _token(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))


@dataclass
class _Account:
    login: str
    id: int
    type: str  # "Organization" or "User"


@dataclass
class _Installation:
    id: int
    account: _Account
    repository_selection: str
    permissions: dict[str, str]
    created_at: str
    repo_ids: list[int] = field(default_factory=list)
    suspended_at: str | None = None
    app_id: str | None = None  # another App's installation (None: this App's)


@dataclass
class _Repo:
    id: int
    installation_id: int
    owner: _Account
    name: str
    path: Path
    default_branch: str
    private: bool
    archived: bool
    created_at: str

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class _InstallationToken:
    installation_id: int
    expires_at: float
    repo_ids: frozenset[int] | None  # None: every repository of the installation
    permissions: dict[str, str]
    revoked: bool = False


@dataclass
class _Grant:
    repo_ids: frozenset[int] | None  # None: every repository of the installation
    admin_repo_ids: frozenset[int]
    org_role: str | None


@dataclass
class _User:
    login: str
    id: int
    revoked: bool = False
    expired: bool = False
    grants: dict[int, _Grant] = field(default_factory=dict)


@dataclass
class _Auth:
    """Who a request is, from its Authorization header."""

    kind: str
    scheme: str | None = None
    installation: _InstallationToken | None = None
    user: _User | None = None
    error: str | None = None  # for BAD_JWT: GitHub's message


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    method: str | None
    times: int
    status: int
    rate_limit_reset_in: float | None = None  # set: answer as a rate limit
    retry_after: float | None = None  # set: a Retry-After header on the answer


_AUTH = web.RequestKey("auth", _Auth)


class _Reply(Exception):
    """Raised by a handler to answer with a GitHub-shaped error."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


def _error(
    status: int,
    message: str,
    documentation_url: str = DOCS,
    headers: Mapping[str, str] | None = None,
) -> _Reply:
    body = {"message": message, "documentation_url": documentation_url, "status": str(status)}
    return _Reply(web.json_response(body, status=status, headers=headers))


def _permissions_within(requested: object, granted: Mapping[str, str]) -> bool:
    """Whether a token request asks for no more than the installation was granted."""
    levels = {"read": 1, "write": 2, "admin": 3}
    if not isinstance(requested, dict):
        return False
    return all(
        isinstance(level, str) and levels.get(level, 99) <= levels.get(granted.get(name, ""), 0)
        for name, level in requested.items()
    )


def _not_found() -> _Reply:
    return _error(404, "Not Found")


def _bad_credentials() -> _Reply:
    return _error(401, "Bad credentials")


# -- the fake -----------------------------------------------------------------------------


class FakeGitHub:
    """A GitHub App's view of GitHub, served on 127.0.0.1 from a background thread."""

    def __init__(
        self,
        app_id: str,
        *,
        client_id: str | None = None,
        token_lifetime: float | timedelta = 3600.0,
    ) -> None:
        self.app_id = str(app_id)
        self.client_id = client_id or f"Iv23li{secrets.token_hex(7)}"
        self.token_lifetime = token_lifetime  # seconds or timedelta, for tokens issued next
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem: str = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self._public_key = key.public_key()
        self._lock = threading.RLock()
        self._installations: dict[int, _Installation] = {}
        self._repos: dict[int, _Repo] = {}
        self._aliases: dict[str, int] = {}  # lower-cased old full names → repo id
        self._tokens: dict[str, _InstallationToken] = {}
        self._users: dict[str, _User] = {}  # token → user
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        # Set while git requests are answered, cleared by stall_git(); one per serving loop, and
        # only that loop touches it (asyncio.Event is neither thread-safe nor loop-agnostic).
        self._git_flowing: asyncio.Event | None = None
        self._git_requests_held = 0
        self._next_installation_id = 50_000_001
        self._next_repo_id = 700_000_001
        self._next_user_id = 9_000_001
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._git_home: str | None = None

    def __repr__(self) -> str:
        where = self._base_url_or_none() or "not running"
        return f"FakeGitHub(app_id={self.app_id!r}, {where})"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        """Start serving on 127.0.0.1 (a free port) from a background thread."""
        if self._thread is not None:
            raise RuntimeError("FakeGitHub is already running")
        self._git_home = tempfile.mkdtemp(prefix="fake-github-home-")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._serve, name="fake-github", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start_server(), loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving and end the background thread; the state is kept."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if self._runner is not None:
                self.resume_git()  # held requests end now, not at the shutdown timeout
                cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
                cleanup.result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            self._loop = self._thread = self._runner = self._git_flowing = None
            self._port = None
            if self._git_home is not None:
                shutil.rmtree(self._git_home, ignore_errors=True)
                self._git_home = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start_server(self) -> None:
        self._git_flowing = asyncio.Event()
        self._git_flowing.set()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(
            r"/app/installations/{installation_id:\d+}/access_tokens", self._access_tokens
        )
        app.router.add_get("/app/installations", self._app_installations)
        app.router.add_get(r"/app/installations/{installation_id:\d+}", self._app_installation)
        app.router.add_get("/installation/repositories", self._installation_repositories)
        app.router.add_get("/repos/{owner}/{repo}", self._get_repo)
        app.router.add_get(r"/repositories/{repo_id:\d+}", self._get_repo_by_id)
        app.router.add_get("/user", self._get_user)
        app.router.add_get("/user/installations", self._user_installations)
        app.router.add_get(
            r"/user/installations/{installation_id:\d+}/repositories",
            self._user_installation_repositories,
        )
        app.router.add_get("/user/memberships/orgs/{org}", self._user_membership)
        app.router.add_route("*", "/{owner}/{repo}/" + _GIT_SUFFIX, self._git)
        # auto_decompress=False: a gzip request body goes to git http-backend as sent.
        runner = web.AppRunner(app, access_log=None, auto_decompress=False, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]

    def _base_url_or_none(self) -> str | None:
        return None if self._port is None else f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """The API root and git host, `http://127.0.0.1:PORT` (no trailing slash)."""
        url = self._base_url_or_none()
        if url is None:
            raise RuntimeError("FakeGitHub is not running; use start() or running_fake_github()")
        return url

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    # -- control API ----------------------------------------------------------------------

    def add_installation(
        self,
        account_login: str,
        account_id: int,
        account_type: str = "Organization",
        *,
        repository_selection: str = "selected",
        permissions: Mapping[str, str] | None = None,
        app_id: str | None = None,
    ) -> int:
        """Install the App (or, with `app_id`, another App) on an account; return the new
        installation id. Another App's installation is invisible to this App's JWT."""
        if account_type not in ("Organization", "User"):
            raise ValueError(f"account_type must be 'Organization' or 'User': {account_type!r}")
        if repository_selection not in ("all", "selected"):
            raise ValueError("repository_selection must be 'all' or 'selected'")
        with self._lock:
            if app_id is None and self._account(account_login) is not None:
                raise ValueError(f"the App is already installed on {account_login!r}")
            installation_id = self._next_installation_id
            self._next_installation_id += 1
            self._installations[installation_id] = _Installation(
                id=installation_id,
                account=_Account(account_login, int(account_id), account_type),
                repository_selection=repository_selection,
                permissions=dict(DEFAULT_PERMISSIONS if permissions is None else permissions),
                created_at=_now_iso(),
                app_id=app_id,
            )
            return installation_id

    def suspend_installation(self, installation_id: int, suspended: bool = True) -> None:
        """Suspend (or unsuspend) an installation: no token is issued for it while suspended."""
        with self._lock:
            installation = self._installation(installation_id)
            installation.suspended_at = _now_iso() if suspended else None

    def rename_account(self, installation_id: int, new_login: str) -> None:
        """Rename the installation's account: its repositories' full names change with it, and
        their old names answer 301, as on GitHub."""
        with self._lock:
            installation = self._installation(installation_id)
            for rid in installation.repo_ids:
                self._aliases[self._repos[rid].full_name.lower()] = rid
            installation.account.login = new_login
            for rid in installation.repo_ids:
                self._aliases.pop(self._repos[rid].full_name.lower(), None)

    def remove_installation(self, installation_id: int) -> None:
        """Uninstall the App: the installation, its repositories and its tokens are gone."""
        with self._lock:
            installation = self._installations.pop(int(installation_id))
            for rid in installation.repo_ids:
                repo = self._repos.pop(rid)
                for alias in [a for a, r in self._aliases.items() if r == repo.id]:
                    del self._aliases[alias]

    def add_repository(
        self,
        installation_id: int,
        owner: str,
        name: str,
        path: str | os.PathLike[str],
        repo_id: int | None = None,
        default_branch: str = "main",
        private: bool = True,
        *,
        archived: bool = False,
    ) -> dict[str, Any]:
        """Serve the git repository at `path` (bare, or non-bare: its .git) as owner/name."""
        with self._lock:
            installation = self._installation(installation_id)
            if owner.lower() != installation.account.login.lower():
                raise ValueError(
                    f"{owner}/{name} cannot be in installation {installation_id} "
                    f"of {installation.account.login!r}"
                )
            if self._find_repo(owner, name, aliases=False) is not None:
                raise ValueError(f"repository {owner}/{name} already exists")
            if repo_id is None:
                repo_id = self._next_repo_id
                self._next_repo_id += 1
            elif repo_id in self._repos:
                raise ValueError(f"repository id {repo_id} is already used")
            repo = _Repo(
                id=repo_id,
                installation_id=installation_id,
                owner=installation.account,
                name=name,
                path=Path(path).resolve(),
                default_branch=default_branch,
                private=private,
                archived=archived,
                created_at=_now_iso(),
            )
            self._repos[repo_id] = repo
            installation.repo_ids.append(repo_id)
            self._aliases.pop(repo.full_name.lower(), None)
            return self._repo_json(repo)

    def remove_repository(self, repo: int | str) -> None:
        """Delete a repository (by id or "owner/name") from GitHub: every lookup is 404."""
        with self._lock:
            found = self._repo_ref(repo)
            del self._repos[found.id]
            self._installations[found.installation_id].repo_ids.remove(found.id)
            for alias in [a for a, rid in self._aliases.items() if rid == found.id]:
                del self._aliases[alias]

    def rename_repository(self, repo: int | str, new_name: str) -> dict[str, Any]:
        """Rename a repository; its old name answers 301 (API and git), as on GitHub."""
        with self._lock:
            found = self._repo_ref(repo)
            other = self._find_repo(found.owner.login, new_name, aliases=False)
            if other is not None and other.id != found.id:
                raise ValueError(f"repository {found.owner.login}/{new_name} already exists")
            self._aliases[found.full_name.lower()] = found.id
            found.name = new_name
            self._aliases.pop(found.full_name.lower(), None)
            return self._repo_json(found)

    def set_repository(
        self,
        repo: int | str,
        *,
        path: str | os.PathLike[str] | None = None,
        default_branch: str | None = None,
        private: bool | None = None,
        archived: bool | None = None,
    ) -> dict[str, Any]:
        """Change a repository's metadata or the directory served for it."""
        with self._lock:
            found = self._repo_ref(repo)
            if path is not None:
                found.path = Path(path).resolve()
            if default_branch is not None:
                found.default_branch = default_branch
            if private is not None:
                found.private = private
            if archived is not None:
                found.archived = archived
            return self._repo_json(found)

    def repository(self, repo: int | str) -> dict[str, Any]:
        """The repository object, as the API would answer it to its installation."""
        with self._lock:
            return self._repo_json(self._repo_ref(repo))

    def add_user(self, login: str, user_id: int | None = None) -> str:
        """Create a user who authorised the App; return their user access token (ghu_)."""
        with self._lock:
            if any(u.login.lower() == login.lower() for u in self._users.values()):
                raise ValueError(f"user {login!r} already exists")
            if user_id is None:
                user_id = self._next_user_id
                self._next_user_id += 1
            token = _token("ghu_")
            self._users[token] = _User(login=login, id=int(user_id))
            return token

    def grant(
        self,
        user_token: str,
        installation_id: int,
        repo_ids: Iterable[int] | None = None,
        admin_repo_ids: Iterable[int] = (),
        org_role: str | None = "member",
    ) -> None:
        """Give a user access to an installation (replacing any earlier grant).

        `repo_ids` None means every repository, present and future; `admin_repo_ids` get
        admin permission (and are visible). `org_role` is the user's membership of the
        installation's account when it is an organisation: "admin" (an owner, admin on
        every repository), "member", or None (not a member).
        """
        if org_role not in ("admin", "member", None):
            raise ValueError(f"org_role must be 'admin', 'member' or None: {org_role!r}")
        with self._lock:
            user = self._users.get(user_token)
            if user is None:
                raise KeyError("unknown user token")
            installation = self._installation(installation_id)
            admin = frozenset(admin_repo_ids)
            visible = None if repo_ids is None else frozenset(repo_ids) | admin
            for rid in (visible or frozenset()) | admin:
                if rid not in installation.repo_ids:
                    raise ValueError(f"repository {rid} is not in installation {installation_id}")
            user.grants[installation_id] = _Grant(visible, admin, org_role)

    def revoke_grant(self, user_token: str, installation_id: int) -> None:
        """Take a user's access to an installation away."""
        with self._lock:
            user = self._users.get(user_token)
            if user is None:
                raise KeyError("unknown user token")
            user.grants.pop(installation_id, None)

    def issue_token(
        self, installation_id: int, repo_ids: Iterable[int] | None = None
    ) -> dict[str, Any]:
        """Mint an installation token directly, as the API would (no JWT needed)."""
        with self._lock:
            return self._issue(self._installation(installation_id), repo_ids, None)

    def issued_tokens(self) -> list[str]:
        """Every installation token issued so far, for tests that check none of them leaked."""
        with self._lock:
            return list(self._tokens)

    def expire_tokens(self, *, user_tokens: bool = False) -> None:
        """Expire every installation token issued so far (and user tokens if asked)."""
        with self._lock:
            now = time.time()
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, now - 1)
            if user_tokens:
                for user in self._users.values():
                    user.expired = True

    def revoke(self, token: str) -> None:
        """Revoke one installation or user token: it is then 401 everywhere."""
        with self._lock:
            if token in self._tokens:
                self._tokens[token].revoked = True
            elif token in self._users:
                self._users[token].revoked = True
            else:
                raise KeyError("unknown token")

    def fail_next(
        self,
        path_regex: str,
        status: int = 502,
        times: int = 1,
        *,
        method: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `times` requests whose path matches (re.search) with `status`, with a
        `Retry-After` header when `retry_after` is given (a 429 or a secondary rate limit)."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error: {status}")
        with self._lock:
            self._faults.append(
                _Fault(re.compile(path_regex), method, times, status, retry_after=retry_after)
            )

    def rate_limit_next(
        self,
        path_regex: str = ".*",
        times: int = 1,
        *,
        reset_in: float = 60.0,
        method: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests 403 with `x-ratelimit-remaining: 0`."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path_regex), method, times, 403, reset_in))

    def stall_git(self) -> None:
        """From now on, accept git requests (info/refs, upload-pack) and answer none of them
        until `resume_git()`: a git server that stopped answering."""
        self._on_loop(lambda flowing: flowing.clear())

    def resume_git(self) -> None:
        """Answer the held git requests (those whose client is still there) and the next ones."""
        self._on_loop(lambda flowing: flowing.set())

    @property
    def git_requests_held(self) -> int:
        """How many git requests a stall has held so far (answered since, or not)."""
        with self._lock:
            return self._git_requests_held

    def _on_loop(self, action: Callable[[asyncio.Event], None]) -> None:
        """Run `action` on the git gate from the fake's own loop, and wait for it."""
        loop, flowing = self._loop, self._git_flowing
        if loop is None or flowing is None:
            raise RuntimeError("FakeGitHub is not running; use start() or running_fake_github()")

        async def run() -> None:
            action(flowing)

        asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- state helpers (call with the lock held) ---------------------------------------

    def _installation(self, installation_id: int) -> _Installation:
        try:
            return self._installations[int(installation_id)]
        except KeyError:
            raise KeyError(f"unknown installation {installation_id}") from None

    def _own_installation(self, request: web.Request) -> _Installation | None:
        """The installation a request names, if it is this App's (another's is not found)."""
        installation = self._installations.get(int(request.match_info["installation_id"]))
        return installation if installation is not None and installation.app_id is None else None

    def _account(self, login: str) -> _Account | None:
        for installation in self._installations.values():
            if installation.account.login.lower() == login.lower():
                return installation.account
        return None

    def _find_repo(self, owner: str, name: str, *, aliases: bool = True) -> _Repo | None:
        full = f"{owner}/{name}".lower()
        for repo in self._repos.values():
            if repo.full_name.lower() == full:
                return repo
        if aliases and full in self._aliases:
            return self._repos[self._aliases[full]]
        return None

    def _repo_ref(self, repo: int | str) -> _Repo:
        if isinstance(repo, int):
            found = self._repos.get(repo)
        else:
            owner, _, name = repo.partition("/")
            found = self._find_repo(owner, name, aliases=False)
        if found is None:
            raise KeyError(f"unknown repository {repo!r}")
        return found

    def _issue(
        self,
        installation: _Installation,
        repo_ids: Iterable[int] | None,
        permissions: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        scoped = None if repo_ids is None else frozenset(repo_ids)
        lifetime = self.token_lifetime
        seconds = lifetime.total_seconds() if isinstance(lifetime, timedelta) else lifetime
        token = _token("ghs_")
        expires_at = time.time() + seconds
        granted = dict(installation.permissions if permissions is None else permissions)
        self._tokens[token] = _InstallationToken(installation.id, expires_at, scoped, granted)
        body: dict[str, Any] = {
            "token": token,
            "expires_at": _now_iso(expires_at),
            "permissions": granted,
            "repository_selection": (
                installation.repository_selection if scoped is None else "selected"
            ),
        }
        if scoped is not None:
            body["repositories"] = [
                self._repo_json(self._repos[rid]) for rid in installation.repo_ids if rid in scoped
            ]
        return body

    def _token_sees(self, token: _InstallationToken, repo: _Repo) -> bool:
        return repo.installation_id == token.installation_id and (
            token.repo_ids is None or repo.id in token.repo_ids
        )

    def _user_repos(self, user: _User, installation: _Installation) -> list[tuple[_Repo, bool]]:
        """(repository, is admin) for each repository of `installation` the user can see."""
        grant = user.grants.get(installation.id)
        if grant is None:
            return []
        owner = grant.org_role == "admin" and installation.account.type == "Organization"
        out = []
        for rid in installation.repo_ids:
            if owner or grant.repo_ids is None or rid in grant.repo_ids:
                out.append((self._repos[rid], owner or rid in grant.admin_repo_ids))
        return out

    # -- JSON shapes ----------------------------------------------------------------------

    def _account_json(self, account: _Account) -> dict[str, Any]:
        base = self.base_url
        kind = "Organization" if account.type == "Organization" else "User"
        return {
            "login": account.login,
            "id": account.id,
            "node_id": _node_id(kind, account.id),
            "avatar_url": f"{base}/avatars/{account.login}",
            "url": f"{base}/{'orgs' if kind == 'Organization' else 'users'}/{account.login}",
            "html_url": f"{base}/{account.login}",
            "type": kind,
            "site_admin": False,
        }

    def _user_json(self, user: _User) -> dict[str, Any]:
        return self._account_json(_Account(user.login, user.id, "User")) | {"name": None}

    def _repo_json(
        self, repo: _Repo, permissions: Mapping[str, bool] | None = None
    ) -> dict[str, Any]:
        base = self.base_url
        body: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self._account_json(repo.owner),
            "html_url": f"{base}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": f"{base}/repos/{repo.full_name}",
            "clone_url": f"{base}/{repo.full_name}.git",
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "pushed_at": repo.created_at,
            "archived": repo.archived,
            "disabled": False,
            "visibility": "private" if repo.private else "public",
            "default_branch": repo.default_branch,
        }
        if permissions is not None:
            body["permissions"] = dict(permissions)
        return body

    def _installation_json(self, installation: _Installation) -> dict[str, Any]:
        base = self.base_url
        account = installation.account
        return {
            "id": installation.id,
            "account": self._account_json(account),
            "repository_selection": installation.repository_selection,
            "access_tokens_url": f"{base}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{base}/installation/repositories",
            "html_url": f"{base}/organizations/{account.login}/settings/installations/"
            f"{installation.id}",
            "app_id": int(app_id)
            if (app_id := installation.app_id or self.app_id).isdigit()
            else app_id,
            "client_id": self.client_id if installation.app_id is None else None,
            "app_slug": "gitstats-test",
            "target_id": account.id,
            "target_type": account.type,
            "permissions": dict(installation.permissions),
            "events": [],
            "created_at": installation.created_at,
            "updated_at": installation.created_at,
            "single_file_name": None,
            "suspended_at": installation.suspended_at,
            "suspended_by": None,
        }

    # -- authentication -------------------------------------------------------------------

    def _authenticate(self, header: str | None) -> _Auth:
        if not header:
            return _Auth(NO_CREDENTIAL)
        scheme, _, credential = header.strip().partition(" ")
        scheme, credential = scheme.lower(), credential.strip()
        if scheme == "basic":
            try:
                username, _, password = (
                    base64.b64decode(credential, validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                return _Auth(UNKNOWN_TOKEN, scheme)
            if username != GIT_USERNAME:
                return _Auth(UNKNOWN_TOKEN, scheme)
            return self._token_auth(password, scheme, users=False)
        if scheme not in ("bearer", "token"):
            return _Auth(UNKNOWN_TOKEN, scheme)
        if credential.count(".") == 2:
            return self._jwt_auth(credential, scheme)
        return self._token_auth(credential, scheme, users=True)

    def _token_auth(self, credential: str, scheme: str, *, users: bool) -> _Auth:
        with self._lock:
            token = self._tokens.get(credential)
            if token is not None:
                if token.revoked:
                    return _Auth(REVOKED_TOKEN, scheme, installation=token)
                if token.expires_at <= time.time():
                    return _Auth(EXPIRED_TOKEN, scheme, installation=token)
                if token.installation_id not in self._installations:
                    return _Auth(REVOKED_TOKEN, scheme, installation=token)
                return _Auth(INSTALLATION_TOKEN, scheme, installation=token)
            user = self._users.get(credential) if users else None
            if user is not None:
                if user.revoked:
                    return _Auth(REVOKED_TOKEN, scheme, user=user)
                if user.expired:
                    return _Auth(EXPIRED_TOKEN, scheme, user=user)
                return _Auth(USER_TOKEN, scheme, user=user)
        return _Auth(UNKNOWN_TOKEN, scheme)

    def _jwt_auth(self, credential: str, scheme: str) -> _Auth:
        """Check an App JWT as GitHub does; a failure carries GitHub's message."""
        undecodable = _Auth(BAD_JWT, scheme, error="A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                credential,
                self._public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            return undecodable
        iss, iat, exp = claims.get("iss"), claims.get("iat"), claims.get("exp")
        if isinstance(iss, bool) or not isinstance(iss, str | int):
            return undecodable
        if str(iss) not in (self.app_id, self.client_id):
            return undecodable
        now = time.time()
        if isinstance(iat, bool) or not isinstance(iat, int | float) or iat > now + JWT_CLOCK_SKEW:
            return _Auth(
                BAD_JWT,
                scheme,
                error="'Issued at' claim ('iat') must be an Integer representing the time "
                "that the assertion was issued.",
            )
        if isinstance(exp, bool) or not isinstance(exp, int | float) or exp <= now:
            return _Auth(
                BAD_JWT,
                scheme,
                error="'Expiration time' claim ('exp') must be a numeric value representing "
                "the future time at which the assertion expires.",
            )
        if exp - iat > JWT_MAX_LIFETIME:
            return _Auth(
                BAD_JWT, scheme, error="'Expiration time' claim ('exp') is too far in the future."
            )
        return _Auth(APP_JWT, scheme)

    # -- middleware: log, faults, error shapes ---------------------------------------------

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        received_at = time.time()
        auth = self._authenticate(request.headers.get("Authorization"))
        request[_AUTH] = auth
        status = 500
        response: web.StreamResponse | None
        try:
            response = self._injected_fault(request, auth)
            if response is None:
                try:
                    response = await handler(request)
                except _Reply as reply:
                    response = reply.response
                except web.HTTPNotFound:
                    response = _not_found().response
                except web.HTTPMethodNotAllowed:
                    response = _not_found().response
            status = response.status
            json_reply = "application/json" in response.headers.get("Content-Type", "")
            if json_reply and not response.prepared and "x-ratelimit-limit" not in response.headers:
                response.headers.update(self._rate_limit_headers(remaining=4999))
            return response
        finally:
            token = auth.installation
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=request.path,
                        query=request.query_string,
                        status=status,
                        credential=auth.kind,
                        received_at=received_at,
                        scheme=auth.scheme,
                        installation_id=None if token is None else token.installation_id,
                        user=None if auth.user is None else auth.user.login,
                        content_encoding=request.headers.get("Content-Encoding"),
                    )
                )

    def _injected_fault(self, request: web.Request, auth: _Auth) -> web.Response | None:
        with self._lock:
            for fault in self._faults:
                if fault.method is not None and fault.method.upper() != request.method:
                    continue
                if not fault.pattern.search(request.path):
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                break
            else:
                return None
        if fault.rate_limit_reset_in is None:
            phrase = HTTPStatus(fault.status).phrase
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return web.json_response({"message": phrase}, status=fault.status, headers=headers)
        if auth.installation is not None:
            who = f" for installation ID {auth.installation.installation_id}"
        elif auth.user is not None:
            who = f" for user ID {auth.user.id}"
        else:
            who = f" for {request.remote or '127.0.0.1'}"
        body = {
            "message": f"API rate limit exceeded{who}.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            "status": "403",
        }
        reset = time.time() + fault.rate_limit_reset_in
        headers = self._rate_limit_headers(remaining=0, reset=reset)
        return web.json_response(body, status=403, headers=headers)

    @staticmethod
    def _rate_limit_headers(remaining: int, reset: float | None = None) -> dict[str, str]:
        limit = 5000
        return {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(math.ceil(reset if reset is not None else time.time() + 3600)),
            "x-ratelimit-used": str(limit - remaining),
            "x-ratelimit-resource": "core",
        }

    # -- access checks used by the handlers ----------------------------------------------

    def _require_installation_token(self, request: web.Request, message: str) -> _Auth:
        auth: _Auth = request[_AUTH]
        if auth.kind == INSTALLATION_TOKEN:
            return auth
        if auth.kind in (USER_TOKEN, APP_JWT):
            raise _error(403, message)
        if auth.kind == NO_CREDENTIAL:
            raise _error(401, "Requires authentication")
        raise _bad_credentials()

    def _require_user(self, request: web.Request) -> _User:
        auth: _Auth = request[_AUTH]
        if auth.kind == USER_TOKEN and auth.user is not None:
            return auth.user
        if auth.kind in (INSTALLATION_TOKEN, APP_JWT):
            raise _error(403, "Resource not accessible by integration")
        if auth.kind == NO_CREDENTIAL:
            raise _error(401, "Requires authentication")
        raise _bad_credentials()

    def _repo_for_api(self, auth: _Auth, repo: _Repo | None) -> _Repo:
        """`repo` if the caller may read it (a public one: anyone); else 404."""
        if auth.kind in (UNKNOWN_TOKEN, EXPIRED_TOKEN, REVOKED_TOKEN, BAD_JWT):
            raise _bad_credentials()
        if repo is None:
            raise _not_found()
        if not repo.private:
            return repo
        if auth.kind == INSTALLATION_TOKEN and auth.installation is not None:
            if self._token_sees(auth.installation, repo):
                return repo
        elif auth.kind == USER_TOKEN and auth.user is not None:
            installation = self._installations[repo.installation_id]
            if any(r.id == repo.id for r, _ in self._user_repos(auth.user, installation)):
                return repo
        raise _not_found()

    def _paginate(self, request: web.Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """One page of `items` as GitHub cuts it (per_page ≤ 100) and its `Link` header."""

        def number(name: str, default: int) -> int:
            try:
                return int(request.query.get(name, default))
            except ValueError:
                return default

        per_page = min(max(number("per_page", 30), 1), 100)
        page = max(number("page", 1), 1)
        last = max(math.ceil(len(items) / per_page), 1)
        links = []

        def link(target: int, rel: str) -> str:
            query = dict(request.query) | {"per_page": str(per_page), "page": str(target)}
            return f'<{self.base_url}{request.path}?{urlencode(query)}>; rel="{rel}"'

        if page > 1:
            links.append(link(min(page - 1, last), "prev"))
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links.append(link(1, "first"))
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    def _moved(self, request: web.Request, repo: _Repo) -> web.Response:
        url = f"{self.base_url}/repositories/{repo.id}"
        body = {
            "message": "Moved Permanently",
            "url": url,
            "documentation_url": "https://docs.github.com/v3/#http-redirects",
        }
        return web.json_response(body, status=301, headers={"Location": url})

    # -- REST handlers --------------------------------------------------------------------

    async def _access_tokens(self, request: web.Request) -> web.Response:
        auth: _Auth = request[_AUTH]
        if auth.kind != APP_JWT:
            raise _error(401, auth.error or "A JSON web token could not be decoded")
        raw = await request.read()
        try:
            options = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise _error(400, "Problems parsing JSON") from None
        if not isinstance(options, dict):
            raise _error(400, "Problems parsing JSON")
        with self._lock:
            installation = self._own_installation(request)
            if installation is None:
                raise _error(
                    404,
                    "Not Found",
                    "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app",
                )
            if installation.suspended_at is not None:
                raise _error(403, "This installation has been suspended")
            repo_ids: set[int] | None = None
            if "repositories" in options or "repository_ids" in options:
                repo_ids = set()
                for name in options.get("repositories") or []:
                    repo = self._find_repo(installation.account.login, str(name), aliases=False)
                    repo_ids.add(-1 if repo is None else repo.id)
                for rid in options.get("repository_ids") or []:
                    repo_ids.add(rid if isinstance(rid, int) and not isinstance(rid, bool) else -1)
                if not repo_ids <= set(installation.repo_ids):
                    raise _error(
                        422,
                        "There is at least one repository that does not exist or is not "
                        "accessible to the parent installation.",
                    )
            permissions = options.get("permissions")
            if permissions is not None and not _permissions_within(
                permissions, installation.permissions
            ):
                raise _error(422, "The permissions requested are not granted to this installation.")
            body = self._issue(installation, repo_ids, permissions)
        return web.json_response(body, status=201)

    def _require_app_jwt(self, request: web.Request) -> None:
        auth: _Auth = request[_AUTH]
        if auth.kind != APP_JWT:
            raise _error(401, auth.error or "A JSON web token could not be decoded")

    async def _app_installations(self, request: web.Request) -> web.Response:
        self._require_app_jwt(request)
        with self._lock:
            items = [
                self._installation_json(i) for i in self._installations.values() if i.app_id is None
            ]
            page, headers = self._paginate(request, items)
        return web.json_response(page, headers=headers)

    async def _app_installation(self, request: web.Request) -> web.Response:
        self._require_app_jwt(request)
        with self._lock:
            installation = self._own_installation(request)
            if installation is None:
                raise _not_found()
            body = self._installation_json(installation)
        return web.json_response(body)

    async def _installation_repositories(self, request: web.Request) -> web.Response:
        auth = self._require_installation_token(
            request,
            "You must authenticate with an installation access token in order to list "
            "repositories for an installation.",
        )
        assert auth.installation is not None
        with self._lock:
            installation = self._installations[auth.installation.installation_id]
            repos = [
                self._repo_json(self._repos[rid])
                for rid in installation.repo_ids
                if self._token_sees(auth.installation, self._repos[rid])
            ]
            page, headers = self._paginate(request, repos)
            selection = (
                installation.repository_selection
                if auth.installation.repo_ids is None
                else "selected"
            )
        body = {"total_count": len(repos), "repository_selection": selection, "repositories": page}
        return web.json_response(body, headers=headers)

    async def _get_repo(self, request: web.Request) -> web.Response:
        auth: _Auth = request[_AUTH]
        owner, name = request.match_info["owner"], request.match_info["repo"]
        with self._lock:
            repo = self._repo_for_api(auth, self._find_repo(owner, name))
            if repo.full_name.lower() != f"{owner}/{name}".lower():
                return self._moved(request, repo)
            body = self._repo_json(repo)
        return web.json_response(body)

    async def _get_repo_by_id(self, request: web.Request) -> web.Response:
        auth: _Auth = request[_AUTH]
        with self._lock:
            repo = self._repo_for_api(auth, self._repos.get(int(request.match_info["repo_id"])))
            body = self._repo_json(repo)
        return web.json_response(body)

    async def _get_user(self, request: web.Request) -> web.Response:
        user = self._require_user(request)
        with self._lock:
            body = self._user_json(user)
        return web.json_response(body)

    async def _user_installations(self, request: web.Request) -> web.Response:
        user = self._require_user(request)
        with self._lock:
            installations = [
                self._installation_json(installation)
                for installation in self._installations.values()
                if installation.id in user.grants
            ]
            page, headers = self._paginate(request, installations)
        return web.json_response(
            {"total_count": len(installations), "installations": page}, headers=headers
        )

    async def _user_installation_repositories(self, request: web.Request) -> web.Response:
        user = self._require_user(request)
        with self._lock:
            installation = self._installations.get(int(request.match_info["installation_id"]))
            if installation is None or installation.id not in user.grants:
                raise _not_found()
            repos = [
                self._repo_json(repo, ADMIN_PERMISSIONS if admin else READ_PERMISSIONS)
                for repo, admin in self._user_repos(user, installation)
            ]
            page, headers = self._paginate(request, repos)
            selection = installation.repository_selection
        body = {"total_count": len(repos), "repository_selection": selection, "repositories": page}
        return web.json_response(body, headers=headers)

    async def _user_membership(self, request: web.Request) -> web.Response:
        user = self._require_user(request)
        org = request.match_info["org"]
        with self._lock:
            for installation in self._installations.values():
                account = installation.account
                if account.type != "Organization" or account.login.lower() != org.lower():
                    continue
                grant = user.grants.get(installation.id)
                if grant is None or grant.org_role is None:
                    break
                organization = self._account_json(account)
                base = self.base_url
                body = {
                    "url": f"{base}/orgs/{account.login}/memberships/{user.login}",
                    "state": "active",
                    "role": grant.org_role,
                    "organization_url": organization["url"],
                    "organization": {
                        k: organization[k] for k in ("login", "id", "node_id", "url", "avatar_url")
                    }
                    | {"description": None},
                    "user": self._user_json(user),
                }
                return web.json_response(body)
        raise _not_found()

    # -- git over HTTP --------------------------------------------------------------------

    async def _git(self, request: web.Request) -> web.StreamResponse:
        flowing = self._git_flowing
        if flowing is not None and not flowing.is_set():
            await self._hold(request, flowing)
        auth: _Auth = request[_AUTH]
        suffix = request.match_info["suffix"]
        owner, repo_segment = request.match_info["owner"], request.match_info["repo"]
        name = repo_segment.removesuffix(".git")
        if (suffix == "info/refs") != (request.method in ("GET", "HEAD")):
            raise _not_found()
        if auth.kind != INSTALLATION_TOKEN or auth.scheme != "basic":
            # What makes git (and libgit2) ask for credentials, and again after a bad one.
            body = "" if auth.kind == NO_CREDENTIAL else "Invalid username or token.\n"
            return web.Response(
                status=401,
                text=body,
                headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
            )
        assert auth.installation is not None
        with self._lock:
            repo = self._find_repo(owner, name)
            if repo is None or not self._token_sees(auth.installation, repo):
                # GitHub hides a repository the credentials cannot read: 404, not 401.
                return web.Response(status=404, text="Repository not found.\n")
            if repo.full_name.lower() != f"{owner}/{name}".lower():
                target = f"{self.base_url}/{repo.full_name}.git/{suffix}"
                if request.query_string:
                    target += f"?{request.query_string}"
                return web.Response(status=301, headers={"Location": target})
            full_name, path = repo.full_name, repo.path
        service = request.query.get("service") if suffix == "info/refs" else suffix
        if service == "git-receive-pack":
            return web.Response(
                status=403,
                text=f"Permission to {full_name}.git denied to gitstats-test[bot].\n",
            )
        if suffix == "info/refs" and service != "git-upload-pack":
            # GitHub speaks only the smart protocol.
            return web.Response(status=403, text="Please upgrade your git client.\n")
        return await self._http_backend(request, path, suffix)

    async def _hold(self, request: web.Request, flowing: asyncio.Event) -> None:
        """Keep a git request unanswered until resume_git(); if its client has gone by then,
        end it with no answer (499, as nginx logs a client that closed the connection)."""
        with self._lock:
            self._git_requests_held += 1
        await flowing.wait()
        if request.transport is None or request.transport.is_closing():
            raise _Reply(web.Response(status=499))

    def _cgi_env(self, request: web.Request, gitdir: Path, suffix: str) -> dict[str, str]:
        config = {
            "safe.directory": "*",
            "http.uploadpack": "true",
            "http.receivepack": "false",
            "http.getanyfile": "false",
            "uploadpack.allowFilter": "true",
            "uploadpack.allowReachableSHA1InWant": "true",
        }
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self._git_home or "/nonexistent",
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_SYSTEM": "/dev/null",
            "GIT_CONFIG_COUNT": str(len(config)),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_PROJECT_ROOT": str(gitdir.parent),
            "PATH_INFO": f"/{gitdir.name}/{suffix}",
            "QUERY_STRING": request.query_string,
            "REQUEST_METHOD": request.method,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_USER": GIT_USERNAME,
            "REMOTE_ADDR": request.remote or "127.0.0.1",
            "AUTH_TYPE": "Basic",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self._port),
            "SERVER_SOFTWARE": "fake-github",
            "SCRIPT_NAME": "",
        }
        for i, (key, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        if "Content-Length" in request.headers:
            env["CONTENT_LENGTH"] = request.headers["Content-Length"]
        for header, value in request.headers.items():
            upper = header.upper().replace("-", "_")
            if upper not in ("AUTHORIZATION", "CONTENT_TYPE", "CONTENT_LENGTH", "PROXY"):
                # Content-Encoding arrives as HTTP_CONTENT_ENCODING: http-backend gunzips.
                env[f"HTTP_{upper}"] = value
        if "Git-Protocol" in request.headers:
            env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
        return env

    async def _http_backend(
        self, request: web.Request, path: Path, suffix: str
    ) -> web.StreamResponse:
        """Run `git http-backend` as a CGI: stream the body in and its answer out."""
        gitdir = path / ".git" if (path / ".git").is_dir() else path
        if not gitdir.is_dir():
            return web.Response(status=404, text="Repository not found.\n")
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._cgi_env(request, gitdir, suffix),
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr

        async def feed() -> None:
            try:
                async for chunk in request.content.iter_chunked(65536):
                    stdin.write(chunk)
                    await stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the backend stopped reading: its answer says why
            finally:
                stdin.close()

        feeding = asyncio.create_task(feed())
        errors = asyncio.create_task(stderr.read())
        try:
            status, reason, headers = 200, "OK", []
            while True:
                line = await stdout.readline()
                if not line:
                    raise _error(500, "git http-backend ended before its headers")
                text = line.decode("latin-1").rstrip("\r\n")
                if not text:
                    break
                key, _, value = text.partition(":")
                if key.strip().lower() == "status":
                    code, _, phrase = value.strip().partition(" ")
                    status, reason = int(code), phrase or HTTPStatus(int(code)).phrase
                else:
                    headers.append((key.strip(), value.strip()))
            response = web.StreamResponse(status=status, reason=reason)
            for key, value in headers:
                response.headers.add(key, value)
            await response.prepare(request)
            try:
                while chunk := await stdout.read(65536):
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                # The client hung up (libgit2 may, once it has read the pack, before the last
                # chunk's end): nobody reads what is left.
                return response
            await feeding
            exit_code = await proc.wait()
            stderr_text = (await errors).decode("utf-8", "replace").strip()
            if exit_code != 0 or stderr_text:
                log.debug("git http-backend exited %s: %s", exit_code, stderr_text)
            return response
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            for task in (feeding, errors):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


# -- running it ---------------------------------------------------------------------------


@contextlib.contextmanager
def running_fake_github(
    app_id: str = "123456",
    *,
    client_id: str | None = None,
    token_lifetime: float | timedelta = 3600.0,
) -> Iterator[FakeGitHub]:
    """A started FakeGitHub, stopped on exit."""
    fake = FakeGitHub(app_id, client_id=client_id, token_lifetime=token_lifetime)
    with fake:
        yield fake


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """A running fake GitHub (App id "123456") with no installations yet."""
    with running_fake_github() as fake:
        yield fake
