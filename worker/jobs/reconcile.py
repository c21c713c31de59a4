"""Reconcile: every codebase whose branches moved without a webhook reaching us is synced."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pygit2

from contract import registry
from contract.registry import CodebaseEntry
from worker.engine import pipeline
from worker.engine.fetch import list_remote_branches
from worker.jobs.context import TRANSIENT_ERRORS, Services, enqueue_sync_of

log = logging.getLogger(__name__)

RECONCILE_CONCURRENCY = 4


async def _needs_sync(services: Services, entry: CodebaseEntry, scratch: Path) -> bool:
    tokens = services.github.tokens
    try:
        token = await tokens.get(entry.installation_id)
        callbacks = tokens.git_credentials(entry.installation_id, token)
        remote = await asyncio.to_thread(list_remote_branches, entry.clone_url, scratch, callbacks)
        status = await pipeline.read_status(services.storage, entry.codebase_id)
    except TRANSIENT_ERRORS as exc:
        log.warning("reconcile: codebase %s: %s", entry.codebase_id, exc)
        return False
    return status is None or status.refs != remote


async def reconcile(ctx: dict[str, Any]) -> dict[str, Any]:
    """Sync every codebase whose branches moved without us hearing of it (a lost webhook)."""
    services = Services.of(ctx)
    entries = [e for e in await registry.list_entries(services.storage) if not e.suspended]
    scratch = services.settings.work_dir / "ls-remote.git"
    if not scratch.exists():
        await asyncio.to_thread(pygit2.init_repository, str(scratch), True)
    limit = asyncio.Semaphore(RECONCILE_CONCURRENCY)

    async def check(entry: CodebaseEntry) -> bool:
        async with limit:
            if not await _needs_sync(services, entry, scratch):
                return False
        await enqueue_sync_of(services.redis, entry, "reconcile")
        return True

    enqueued = sum(await asyncio.gather(*(check(entry) for entry in entries)))
    if enqueued:
        log.info("reconcile: %d of %d codebases out of date", enqueued, len(entries))
    return {"checked": len(entries), "enqueued": enqueued}
