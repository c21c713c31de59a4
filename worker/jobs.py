"""The worker's jobs, by the names in service/contract/jobs.py. Every one may run more than once.

Syncs are convergent: a job brings a codebase to its repository's current branches, whichever
push enqueued it. Pushes bump the codebase's generation in Redis; a run covers every generation
bumped before it started, and the highest covered one is recorded, so a job whose push is
already covered returns without fetching. One codebase is synced by one job at a time (a Redis
lock); a job that finds the lock taken comes back later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pygit2
from arq import Retry
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from service.contract import layout, registry
from service.contract.documents import LastError, Overview, RunState, Status
from service.contract.jobs import (
    SYNC_CODEBASE,
    Account,
    InstallationRequest,
    PurgeRequest,
    RegisterRequest,
    RepositoryRef,
    SyncRequest,
    codebase_lock_key,
    generation_key,
    sync_job_id,
)
from service.contract.registry import CodebaseEntry
from service.contract.settings import Settings
from service.contract.storage import Storage, StorageError
from worker import pipeline
from worker.errors import PermanentSourceError, SourceError, redact
from worker.github_app import GitCredentials, GitHubAccessLost, GitHubApp
from worker.org_files import (
    contribution_from_documents,
    drop_org_if_empty,
    merge_codebase_into_org,
    merge_codebases_into_org,
    pending_contribution,
    set_codebase_state_in_org,
)

log = logging.getLogger(__name__)

# The lock outlives a crashed worker by at most this long; a live one renews it.
LOCK_TTL_MS = 60_000
LOCK_RENEW_S = 20.0
# Pushes that keep arriving during runs are picked up by their own (queued) jobs after this.
MAX_RUNS_PER_JOB = 5
# A purged codebase stays purged for late jobs of its own for this long (re-registering clears it).
PURGED_TTL_S = 24 * 3600
FAILURES_TTL_S = 24 * 3600
RECONCILE_CONCURRENCY = 4

# Errors that may pass: GitHub 5xx / rate limit / network, storage, a run that lost a race.
TRANSIENT_ERRORS = (SourceError, StorageError, aiohttp.ClientError, OSError)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RAISE_TO = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
"""


def synced_key(codebase_id: int) -> str:
    """The highest generation a finished run has covered."""
    return f"gitstats:synced:{codebase_id}"


def failures_key(codebase_id: int) -> str:
    """Transient failures in a row, for the backoff (lock waits do not count)."""
    return f"gitstats:sync-failures:{codebase_id}"


def purged_key(codebase_id: int) -> str:
    return f"gitstats:purged:{codebase_id}"


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 5.0
    max_s: float = 600.0
    max_failures: int = 8
    lock_busy_s: float = 5.0

    def backoff(self, failures: int) -> float:
        """Exponential, with jitter so that jobs failing together do not return together."""
        return min(self.max_s, self.base_s * 2 ** max(failures - 1, 0)) * random.uniform(0.8, 1.2)

    def lock_busy(self) -> float:
        return self.lock_busy_s * random.uniform(0.8, 1.2)


@dataclass(frozen=True)
class Services:
    """What on_startup put in the job context, typed."""

    settings: Settings
    storage: Storage
    github: GitHubApp
    redis: ArqRedis
    retry: RetryPolicy

    @classmethod
    def of(cls, ctx: dict[str, Any]) -> Services:
        return cls(
            ctx["settings"], ctx["storage"], ctx["github"], ctx["redis"], ctx["retry_policy"]
        )


def _now() -> datetime:
    return datetime.now(UTC)


# --- the per-codebase lock ------------------------------------------------------------------


class CodebaseBusy(Exception):
    """Another job holds the codebase's lock."""


