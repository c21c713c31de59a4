"""Who is asking: an admin token from ADMIN_TOKENS, or a GitHub user token resolved through
GitHub into the orgs and repositories the user administers (cached briefly)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import gidgethub
from gidgethub.aiohttp import GitHubAPI
from pydantic import SecretStr

from contract.cache import MISSING, BoundedCache
from service.api.cache import SingleFlight
from service.api.errors import GitHubUnavailable, Unauthorized

log = logging.getLogger(__name__)

USER_AGENT = "gitstats"
# RFC 6750's b64token, and no longer than any token GitHub issues.
_BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]{1,512}=*)", re.IGNORECASE)
# Installations of one user resolved at once.
_PARALLEL_INSTALLATIONS = 8


@dataclass(frozen=True)
class Principal:
    """What a caller may see. `orgs` maps lower-cased login → id of every org the user reaches
    through an installation of the App; `orgs_admin` are those whose every codebase they see,
    `repo_admin` the codebases (repository ids) they administer."""

    name: str
    sees_everything: bool = False
    orgs: Mapping[str, int] = field(default_factory=dict)
    orgs_admin: frozenset[int] = frozenset()
    repo_admin: frozenset[int] = frozenset()

    def sees_whole_org(self, org_id: int) -> bool:
        return self.sees_everything or org_id in self.orgs_admin

    def reaches_org(self, org_id: int) -> bool:
        return self.sees_everything or org_id in self.orgs.values()


ADMIN = Principal(name="admin", sees_everything=True)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer TOKEN` header; Unauthorized otherwise."""
    if not authorization:
        raise Unauthorized("an Authorization: Bearer token is required", token_given=False)
    match = _BEARER.fullmatch(authorization.strip())
    if match is None:
        raise Unauthorized("the Authorization header is not a Bearer token", token_given=True)
    return match.group(1)


