"""The read API's limits and its per-application state (caches and lookups)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from contract.cache import BoundedCache
from contract.settings import Settings
from service.api.auth import PrincipalResolver
from service.api.directory import CodebaseDirectory, OrgDirectory
from service.api.reader import DocumentReader
from service.keys import HTTP, SETTINGS, STORAGE

MiB = 1024 * 1024
DEFAULT_MAX_DOCUMENT_BYTES = 64 * MiB


@dataclass(frozen=True)
class ApiLimits:
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    document_cache_bytes: int = 128 * MiB
    rendered_cache_bytes: int = 32 * MiB
    # A document read or checked this recently is served without asking storage again.
    document_fresh_for: float = 1.0
    principal_ttl: float = 60.0
    invalid_token_ttl: float = 10.0
    principal_cache_entries: int = 10_000
    registry_ttl: float = 5.0
    registry_cache_entries: int = 10_000
    org_directory_refresh: float = 10.0
    github_timeout: float = 10.0
    pending_retry_after: int = 5
    failed_retry_after: int = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiLimits:
        # API_MAX_DOCUMENT_BYTES, once Settings has it; the contract's default until then.
        cap = getattr(settings, "api_max_document_bytes", DEFAULT_MAX_DOCUMENT_BYTES)
        return cls(max_document_bytes=int(cap))


@dataclass
class ApiState:
    limits: ApiLimits
    principals: PrincipalResolver
    reader: DocumentReader
    codebases: CodebaseDirectory
    orgs: OrgDirectory
    rendered: BoundedCache[str, bytes]  # response ETag → body of a page or computed answer

    async def close(self) -> None:
        for part in (self.principals, self.reader, self.codebases, self.orgs):
            await part.close()


@dataclass(frozen=True)
class OpenApiDocument:
    body: bytes
    etag: str


API_LIMITS = web.AppKey("api_limits", ApiLimits)
API = web.AppKey("api", ApiState)
OPENAPI = web.AppKey("openapi", OpenApiDocument)


def build_state(app: web.Application, clock: Callable[[], float] = time.monotonic) -> ApiState:
    """The API's state over the app's shared storage and HTTP session."""
    limits, settings, storage = app[API_LIMITS], app[SETTINGS], app[STORAGE]
    return ApiState(
        limits=limits,
        principals=PrincipalResolver(
            app[HTTP],
            settings.github_api_url,
            settings.admin_tokens,
            app_id=settings.github_app_id,
            ttl=limits.principal_ttl,
            invalid_ttl=limits.invalid_token_ttl,
            max_entries=limits.principal_cache_entries,
            timeout=limits.github_timeout,
            clock=clock,
        ),
        reader=DocumentReader(
            storage,
            max_document_bytes=limits.max_document_bytes,
            cache_bytes=limits.document_cache_bytes,
            fresh_for=limits.document_fresh_for,
            clock=clock,
        ),
        codebases=CodebaseDirectory(
            storage,
            ttl=limits.registry_ttl,
            max_entries=limits.registry_cache_entries,
            clock=clock,
        ),
        orgs=OrgDirectory(storage, refresh_interval=limits.org_directory_refresh, clock=clock),
        rendered=BoundedCache(max_entries=100_000, max_cost=limits.rendered_cache_bytes),
    )


async def api_state(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: runs after the app's storage and HTTP session exist."""
    app[API] = build_state(app)
    yield
    await app[API].close()