@contextlib.asynccontextmanager
async def codebase_lock(redis: ArqRedis, codebase_id: int) -> AsyncIterator[None]:
    """Hold `codebase_lock_key` (renewed while held); CodebaseBusy if another job has it."""
    key, token = codebase_lock_key(codebase_id), secrets.token_hex(16)
    if not await redis.set(key, token, nx=True, px=LOCK_TTL_MS):
        raise CodebaseBusy(codebase_id)
    renewer = asyncio.create_task(_keep_lock(redis, key, token))
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        # Compare-and-delete: never release a lock that expired and another job now holds.
        await redis.eval(_RELEASE, 1, key, token)  # type: ignore[misc]


async def _keep_lock(redis: ArqRedis, key: str, token: str) -> None:
    while True:
        await asyncio.sleep(LOCK_RENEW_S)
        try:
            extended = await redis.eval(_EXTEND, 1, key, token, str(LOCK_TTL_MS))  # type: ignore[misc]
        except RedisError as exc:
            log.warning("cannot renew %s: %s", key, type(exc).__name__)
            continue
        if not extended:
            # The run goes on: the manifest's compare-and-swap makes a concurrent run lose
            # cleanly (StateConflict), so the worst case is wasted work.
            log.error("lost %s while running: another job may sync the same codebase", key)
            return


# --- helpers ----------------------------------------------------------------------------------


async def _generation(redis: ArqRedis, codebase_id: int) -> int:
    return int(await redis.get(generation_key(codebase_id)) or 0)


async def _synced(redis: ArqRedis, codebase_id: int) -> int:
    return int(await redis.get(synced_key(codebase_id)) or 0)


def _request_for(entry: CodebaseEntry, trigger: str, generation: int) -> SyncRequest:
    return SyncRequest(
        codebase_id=entry.codebase_id,
        installation_id=entry.installation_id,
        account=Account(id=entry.org_id, login=entry.org_login),
        repository=RepositoryRef(
            id=entry.codebase_id,
            full_name=entry.full_name,
            clone_url=entry.clone_url,
            default_branch=entry.default_branch,
            archived=entry.archived,
        ),
        trigger=trigger,
        generation=generation,
    )


async def enqueue_sync(redis: ArqRedis, entry: CodebaseEntry, trigger: str) -> int:
    """Bump the codebase's generation and enqueue a sync for it, as the webhook does."""
    generation = int(await redis.incr(generation_key(entry.codebase_id)))
    request = _request_for(entry, trigger, generation)
    await redis.enqueue_job(
        SYNC_CODEBASE,
        request.model_dump(mode="json"),
        _job_id=sync_job_id(entry.codebase_id, generation),
    )
    return generation


async def _write_status(
    storage: Storage, codebase_id: int, state: RunState, message: str | None = None
) -> None:
    now = _now()
    status = await pipeline.read_status(storage, codebase_id) or Status(
        codebase_id=codebase_id, state=state, updated_at=now
    )
    changes: dict[str, Any] = {"state": state, "phase": None, "progress": None, "updated_at": now}
    if message is not None:
        changes["last_error"] = LastError(at=now, message=message)
    await storage.put(
        layout.codebase_document(codebase_id, "status"),
        status.model_copy(update=changes).to_json(),
    )


async def _record_failure(
    services: Services, request: SyncRequest, state: RunState, message: str | None
) -> None:
    """Say in the status document and the org's list that the sync failed (or will be retried).

    `message` None keeps the status's last error (the engine has written it).
    """
    try:
        await _write_status(services.storage, request.codebase_id, state, message)
        await set_codebase_state_in_org(
            services.storage,
            request.account.id,
            request.account.login,
            request.codebase_id,
            state,
        )
    except StorageError as exc:
        log.warning("codebase %s: cannot record the failure: %s", request.codebase_id, exc)


def _local_paths(work_dir: Path, codebase_id: int) -> list[Path]:
    return [
        pipeline.mirror_dir(work_dir, codebase_id),
        pipeline.state_cache_dir(work_dir, codebase_id),
    ]


# --- sync -------------------------------------------------------------------------------------


