"""The worker's view of GitHub as the App: installation tokens and the few REST calls it makes.

One shared aiohttp session carries every request. Installation tokens are cached until shortly
before they expire and replaced on demand, also in the middle of a git fetch: libgit2 asks
`GitCredentials` again after the server refused a token, and it answers with a fresh one.

A token is handed to git only through the credentials callback: it never goes into a URL, a git
config, a log line, an exception or a document.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import gidgethub
import gidgethub.apps
import pygit2
from gidgethub.aiohttp import GitHubAPI
from pydantic import ValidationError

from contract.jobs import Account, RepositoryRef
from contract.settings import Settings
from worker.engine.errors import PermanentSourceError, SourceError

log = logging.getLogger(__name__)

USER_AGENT = "gitstats"
GIT_USERNAME = "x-access-token"
# A token this close to its expiry is replaced before use, so that a fetch started with it
# rarely outlives it.
REFRESH_MARGIN = timedelta(minutes=5)
# How often libgit2 may ask for credentials during one operation. It asks again only after the
# server refused the last answer; without a bound it would replay the same refusal many times.
MAX_CREDENTIAL_ASKS = 4
# How long the git thread waits for the event loop to mint a token.
TOKEN_WAIT_S = 60.0

_T = TypeVar("_T")


class GitHubUnavailable(SourceError):
    """GitHub failed in a way that may pass: 5xx, rate limit, network. Retry later, and not
    before `retry_after` seconds when GitHub said how long to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GitHubAccessLost(PermanentSourceError):
    """The installation or repository is gone, or the App's access to it was revoked."""


class UntrustedGitHost(PermanentSourceError):
    """A URL outside GitHub's own git host: no token is handed to it, and git never fetches it."""


class GitHubAppConfigError(Exception):
    """The App's id or private key is missing or unreadable."""


