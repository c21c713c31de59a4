"""Sync: bring a codebase's documents and its org's files to its repository's branches.

Syncs are convergent: a job brings a codebase to its repository's current branches, whichever
push enqueued it. Pushes bump the codebase's generation in Redis; a run covers every generation
bumped before it started, and the highest covered one is recorded, so a job whose push is
already covered returns without fetching. One codebase is synced by one job at a time (a Redis
lock); a job that finds the lock taken comes back later.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry
from arq.connections import ArqRedis

from contract import layout, registry
from contract.documents import Overview, RunState
from contract.jobs import SyncRequest, sync_covered, sync_started
from contract.redis_keys import (
    failures_key,
    generation_key,
    purged_key,
    retry_backoff_key,
    synced_key,
)
from contract.registry import CodebaseEntry
from contract.storage import StorageError
from worker.engine import pipeline
from worker.engine.errors import PermanentSourceError, RunSuperseded, public_message, redact
from worker.jobs.context import TRANSIENT_ERRORS, Services, record_failure
from worker.jobs.github_app import GitCredentials, origin_of, require_git_host
from worker.jobs.installation import register_entry
from worker.jobs.locks import Lease, LockBusy
from worker.jobs.org_files import contribution_from_documents, merge_codebase_into_org

log = logging.getLogger(__name__)

# Pushes that keep arriving during runs are picked up by their own (queued) jobs after this.
MAX_RUNS_PER_JOB = 5
FAILURES_TTL_S = 24 * 3600

_RAISE_TO = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
"""


async def _generation(redis: ArqRedis, codebase_id: int) -> int:
    return int(await redis.get(generation_key(codebase_id)) or 0)