async def sync_codebase(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Bring one codebase's documents and its org's files up to its repository's branches."""
    req = SyncRequest.model_validate(request)
    services = Services.of(ctx)
    cid = req.codebase_id
    if req.generation and await _synced(services.redis, cid) >= req.generation:
        return {"codebase_id": cid, "skipped": "covered by an earlier run"}
    try:
        async with codebase_lock(services.redis, cid):
            return await _sync_locked(services, req)
    except CodebaseBusy:
        raise Retry(defer=services.retry.lock_busy()) from None


async def _sync_locked(services: Services, req: SyncRequest) -> dict[str, Any]:
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
            result = await _run_engine(services, entry, req.trigger)
            runs, added = runs + 1, added + result.commits_added
            await _merge_exported(services, entry, result)
            # Only now is the generation covered: a job retried after a failed merge runs again.
            await services.redis.eval(_RAISE_TO, 1, synced_key(cid), str(target))  # type: ignore[misc]
            await services.redis.delete(failures_key(cid))
            if runs >= MAX_RUNS_PER_JOB or await _generation(services.redis, cid) <= target:
                break
            log.info("codebase %s: pushed to while syncing, running again", cid)
    except PermanentSourceError as exc:
        message = f"repository {req.repository.full_name} is gone or access was revoked: " + redact(
            str(exc)
        )
        log.warning("codebase %s: %s", cid, message)
        await _record_failure(services, req, RunState.FAILED, message)
        return {"codebase_id": cid, "failed": message}
    except TRANSIENT_ERRORS as exc:
        return await _retry_later(services, req, exc)
    except Exception:
        # Not a failure we know of: no retry, and arq logs the traceback.
        await _record_failure(services, req, RunState.FAILED, None)
        raise
    return {"codebase_id": cid, "runs": runs, "generation": target, "commits_added": added}


async def _retry_later(services: Services, req: SyncRequest, exc: BaseException) -> dict[str, Any]:
    cid = req.codebase_id
    message = redact(str(exc)) or type(exc).__name__
    failures = int(await services.redis.incr(failures_key(cid)))
    await services.redis.expire(failures_key(cid), FAILURES_TTL_S)
    if failures >= services.retry.max_failures:
        # The reconcile job will try again later: the branches will still differ from the refs.
        await services.redis.delete(failures_key(cid))
        message = f"gave up after {failures} attempts: {message}"
        log.warning("codebase %s: %s", cid, message)
        await _record_failure(services, req, RunState.FAILED, message)
        return {"codebase_id": cid, "failed": message}
    delay = services.retry.backoff(failures)
    log.warning("codebase %s: %s; retry %d in %.0fs", cid, message, failures, delay)
    await _record_failure(
        services, req, RunState.QUEUED, f"{message} (attempt {failures}, retrying)"
    )
    raise Retry(defer=delay)


async def _ensure_entry(services: Services, req: SyncRequest) -> CodebaseEntry:
    """The registry entry, created from the request (or GitHub) for a codebase not seen yet."""
    entry = await registry.read_entry(services.storage, req.codebase_id)
    if entry is not None:
        return entry
    repo = req.repository
    if not repo.clone_url:
        repo = await services.github.get_repository(req.installation_id, repo.full_name)
    return await _write_entry(services.storage, req.installation_id, req.account, repo, None)


async def _write_entry(
    storage: Storage,
    installation_id: int,
    account: Account,
    repo: RepositoryRef,
    existing: CodebaseEntry | None,
) -> CodebaseEntry:
    now = _now()
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
        registered_at=existing.registered_at if existing else now,
        updated_at=now,
    )
    if existing is None or entry.model_copy(update={"updated_at": existing.updated_at}) != existing:
        await registry.write_entry(storage, entry)
    return entry


