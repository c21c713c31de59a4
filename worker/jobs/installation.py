"""Registering an installation's repositories, refreshing one, suspending an installation."""

from __future__ import annotations

import logging
from typing import Any

from contract import registry
from contract.documents import RunState
from contract.jobs import InstallationRequest, RegisterRequest, SyncRequest
from contract.redis_keys import purged_key
from contract.registry import CodebaseEntry
from contract.storage import Storage
from worker.engine import pipeline
from worker.jobs.context import Services, enqueue_sync_of, lifecycle_step, now, write_status
from worker.jobs.github_app import GitHubAccessLost, GitHubRepository
from worker.jobs.org_files import (
    merge_codebase_into_org,
    merge_codebases_into_org,
    pending_contribution,
)

log = logging.getLogger(__name__)


async def register_entry(
    storage: Storage, installation_id: int, repo: GitHubRepository, existing: CodebaseEntry | None
) -> CodebaseEntry:
    """Write (or update) a codebase's registry entry from what GitHub said of `repo` to
    installation `installation_id`."""
    at = now()
    entry = CodebaseEntry(
        codebase_id=repo.id,
        org_id=repo.owner.id,
        org_login=repo.owner.login,
        installation_id=installation_id,
        full_name=repo.full_name,
        clone_url=repo.clone_url,
        default_branch=repo.default_branch,
        archived=repo.archived,
        suspended=existing.suspended if existing else False,
        registered_at=existing.registered_at if existing else at,
        updated_at=at,
    )
    if existing is None or entry.model_copy(update={"updated_at": existing.updated_at}) != existing:
        await registry.write_entry(storage, entry)
    return entry


async def _repositories(services: Services, req: RegisterRequest) -> list[GitHubRepository]:
    """What GitHub says of the repositories a registration names (all the installation sees
    when it names none); a named repository the installation cannot see is left out."""
    github = services.github
    if req.repositories is None:
        return await github.list_installation_repositories(req.installation_id)
    found = []
    for named in req.repositories:
        try:
            found.append(await github.get_repository(req.installation_id, named.id))
        except GitHubAccessLost as exc:
            log.warning("not registering repository %s: %s", named.id, exc)
    return found


async def register_repositories(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Register an installation's repositories (all of them when none are named) and backfill."""
    req = RegisterRequest.model_validate(request)
    services = Services.of(ctx)

    async def work() -> dict[str, Any]:
        async with services.installation_lock(req.installation_id):
            entries = await _register(services, req)
        for entry in entries:
            await enqueue_sync_of(services.redis, entry, "backfill")
        return {"installation_id": req.installation_id, "registered": len(entries)}

    return await lifecycle_step(services, ctx, {"installation_id": req.installation_id}, work)


async def _register(services: Services, req: RegisterRequest) -> list[CodebaseEntry]:
    storage = services.storage
    entries = []
    for repo in await _repositories(services, req):
        existing = await registry.read_entry(storage, repo.id)
        await services.redis.delete(purged_key(repo.id))
        entries.append(await register_entry(storage, req.installation_id, repo, existing))
    for entry in entries:
        if await pipeline.read_status(storage, entry.codebase_id) is None:
            await write_status(storage, entry.codebase_id, RunState.QUEUED)
    for org_id, org_login in {(e.org_id, e.org_login) for e in entries}:
        await merge_codebases_into_org(
            storage,
            org_id,
            org_login,
            {e.codebase_id: pending_contribution(e) for e in entries if e.org_id == org_id},
            keep_existing=True,
        )
    return entries


async def refresh_codebase(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Re-read a renamed, transferred or edited repository from GitHub, update its entry and
    sync it. The webhook only says which codebase to look at: nothing of its payload is kept."""
    req = SyncRequest.model_validate(request)
    services = Services.of(ctx)
    storage, cid = services.storage, req.codebase_id

    async def work() -> dict[str, Any]:
        # Under the codebase's lock: a sync or a purge in progress is never changed under it.
        async with services.codebase_lock(cid):
            if await services.redis.exists(purged_key(cid)):
                return {"codebase_id": cid, "skipped": "purged"}
            repo = await services.github.get_repository(req.installation_id, cid)
            existing = await registry.read_entry(storage, cid)
            if existing is not None and existing.org_id != repo.owner.id:
                # Transferred to another org: it leaves the old org's files.
                await merge_codebase_into_org(
                    storage, existing.org_id, existing.org_login, cid, None
                )
            entry = await register_entry(storage, req.installation_id, repo, existing)
        generation = await enqueue_sync_of(services.redis, entry, req.trigger or "refresh")
        return {"codebase_id": cid, "full_name": entry.full_name, "generation": generation}

    return await lifecycle_step(services, ctx, {"codebase_id": cid}, work)


async def installation_entries(storage: Storage, installation_id: int) -> list[CodebaseEntry]:
    entries = await registry.list_entries(storage)
    return [entry for entry in entries if entry.installation_id == installation_id]


async def set_installation_suspended(
    ctx: dict[str, Any], request: dict[str, Any]
) -> dict[str, Any]:
    """Mark an installation's codebases suspended or not, as GitHub says now (whichever of the
    suspend and unsuspend webhooks came last); unsuspending catches up on missed pushes."""
    req = InstallationRequest.model_validate(request)
    services = Services.of(ctx)

    async def work() -> dict[str, Any]:
        async with services.installation_lock(req.installation_id):
            installation = await services.github.get_installation(req.installation_id)
            entries = await installation_entries(services.storage, req.installation_id)
            for entry in entries:
                if entry.suspended != installation.suspended:
                    updated = entry.model_copy(
                        update={"suspended": installation.suspended, "updated_at": now()}
                    )
                    await registry.write_entry(services.storage, updated)
        if not installation.suspended:
            # GitHub sends no webhooks to a suspended installation.
            for entry in entries:
                await enqueue_sync_of(services.redis, entry, "unsuspend")
        return {
            "installation_id": req.installation_id,
            "suspended": installation.suspended,
            "codebases": len(entries),
        }

    return await lifecycle_step(services, ctx, {"installation_id": req.installation_id}, work)
