"""Registering an installation's repositories, refreshing one, suspending an installation."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry

from contract import registry
from contract.documents import RunState
from contract.jobs import Account, InstallationRequest, RegisterRequest, RepositoryRef, SyncRequest
from contract.redis_keys import purged_key
from contract.registry import CodebaseEntry
from contract.storage import Storage
from worker.engine import pipeline
from worker.engine.errors import PermanentSourceError
from worker.jobs.context import (
    TRANSIENT_ERRORS,
    Services,
    enqueue_sync_of,
    now,
    write_status,
)
from worker.jobs.github_app import GitHubAccessLost
from worker.jobs.org_files import (
    merge_codebase_into_org,
    merge_codebases_into_org,
    pending_contribution,
)

log = logging.getLogger(__name__)


async def register_entry(
    storage: Storage,
    installation_id: int,
    account: Account,
    repo: RepositoryRef,
    existing: CodebaseEntry | None,
) -> CodebaseEntry:
    """Write (or update) a codebase's registry entry from what GitHub says of it."""
    at = now()
    clone_url = repo.clone_url or (existing.clone_url if existing else None)
    if not clone_url:
        raise GitHubAccessLost(f"repository {repo.full_name}: GitHub gave no clone_url")
    entry = CodebaseEntry(
        codebase_id=repo.id,
        org_id=account.id,
        org_login=account.login,
        installation_id=installation_id,
        full_name=repo.full_name,
        clone_url=clone_url,
        default_branch=repo.default_branch or (existing.default_branch if existing else None),
        archived=repo.archived,
        suspended=existing.suspended if existing else False,
        registered_at=existing.registered_at if existing else at,
        updated_at=at,
    )
    if existing is None or entry.model_copy(update={"updated_at": existing.updated_at}) != existing:
        await registry.write_entry(storage, entry)
    return entry


async def register_repositories(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Register an installation's repositories (all of them when none are named) and backfill."""
    req = RegisterRequest.model_validate(request)
    services = Services.of(ctx)
    github, storage = services.github, services.storage
    try:
        repos = req.repositories
        if repos is None:
            repos = await github.list_installation_repositories(req.installation_id)
        entries = []
        for repo in repos:
            existing = await registry.read_entry(storage, repo.id)
            if not repo.clone_url and existing is None:
                try:
                    repo = await github.get_repository(req.installation_id, repo.full_name)
                except GitHubAccessLost as exc:
                    log.warning("not registering %s: %s", repo.full_name, exc)
                    continue
            await services.redis.delete(purged_key(repo.id))
            entries.append(
                await register_entry(storage, req.installation_id, req.account, repo, existing)
            )
        for entry in entries:
            if await pipeline.read_status(storage, entry.codebase_id) is None:
                await write_status(storage, entry.codebase_id, RunState.QUEUED)
        await merge_codebases_into_org(
            storage,
            req.account.id,
            req.account.login,
            {entry.codebase_id: pending_contribution(entry) for entry in entries},
            keep_existing=True,
        )
    except PermanentSourceError as exc:
        log.warning("installation %s: cannot register: %s", req.installation_id, exc)
        return {"installation_id": req.installation_id, "failed": str(exc)}
    except TRANSIENT_ERRORS as exc:
        delay = services.retry.backoff(ctx.get("job_try", 1))
        log.warning("installation %s: %s; retrying in %.0fs", req.installation_id, exc, delay)
        raise Retry(defer=delay) from None
    for entry in entries:
        await enqueue_sync_of(services.redis, entry, "backfill")
    return {"installation_id": req.installation_id, "registered": len(entries)}


async def refresh_codebase(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Re-read a renamed, transferred or edited repository, update its entry and sync it."""
    req = SyncRequest.model_validate(request)
    services = Services.of(ctx)
    storage, cid = services.storage, req.codebase_id
    if await services.redis.exists(purged_key(cid)):
        return {"codebase_id": cid, "skipped": "purged"}
    try:
        try:
            repo = await services.github.get_repository(
                req.installation_id, req.repository.full_name
            )
        except GitHubAccessLost as exc:
            # What the webhook said is the best we know; the sync will report the loss.
            log.warning("codebase %s: %s; using the webhook's data", cid, exc)
            repo = req.repository.model_copy(update={"id": cid})
        existing = await registry.read_entry(storage, cid)
        if existing is not None and existing.org_id != req.account.id:
            # Transferred to another org: it leaves the old org's files.
            await merge_codebase_into_org(storage, existing.org_id, existing.org_login, cid, None)
        entry = await register_entry(storage, req.installation_id, req.account, repo, existing)
    except PermanentSourceError as exc:
        log.warning("codebase %s: cannot refresh: %s", cid, exc)
        return {"codebase_id": cid, "failed": str(exc)}
    except TRANSIENT_ERRORS as exc:
        delay = services.retry.backoff(ctx.get("job_try", 1))
        log.warning("codebase %s: %s; retrying in %.0fs", cid, exc, delay)
        raise Retry(defer=delay) from None
    generation = await enqueue_sync_of(services.redis, entry, req.trigger or "refresh")
    return {"codebase_id": cid, "full_name": entry.full_name, "generation": generation}


async def installation_entries(storage: Storage, installation_id: int) -> list[CodebaseEntry]:
    entries = await registry.list_entries(storage)
    return [entry for entry in entries if entry.installation_id == installation_id]


async def set_installation_suspended(
    ctx: dict[str, Any], request: dict[str, Any]
) -> dict[str, Any]:
    """Mark an installation's codebases (un)suspended; unsuspending catches up on missed pushes."""
    req = InstallationRequest.model_validate(request)
    services = Services.of(ctx)
    entries = await installation_entries(services.storage, req.installation_id)
    for entry in entries:
        if entry.suspended != req.suspended:
            updated = entry.model_copy(update={"suspended": req.suspended, "updated_at": now()})
            await registry.write_entry(services.storage, updated)
    if not req.suspended:
        # GitHub sends no webhooks to a suspended installation.
        for entry in entries:
            await enqueue_sync_of(services.redis, entry, "unsuspend")
    return {"installation_id": req.installation_id, "codebases": len(entries)}