async def sync_codebase(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Bring one codebase's documents and its org's files up to its repository's branches."""
    req = SyncRequest.model_validate(request)
    services = Services.of(ctx)
    cid = req.codebase_id
    # Against the codebase's current generation, not the request's: pushes may have joined.
    if await sync_covered(services.redis, req):
        return {"codebase_id": cid, "skipped": "covered by an earlier run"}
    try:
        async with services.codebase_lock(cid) as lease:
            # Before the generation is read: a push from now on gets a job of its own.
            await sync_started(services.redis, req)
            return await _sync_locked(services, req, lease)
    except LockBusy:
        raise Retry(defer=services.retry.lock_busy()) from None


async def _sync_locked(services: Services, req: SyncRequest, lease: Lease) -> dict[str, Any]:
    cid = req.codebase_id
    if await services.redis.exists(purged_key(cid)):
        return {"codebase_id": cid, "skipped": "purged"}
    try:
        entry = await _ensure_entry(services, req)
        if entry.suspended:
            return {"codebase_id": cid, "skipped": "installation suspended"}
        runs, added = 0, 0
        while True:
            # Read before the fetch: GitHub sends the push event after the push landed, so every
            # generation bumped by now is in what this run fetches.
            target = max(await _generation(services.redis, cid), req.generation)
            result = await _run_engine(services, entry, req.trigger, lease)
            services.metrics.observe_sync(result.phase_seconds, result.duration_ms / 1000)
            runs, added = runs + 1, added + result.commits_added
            if not await lease.held():
                raise RunSuperseded(f"codebase {cid}: lost its lock before the org files")
            await _merge_exported(services, entry, result)
            if runs == 1:
                services.metrics.observe_fresh(services.enqueued_at)
            # Only now is the generation covered: a job retried after a failed merge runs again.
            await services.redis.eval(_RAISE_TO, 1, synced_key(cid), str(target))  # type: ignore[misc]
            await services.redis.delete(failures_key(cid), retry_backoff_key(cid))
            if runs >= MAX_RUNS_PER_JOB or await _generation(services.redis, cid) <= target:
                break
            log.info("codebase %s: pushed to while syncing, running again", cid)
    except PermanentSourceError as exc:
        services.metrics.count_error(exc)
        known = await registry.read_entry(services.storage, cid)
        name = f"repository {known.full_name}" if known else f"codebase {cid}"
        message = f"{name} is gone or access was revoked: {redact(str(exc))}"
        log.warning("codebase %s: %s", cid, message)
        await record_failure(services, req, RunState.FAILED, message)
        return {"codebase_id": cid, "failed": message}
    except TRANSIENT_ERRORS as exc:
        return await _retry_later(services, req, exc)
    except RunSuperseded as exc:
        # Another job owns the codebase now and writes its status; this one comes back later,
        # and finds its push covered or runs again.
        log.warning("%s", exc)
        raise Retry(defer=services.retry.lock_busy()) from None
    except Exception:
        # Not a failure we know of: no retry, and arq logs the traceback.
        await record_failure(services, req, RunState.FAILED, None)
        raise
    return {"codebase_id": cid, "runs": runs, "generation": target, "commits_added": added}


async def _retry_later(services: Services, req: SyncRequest, exc: BaseException) -> dict[str, Any]:
    cid = req.codebase_id
    services.metrics.count_error(exc)
    message = public_message(exc)
    log.warning("codebase %s: %s", cid, redact(str(exc)) or type(exc).__name__)
    failures = int(await services.redis.incr(failures_key(cid)))
    await services.redis.expire(failures_key(cid), FAILURES_TTL_S)
    if failures >= services.retry.max_failures:
        # The reconcile job will try again later: the branches will still differ from the refs.
        await services.redis.delete(failures_key(cid))
        message = f"gave up after {failures} attempts: {message}"
        log.warning("codebase %s: %s", cid, message)
        await record_failure(services, req, RunState.FAILED, message)
        return {"codebase_id": cid, "failed": message}
    delay = services.retry.after(exc, failures)
    log.warning("codebase %s: %s; retry %d in %.0fs", cid, message, failures, delay)
    await record_failure(
        services, req, RunState.QUEUED, f"{message} (attempt {failures}, retrying)"
    )
    raise Retry(defer=delay)


async def _ensure_entry(services: Services, req: SyncRequest) -> CodebaseEntry:
    """The registry entry; for a codebase not seen yet (or whose entry names a URL outside
    GitHub's git host), written from what GitHub answers the installation, never the request."""
    entry = await registry.read_entry(services.storage, req.codebase_id)
    if entry is not None and origin_of(entry.clone_url) == services.github.git_host:
        return entry
    installation_id = entry.installation_id if entry else req.installation_id
    repo = await services.github.get_repository(installation_id, req.codebase_id)
    return await register_entry(services.storage, installation_id, repo, entry)


async def _run_engine(
    services: Services, entry: CodebaseEntry, trigger: str, lease: Lease
) -> pipeline.RunResult:
    tokens = services.github.tokens
    require_git_host(entry.clone_url, services.github.git_host)
    # Taken right before the fetch (valid for minutes at least); the callback renews it if
    # GitHub refuses it during the fetch.
    token = await tokens.get(entry.installation_id)
    callbacks: GitCredentials = tokens.git_credentials(entry.installation_id, token)
    result = await pipeline.analyze_codebase(
        entry.clone_url,
        services.storage,
        entry.codebase_id,
        services.settings.work_dir,
        full_name=entry.full_name,
        default_branch=entry.default_branch,
        email_mode=services.settings.email_mode,
        bot_authors=tuple(services.settings.bot_authors),
        trigger=trigger,
        callbacks=callbacks,
        timeouts=services.network_timeouts,
        still_owner=lease.held,
    )
    log.info(
        "codebase %s (%s): +%d -%d commits in %d ms",
        entry.codebase_id,
        entry.full_name,
        result.commits_added,
        result.commits_removed,
        result.duration_ms,
    )
    return result


async def _merge_exported(
    services: Services, entry: CodebaseEntry, result: pipeline.RunResult
) -> None:
    storage, cid = services.storage, entry.codebase_id
    stored = await storage.get(layout.codebase_document(cid, "overview"))
    status = await pipeline.read_status(storage, cid)
    if stored is None or status is None:
        raise StorageError(f"codebase {cid}: the run's documents are missing")
    overview = Overview.model_validate_json(stored.data)
    contribution = contribution_from_documents(
        overview,
        status,
        result.contributor_keys,
        result.authored_contributor_keys,
        result.hotspots,
    )
    await merge_codebase_into_org(storage, entry.org_id, entry.org_login, cid, contribution)
