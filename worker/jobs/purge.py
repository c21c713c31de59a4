"""Purging: a codebase or a whole installation leaves storage, the org's files and Redis."""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

from arq import Retry

from contract import layout, registry
from contract.jobs import Account, InstallationRequest, PurgeRequest
from contract.redis_keys import failures_key, purged_key, synced_key
from worker.engine import pipeline
from worker.jobs.context import Services
from worker.jobs.installation import installation_entries
from worker.jobs.locks import CodebaseBusy, codebase_lock
from worker.jobs.org_files import drop_org_if_empty, merge_codebase_into_org

log = logging.getLogger(__name__)

# A purged codebase stays purged for late jobs of its own for this long (re-registering clears it).
PURGED_TTL_S = 24 * 3600


async def _purge(services: Services, codebase_id: int, account: Account | None) -> None:
    storage = services.storage
    async with codebase_lock(services.redis, codebase_id):
        # First, so that jobs queued behind this one do not bring the codebase back.
        await services.redis.set(purged_key(codebase_id), 1, ex=PURGED_TTL_S)
        entry = await registry.read_entry(storage, codebase_id)
        if entry is not None:
            account = Account(id=entry.org_id, login=entry.org_login)
        if account is not None:
            await merge_codebase_into_org(storage, account.id, account.login, codebase_id, None)
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


async def purge_codebase(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Remove a codebase: documents, state, registry entry, org row, local caches, Redis keys."""
    req = PurgeRequest.model_validate(request)
    services = Services.of(ctx)
    try:
        await _purge(services, req.codebase_id, req.account)
    except CodebaseBusy:
        raise Retry(defer=services.retry.lock_busy()) from None
    return {"codebase_id": req.codebase_id, "purged": True}


async def purge_installation(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Purge every codebase of an uninstalled installation, then its org's files."""
    req = InstallationRequest.model_validate(request)
    services = Services.of(ctx)
    entries = await installation_entries(services.storage, req.installation_id)
    busy = []
    for entry in entries:
        try:
            await _purge(services, entry.codebase_id, None)
        except CodebaseBusy:
            busy.append(entry.codebase_id)
    if busy:
        raise Retry(defer=services.retry.lock_busy())
    services.github.tokens.forget(req.installation_id)
    orgs = {entry.org_id for entry in entries} | ({req.account.id} if req.account else set())
    for org_id in orgs:
        await drop_org_if_empty(services.storage, org_id)
    return {"installation_id": req.installation_id, "purged": len(entries)}