def token_fingerprint(token: str) -> str:
    """The cache key of a token: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class _InstallationAccess:
    org_login: str
    org_id: int
    org_admin: bool
    admin_repos: frozenset[int]


class PrincipalResolver:
    """Tokens → principals. User tokens are resolved with GET /user, /user/installations and,
    per installation of this App (`app_id`: its id or client id; another App's installations
    grant nothing, and without it no user token does), its repositories (`permissions.admin`) and
    the user's org membership. Answers are cached `ttl` seconds; a token GitHub refused is
    remembered `invalid_ttl` seconds in a cache of its own, so that refused tokens, however many,
    never push a valid one out."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        admin_tokens: Iterable[SecretStr],
        *,
        app_id: str | None = None,
        ttl: float = 60.0,
        invalid_ttl: float = 10.0,
        max_entries: int = 10_000,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.app_id = app_id
        self._admin_tokens = [t.get_secret_value().encode() for t in admin_tokens]
        self._cache: BoundedCache[str, Principal] = BoundedCache(
            max_entries=max_entries, ttl=ttl, clock=clock
        )
        self._refused: BoundedCache[str, bool] = BoundedCache(
            max_entries=max_entries, ttl=invalid_ttl, clock=clock
        )
        self._resolving: SingleFlight[str, Principal | None] = SingleFlight()

    async def close(self) -> None:
        await self._resolving.close()

    def is_admin_token(self, token: str) -> bool:
        given = token.encode()
        # Compare with every admin token, so the time taken does not tell which one matched.
        matched = False
        for admin in self._admin_tokens:
            matched |= hmac.compare_digest(given, admin)
        return matched

    async def resolve(self, token: str) -> Principal:
        """The token's principal; Unauthorized if GitHub does not accept it."""
        if self.is_admin_token(token):
            return ADMIN
        key = token_fingerprint(token)
        cached = self._cache.get(key)
        if cached is not MISSING:
            return cached
        if self._refused.get(key) is not MISSING:
            raise Unauthorized("the token was not accepted", token_given=True)
        principal = await self._resolving.run(key, lambda: self._resolve_and_cache(key, token))
        if principal is None:
            raise Unauthorized("the token was not accepted", token_given=True)
        return principal

    async def _resolve_and_cache(self, key: str, token: str) -> Principal | None:
        try:
            async with asyncio.timeout(self.timeout):
                principal = await self._from_github(token)
        except gidgethub.RateLimitExceeded as exc:
            log.warning("GitHub rate limit hit while resolving a user token")
            raise GitHubUnavailable("GitHub is rate limiting; try again later") from exc
        except gidgethub.BadRequest as exc:
            if exc.status_code not in (401, 403):
                raise self._unavailable(exc) from exc
            # Refused (bad, expired or revoked, or not a user token): remembered briefly, so a
            # client retrying a dead token does not cost a GitHub call every time.
            self._refused.put(key, True)
            return None
        except (gidgethub.HTTPException, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._unavailable(exc) from exc
        self._cache.put(key, principal)
        return principal

    @staticmethod
    def _unavailable(exc: Exception) -> GitHubUnavailable:
        log.warning("GitHub unavailable while resolving a user token: %s", type(exc).__name__)
        return GitHubUnavailable("GitHub cannot be reached to check the token; try again later")

    async def _from_github(self, token: str) -> Principal:
        gh = GitHubAPI(self.session, USER_AGENT, oauth_token=token, base_url=self.api_url)
        user = await gh.getitem("/user")
        installations = [
            item
            async for item in gh.getiter(
                "/user/installations?per_page=100", iterable_key="installations"
            )
        ]
        limit = asyncio.Semaphore(_PARALLEL_INSTALLATIONS)

        async def access(installation: Any) -> _InstallationAccess | None:
            async with limit:
                return await self._installation_access(gh, installation)

        ours = [i for i in installations if self._of_this_app(i)]
        found = await asyncio.gather(*(access(i) for i in ours))
        accesses = [a for a in found if a is not None]
        principal = Principal(
            name=_text(user, "login"),
            orgs={a.org_login.lower(): a.org_id for a in accesses},
            orgs_admin=frozenset(a.org_id for a in accesses if a.org_admin),
            repo_admin=frozenset(rid for a in accesses for rid in a.admin_repos),
        )
        log.info(
            "resolved GitHub user %s: admin of %d org(s) and %d repository(ies)",
            principal.name,
            len(principal.orgs_admin),
            len(principal.repo_admin),
        )
        return principal

    def _of_this_app(self, installation: Any) -> bool:
        if self.app_id is None or not isinstance(installation, dict):
            return False
        return self.app_id in (str(installation.get("app_id")), installation.get("client_id"))

    async def _installation_access(
        self, gh: GitHubAPI, installation: Any
    ) -> _InstallationAccess | None:
        installation_id = _number(installation, "id")
        account = installation.get("account") if isinstance(installation, dict) else None
        login, org_id = _text(account, "login"), _number(account, "id")
        try:
            repos = [
                repo
                async for repo in gh.getiter(
                    f"/user/installations/{installation_id}/repositories?per_page=100",
                    iterable_key="repositories",
                )
            ]
        except gidgethub.BadRequest as exc:
            if exc.status_code in (403, 404) and not isinstance(exc, gidgethub.RateLimitExceeded):
                return None  # access to this installation went away meanwhile
            raise
        admin_repos = frozenset(
            _number(repo, "id")
            for repo in repos
            if isinstance(repo, dict) and (repo.get("permissions") or {}).get("admin") is True
        )
        org_admin = False
        if _text(account, "type") == "Organization":
            try:
                membership = await gh.getitem("/user/memberships/orgs/{org}", {"org": login})
            except gidgethub.BadRequest as exc:
                # 404: not a member. 403: the membership is hidden from this App (SSO, scope).
                if exc.status_code not in (403, 404) or isinstance(
                    exc, gidgethub.RateLimitExceeded
                ):
                    raise
            else:
                org_admin = (
                    isinstance(membership, dict)
                    and membership.get("state") == "active"
                    and membership.get("role") == "admin"
                )
        return _InstallationAccess(login, org_id, org_admin, admin_repos)


def _text(item: Any, name: str) -> str:
    value = item.get(name) if isinstance(item, dict) else None
    if not isinstance(value, str):
        raise ValueError(f"GitHub answered without a {name!r}")
    return value


def _number(item: Any, name: str) -> int:
    value = item.get(name) if isinstance(item, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"GitHub answered without a numeric {name!r}")
    return value