async def _run_engine(services: Services, entry: CodebaseEntry, trigger: str) -> pipeline.RunResult:
    tokens = services.github.tokens
    # Taken right before the fetch (valid for minutes at least); the callback renews it if
    # GitHub refuses it during the fetch.
    token = await tokens.get(entry.installation_id)
    callbacks: GitCredentials = tokens.git_credentials(entry.installation_id, token)
    result = await pipeline.sync_codebase(
        entry.clone_url,
        services.storage,
        entry.codebase_id,
        services.settings.work_dir,
        full_name=entry.full_name,
        default_branch=entry.default_branch,
        email_mode=services.settings.email_mode,
        trigger=trigger,
        callbacks=callbacks,
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
    contribution = contribution_from_documents(overview, status, result.contributor_keys)
    await merge_codebase_into_org(storage, entry.org_id, entry.org_login, cid, contribution)


# --- registering, refreshing, suspending -------------------------------------------------------


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
                await _write_entry(storage, req.installation_id, req.account, repo, existing)
            )
        for entry in entries:
            if await pipeline.read_status(storage, entry.codebase_id) is None:
                await _write_status(storage, entry.codebase_id, RunState.QUEUED)
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
        await enqueue_sync(services.redis, entry, "backfill")
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
        entry = await _write_entry(storage, req.installation_id, req.account, repo, existing)
    except PermanentSourceError as exc:
        log.warning("codebase %s: cannot refresh: %s", cid, exc)
        return {"codebase_id": cid, "failed": str(exc)}
    except TRANSIENT_ERRORS as exc:
        delay = services.retry.backoff(ctx.get("job_try", 1))
        log.warning("codebase %s: %s; retrying in %.0fs", cid, exc, delay)
        raise Retry(defer=delay) from None
    generation = await enqueue_sync(services.redis, entry, req.trigger or "refresh")
    return {"codebase_id": cid, "full_name": entry.full_name, "generation": generation}


async def _installation_entries(storage: Storage, installation_id: int) -> list[CodebaseEntry]:
    entries = await registry.list_entries(storage)
    return [entry for entry in entries if entry.installation_id == installation_id]


async def set_installation_suspended(
    ctx: dict[str, Any], request: dict[str, Any]
) -> dict[str, Any]:
    """Mark an installation's codebases (un)suspended; unsuspending catches up on missed pushes."""
    req = InstallationRequest.model_validate(request)
    services = Services.of(ctx)
    entries = await _installation_entries(services.storage, req.installation_id)
    for entry in entries:
        if entry.suspended != req.suspended:
            updated = entry.model_copy(update={"suspended": req.suspended, "updated_at": _now()})
            await registry.write_entry(services.storage, updated)
    if not req.suspended:
        # GitHub sends no webhooks to a suspended installation.
        for entry in entries:
            await enqueue_sync(services.redis, entry, "unsuspend")
    return {"installation_id": req.installation_id, "codebases": len(entries)}


# --- purging ----------------------------------------------------------------------------------


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
        for path in _local_paths(services.settings.work_dir, codebase_id):
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
    entries = await _installation_entries(services.storage, req.installation_id)
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


# --- reconcile --------------------------------------------------------------------------------


def list_remote_branches(url: str, scratch: Path, callbacks: GitCredentials) -> dict[str, str]:
    """`git ls-remote --heads url`: branch name → sha, without fetching anything."""
    repo = pygit2.Repository(str(scratch))
    remote = repo.remotes.create_anonymous(url)
    try:
        heads = remote.list_heads(callbacks=callbacks)
    except pygit2.GitError as exc:
        raise SourceError(redact(f"cannot list the branches of {url}: {exc}")) from None
    return {
        head.name.removeprefix("refs/heads/"): str(head.oid)
        for head in heads
        if head.name and head.name.startswith("refs/heads/")
    }


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
        await enqueue_sync(services.redis, entry, "reconcile")
        return True

    enqueued = sum(await asyncio.gather(*(check(entry) for entry in entries)))
    if enqueued:
        log.info("reconcile: %d of %d codebases out of date", enqueued, len(entries))
    return {"checked": len(entries), "enqueued": enqueued}