@dataclass(frozen=True)
class InstallationToken:
    token: str = field(repr=False)
    expires_at: datetime


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, normalised; None for anything else (a path,
    file://, ssh, a URL carrying credentials)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + ("" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}")


def git_host_of(api_url: str) -> str:
    """GitHub's own git host for its REST API at `api_url`: the API's scheme and host, except
    that api.github.com means github.com (so Enterprise's `https://HOST/api/v3` is `https://HOST`,
    and a test's fake GitHub at `http://127.0.0.1:PORT` serves git at that same address)."""
    origin = origin_of(api_url)
    if origin is None:
        raise GitHubAppConfigError("GITHUB_API_URL must be an http(s) URL without credentials")
    return "https://github.com" if origin == "https://api.github.com" else origin


def require_git_host(url: str, git_host: str) -> str:
    """`url` if it is on `git_host`, else UntrustedGitHost (the URL is not echoed in full: it may
    be what an attacker chose)."""
    if origin_of(url) != git_host:
        where = origin_of(url) or "a URL that is not http(s)"
        raise UntrustedGitHost(f"refusing {where}: git talks only to GitHub's git host {git_host}")
    return url


class GitHubRepository(RepositoryRef):
    """A repository as GitHub's API answers the installation, its clone URL on GitHub's git host
    and its owner (the installation's account: the codebase's org)."""

    clone_url: str
    owner: Account


@dataclass(frozen=True)
class Installation:
    """An installation of the App as GitHub's API describes it."""

    id: int
    account: Account
    suspended: bool


def _installation(data: dict[str, Any]) -> Installation:
    try:
        account = Account(id=data["account"]["id"], login=data["account"]["login"])
        return Installation(int(data["id"]), account, data.get("suspended_at") is not None)
    except (KeyError, TypeError, ValueError, ValidationError):
        raise GitHubUnavailable("GitHub answered an installation without id or account") from None


def _repository(data: dict[str, Any], git_host: str) -> GitHubRepository:
    try:
        repo = GitHubRepository(
            id=data["id"],
            full_name=data["full_name"],
            clone_url=data["clone_url"],
            default_branch=data.get("default_branch"),
            archived=bool(data.get("archived", False)),
            owner=Account(id=data["owner"]["id"], login=data["owner"]["login"]),
        )
    except (KeyError, TypeError, ValidationError):
        raise GitHubUnavailable(
            "GitHub answered a repository without its id, owner or URL"
        ) from None
    require_git_host(repo.clone_url, git_host)
    return repo


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rate_limited(exc: gidgethub.HTTPException) -> bool:
    if isinstance(exc, gidgethub.RateLimitExceeded) or exc.status_code == 429:
        return True
    # A secondary rate limit is a 403 with Retry-After (or a message saying so).
    return exc.status_code == HTTPStatus.FORBIDDEN and (
        "retry-after" in {k.lower() for k in exc.headers} or "rate limit" in str(exc).lower()
    )


def _retry_after(exc: gidgethub.HTTPException) -> float | None:
    """How long GitHub asked us to wait: Retry-After, or until its rate limit resets."""
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    try:
        if "retry-after" in headers:
            return max(float(headers["retry-after"]), 0.0)
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            return max(float(headers["x-ratelimit-reset"]) - time.time(), 0.0)
    except ValueError:
        return None
    return None


def map_github_error(exc: BaseException, what: str) -> SourceError:
    """Our error for a failed call: permanent when retrying cannot help, else transient.

    Only the status and GitHub's short message go into the text: never a header or a token.
    """
    if isinstance(exc, gidgethub.HTTPException):
        status = int(exc.status_code)
        detail = f"{what}: HTTP {status} {' '.join(str(exc).split())[:200]}".rstrip()
        if _rate_limited(exc):
            return GitHubUnavailable(f"{detail} (rate limited)", _retry_after(exc))
        if 400 <= status < 500 and status not in (408, 409):
            return GitHubAccessLost(detail)
        return GitHubUnavailable(detail, _retry_after(exc))
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return GitHubUnavailable(f"{what}: {type(exc).__name__} talking to GitHub")
    return GitHubUnavailable(f"{what}: {type(exc).__name__}")


def _is_unauthorized(exc: BaseException) -> bool:
    return isinstance(exc, gidgethub.HTTPException) and exc.status_code == HTTPStatus.UNAUTHORIZED


def load_private_key(settings: Settings) -> str:
    """The App's PEM private key from GITHUB_PRIVATE_KEY or the file at GITHUB_PRIVATE_KEY_PATH."""
    if settings.github_private_key is not None:
        pem = settings.github_private_key.get_secret_value()
        # Platforms that take one-line environment values often store the PEM with literal \n.
        return pem.replace("\\n", "\n") if "\n" not in pem.strip() else pem
    if settings.github_private_key_path is not None:
        path = settings.github_private_key_path.expanduser()
        try:
            return path.read_text()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise GitHubAppConfigError(
                f"GITHUB_PRIVATE_KEY_PATH {path}: cannot read the key: {reason}"
            ) from None
    raise GitHubAppConfigError("set GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH")


class InstallationTokens:
    """Installation tokens, one per installation, cached until `margin` before they expire."""

    def __init__(
        self,
        mint: Callable[[int], Awaitable[InstallationToken]],
        *,
        git_host: str,
        margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self._mint = mint
        self.git_host = git_host
        self._margin = margin
        self._cache: dict[int, InstallationToken] = {}
        # One mint at a time per installation: jobs that need a token at once share it.
        self._locks: dict[int, asyncio.Lock] = {}

    def _fresh(self, installation_id: int) -> str | None:
        cached = self._cache.get(installation_id)
        if cached is not None and cached.expires_at - self._margin > datetime.now(UTC):
            return cached.token
        return None

    async def get(self, installation_id: int) -> str:
        """A token valid for at least `margin` more (as far as GitHub told us)."""
        if (token := self._fresh(installation_id)) is not None:
            return token
        async with self._locks.setdefault(installation_id, asyncio.Lock()):
            if (token := self._fresh(installation_id)) is not None:
                return token
            minted = await self._mint(installation_id)
            self._cache[installation_id] = minted
            return minted.token

    async def replace(self, installation_id: int, rejected: str) -> str:
        """A new token after GitHub refused `rejected` (expired or revoked before its time)."""
        cached = self._cache.get(installation_id)
        if cached is not None and cached.token == rejected:
            del self._cache[installation_id]
        return await self.get(installation_id)

    def forget(self, installation_id: int) -> None:
        self._cache.pop(installation_id, None)

    def git_credentials(
        self, installation_id: int, token: str, loop: asyncio.AbstractEventLoop | None = None
    ) -> GitCredentials:
        """Callbacks for one git operation, starting from `token` (get it just before)."""
        return GitCredentials(
            self, installation_id, token, loop or asyncio.get_running_loop(), self.git_host
        )


class GitCredentials(pygit2.RemoteCallbacks):
    """Answers libgit2's credential requests with `x-access-token:<installation token>`, and only
    for URLs on GitHub's git host: any other URL (a redirect elsewhere, a payload's URL) is refused
    before a token is handed out.

    libgit2 calls this from the thread running the fetch. The first answer is the token taken
    before the fetch; libgit2 asks again only when the server refused the last answer (the token
    expired or was revoked meanwhile), and then a new token is minted on the event loop.
    """

    def __init__(
        self,
        tokens: InstallationTokens,
        installation_id: int,
        token: str,
        loop: asyncio.AbstractEventLoop,
        git_host: str,
    ) -> None:
        super().__init__()
        self._git_host = git_host
        self._tokens = tokens
        self._installation_id = installation_id
        self._token = token
        self._loop = loop
        self.asks = 0

    def __repr__(self) -> str:
        return f"GitCredentials(installation={self._installation_id}, asks={self.asks})"

    def credentials(
        self,
        url: str,
        username_from_url: str | None,
        allowed_types: pygit2.enums.CredentialType,
    ) -> pygit2.UserPass:
        require_git_host(url, self._git_host)
        self.asks += 1
        if self.asks > MAX_CREDENTIAL_ASKS:
            raise GitHubAccessLost(
                f"git refused {MAX_CREDENTIAL_ASKS - 1} fresh installation tokens for {url}"
            )
        if self.asks > 1:
            self._token = self._on_loop(self._tokens.replace(self._installation_id, self._token))
        return pygit2.UserPass(GIT_USERNAME, self._token)

    def _on_loop(self, coro: Coroutine[Any, Any, str]) -> str:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("GitCredentials must be used from a thread, not the event loop")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=TOKEN_WAIT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise GitHubUnavailable(
                f"no installation token within {TOKEN_WAIT_S:.0f}s for installation "
                f"{self._installation_id}"
            ) from None


class GitHubApp:
    """The App's REST calls, through one shared aiohttp session and the token cache."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        app_id: str | None,
        private_key: str | None,
        api_url: str = "https://api.github.com",
        refresh_margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self._app_id = app_id
        self._private_key = private_key
        self._gh = GitHubAPI(session, USER_AGENT, base_url=api_url.rstrip("/"))
        self.git_host = git_host_of(api_url)
        self.tokens = InstallationTokens(self._mint, git_host=self.git_host, margin=refresh_margin)

    def __repr__(self) -> str:
        return f"GitHubApp(app_id={self._app_id!r}, api_url={self._gh.base_url!r})"

    @classmethod
    def from_settings(cls, settings: Settings, session: aiohttp.ClientSession) -> GitHubApp:
        # Without an App the worker still starts (a local demo has no GitHub): jobs that need
        # GitHub then fail with a clear reason. A half-configured App fails here, at start.
        app_id = settings.github_app_id or None
        return cls(
            session,
            app_id=app_id,
            private_key=load_private_key(settings) if app_id else None,
            api_url=settings.github_api_url,
        )

    async def _mint(self, installation_id: int) -> InstallationToken:
        what = f"POST /app/installations/{int(installation_id)}/access_tokens"
        jwt = self._jwt()
        try:
            body = await self._gh.post(what.removeprefix("POST "), data=b"", jwt=jwt)
            token = InstallationToken(body["token"], _parse_time(body["expires_at"]))
        except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise map_github_error(exc, what) from None
        except (KeyError, TypeError, ValueError):
            raise GitHubUnavailable(f"{what}: unexpected answer") from None
        log.info("new token for installation %s, expires %s", installation_id, token.expires_at)
        return token

    def _jwt(self) -> str:
        if self._app_id is None or self._private_key is None:
            raise GitHubAccessLost(
                "the GitHub App is not configured: set GITHUB_APP_ID and GITHUB_PRIVATE_KEY"
            )
        return gidgethub.apps.get_jwt(app_id=self._app_id, private_key=self._private_key)

    async def list_installations(self) -> list[Installation]:
        """Every installation of the App (all pages), as GitHub says now."""
        what = "GET /app/installations"
        try:
            pages = self._gh.getiter("/app/installations?per_page=100", jwt=self._jwt())
            return [_installation(item) async for item in pages]
        except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise map_github_error(exc, what) from None

    async def get_installation(self, installation_id: int) -> Installation:
        """Installation `installation_id` as GitHub says now; GitHubAccessLost if it is gone."""
        what = f"GET /app/installations/{int(installation_id)}"
        try:
            data = await self._gh.getitem(what.removeprefix("GET "), jwt=self._jwt())
        except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise map_github_error(exc, what) from None
        return _installation(data)

    async def _as_installation(
        self, installation_id: int, what: str, call: Callable[[str], Awaitable[_T]]
    ) -> _T:
        """`call(token)`, once more with a new token if GitHub refused the cached one."""
        token = await self.tokens.get(installation_id)
        try:
            try:
                return await call(token)
            except gidgethub.HTTPException as exc:
                if not _is_unauthorized(exc):
                    raise
                token = await self.tokens.replace(installation_id, token)
                return await call(token)
        except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise map_github_error(exc, what) from None

    async def list_installation_repositories(self, installation_id: int) -> list[GitHubRepository]:
        """Every repository the installation can see (all pages)."""

        async def call(token: str) -> list[GitHubRepository]:
            pages = self._gh.getiter(
                "/installation/repositories?per_page=100",
                oauth_token=token,
                iterable_key="repositories",
            )
            return [_repository(item, self.git_host) async for item in pages]

        return await self._as_installation(installation_id, "GET /installation/repositories", call)

    async def get_repository(self, installation_id: int, repository_id: int) -> GitHubRepository:
        """Repository `repository_id` as the installation sees it (GitHubAccessLost if it cannot):
        what GitHub says, never what a webhook said, with a clone URL on GitHub's git host."""
        path = f"/repositories/{int(repository_id)}"

        async def call(token: str) -> GitHubRepository:
            return _repository(await self._gh.getitem(path, oauth_token=token), self.git_host)

        repo = await self._as_installation(installation_id, f"GET {path}", call)
        if repo.id != repository_id:
            raise GitHubAccessLost(f"GET {path}: GitHub answered for another repository")
        return repo
