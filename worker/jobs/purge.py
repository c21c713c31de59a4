"""Purging: a codebase or a whole installation leaves storage, the org's files and Redis."""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

from contract import layout, registry
from contract.jobs import InstallationRequest, PurgeRequest
from contract.redis_keys import failures_key, purged_key, synced_key
from contract.registry import CodebaseEntry
from worker.engine import pipeline
from worker.jobs.context import Services, lifecycle_step
from worker.jobs.github_app import GitHubAccessLost
from worker.jobs.installation import installation_entries
from worker.jobs.locks import LockBusy
from worker.jobs.org_files import drop_org_if_empty, merge_codebase_into_org

log = logging.getLogger(__name__)

# A purged codebase stays purged for late jobs of its own for this long (re-registering clears it).
PURGED_TTL_S = 24 * 3600


async def _purge(services: Services, codebase_id: int) -> None:
    storage = services.storage
    async with services.codebase_lock(codebase_id):
        # First, so that jobs queued behind this one do not bring the codebase back.
        await services.redis.set(purged_key(codebase_id), 1, ex=PURGED_TTL_S)
        entry = await registry.read_entry(storage, codebase_id)
        if entry is not None:
            await merge_codebase_into_org(storage, entry.org_id, entry.org_login, codebase_id, None)
        await storage.delete_prefix(f"analytics/{codebase_id}/")
        await storage.delete_prefix(layout.state_prefix(codebase_id))
        # The registry entry last: a purge that failed half-way still knows the org next time.
        await registry.delete_entry(storage, codebase_id)
        work_dir = services.settings.work_dir
        for path in (
            pipeline.mirror_dir(work_dir, codebase_id),
            pipeline.state_cache_dir(work_dir, codebase_id),
        ):
            await asyncio.to_thread(shutil.rmtree, path, True)
        # The generation stays: it keeps sync job ids unique if the codebase comes back.
        await services.redis.delete(synced_key(codebase_id), failures_key(codebase_id))
    log.info("codebase %s purged", codebase_id)


async def _still_on_github(services: Services, entry: CodebaseEntry) -> bool:
    """Whether the codebase's installation still sees its repository (a purge whose webhook
    came after the repository was added back, or that nobody at GitHub asked for)."""
    try:
        await services.github.get_repository(entry.installation_id, entry.codebase_id)
    except GitHubAccessLost:
        return False
    return True


async def purge_codebase(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Remove a codebase that GitHub no longer shows its installation: documents, state,
    registry entry, org row, local caches, Redis keys."""
    req = PurgeRequest.model_validate(request)
    services = Services.of(ctx)
    cid = req.codebase_id

    async def work() -> dict[str, Any]:
        entry = await registry.read_entry(services.storage, cid)
        if entry is not None and await _still_on_github(services, entry):
            log.info("codebase %s: not purged, its installation still sees it", cid)
            return {"codebase_id": cid, "skipped": "still on GitHub"}
        await _purge(services, cid)
        return {"codebase_id": cid, "purged": True}

    return await lifecycle_step(services, ctx, {"codebase_id": cid}, work)


async def purge_installation(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Purge every codebase of an installation that GitHub says is gone, then its org's files."""
    req = InstallationRequest.model_validate(request)
    services = Services.of(ctx)

    async def work() -> dict[str, Any]:
        async with services.installation_lock(req.installation_id):
            try:
                await services.github.get_installation(req.installation_id)
            except GitHubAccessLost:
                return await _purge_installation(services, req.installation_id)
            log.info("installation %s: not purged, GitHub still has it", req.installation_id)
            return {"installation_id": req.installation_id, "skipped": "still installed"}

    return await lifecycle_step(services, ctx, {"installation_id": req.installation_id}, work)


async def _purge_installation(services: Services, installation_id: int) -> dict[str, Any]:
    entries = await installation_entries(services.storage, installation_id)
    busy = []
    for entry in entries:
        try:
            await _purge(services, entry.codebase_id)
        except LockBusy:
            busy.append(entry.codebase_id)
    if busy:
        raise LockBusy(f"codebases {busy}")
    services.github.tokens.forget(installation_id)
    for org_id in {entry.org_id for entry in entries}:
        await drop_org_if_empty(services.storage, org_id)
    return {"installation_id": installation_id, "purged": len(entries)}
