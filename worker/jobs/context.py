"""What every job shares: its services from the worker's context, the retry policy, the
errors that may pass, and how a job records a failure in the status and the org's list.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from arq import Retry
from arq.connections import ArqRedis

from contract import layout, registry
from contract.documents import LastError, RunState, Status
from contract.jobs import Account, RepositoryRef, SyncRequest, enqueue_sync
from contract.registry import CodebaseEntry
from contract.settings import Settings
from contract.storage import Storage, StorageError
from worker.engine import pipeline
from worker.engine.errors import PermanentSourceError, SourceError
from worker.engine.fetch import NetworkTimeouts
from worker.jobs.github_app import GitHubApp
from worker.jobs.locks import Lease, LockBusy, codebase_lock, installation_lock
from worker.jobs.metrics import WorkerMetrics
from worker.jobs.org_files import set_codebase_state_in_org

log = logging.getLogger(__name__)

# The longest a job may run (a backfill of a large repository), and so how long arq keeps a
# started job marked in progress: that, plus its own 10 s.
JOB_TIMEOUT_S = 2 * 3600
IN_PROGRESS_TIMEOUT_S = JOB_TIMEOUT_S + 10

# GitHub's Retry-After is honoured up to this; a longer one is retried sooner and asked again.
MAX_ASKED_WAIT_S = 3600.0

# Errors that may pass: GitHub 5xx / rate limit / network, storage, a run that lost a race.
TRANSIENT_ERRORS = (SourceError, StorageError, aiohttp.ClientError, OSError)


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

    def after(self, exc: BaseException, failures: int) -> float:
        """The wait before retrying after `exc`: the backoff, and never less than what GitHub
        asked for (Retry-After, a rate limit's reset), up to an hour."""
        asked = getattr(exc, "retry_after", None) or 0.0
        return max(self.backoff(failures), min(asked, MAX_ASKED_WAIT_S))


@dataclass(frozen=True)
class Services:
    """What on_startup put in the job context, typed; and when the running job was enqueued."""

    settings: Settings
    storage: Storage
    github: GitHubApp
    redis: ArqRedis
    retry: RetryPolicy
    metrics: WorkerMetrics
    enqueued_at: datetime | None = None

    @property
    def network_timeouts(self) -> NetworkTimeouts:
        """How long a fetch or a listing of branches waits for the git server."""
        return NetworkTimeouts(
            connect_s=self.settings.fetch_connect_timeout_s,
            io_s=self.settings.fetch_io_timeout_s,
        )

    def codebase_lock(self, codebase_id: int) -> AbstractAsyncContextManager[Lease]:
        return codebase_lock(self.redis, codebase_id, self.settings.lock_ttl_s)

    def installation_lock(self, installation_id: int) -> AbstractAsyncContextManager[Lease]:
        return installation_lock(self.redis, installation_id, self.settings.lock_ttl_s)

    @classmethod
    def of(cls, ctx: dict[str, Any]) -> Services:
        return cls(
            ctx["settings"],
            ctx["storage"],
            ctx["github"],
            ctx["redis"],
            ctx["retry_policy"],
            ctx["metrics"],
            ctx.get("enqueue_time"),
        )


def now() -> datetime:
    return datetime.now(UTC)


# --- status and queue -------------------------------------------------------------------------


def _request_for(entry: CodebaseEntry, trigger: str) -> SyncRequest:
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
    )


async def enqueue_sync_of(redis: ArqRedis, entry: CodebaseEntry, trigger: str) -> int:
    """Enqueue a sync of a registered codebase, as the webhook does for a push; its generation."""
    generation, _ = await enqueue_sync(redis, _request_for(entry, trigger))
    return generation


async def write_status(
    storage: Storage, codebase_id: int, state: RunState, message: str | None = None
) -> None:
    at = now()
    status = await pipeline.read_status(storage, codebase_id) or Status(
        codebase_id=codebase_id, state=state, updated_at=at
    )
    changes: dict[str, Any] = {"state": state, "phase": None, "progress": None, "updated_at": at}
    if message is not None:
        changes["last_error"] = LastError(at=at, message=message)
    await storage.put(
        layout.codebase_document(codebase_id, "status"),
        status.model_copy(update=changes).to_json(),
    )


async def record_failure(
    services: Services, request: SyncRequest, state: RunState, message: str | None
) -> None:
    """Say in the status document and the org's list that the sync failed (or will be retried).

    `message` None keeps the status's last error (the engine has written it). A codebase that is
    not registered (GitHub never confirmed it) gets nothing written: it is in no org, and its
    status could not be read.
    """
    cid = request.codebase_id
    try:
        entry = await registry.read_entry(services.storage, cid)
        if entry is not None:
            await write_status(services.storage, cid, state, message)
            await set_codebase_state_in_org(
                services.storage, entry.org_id, entry.org_login, cid, state
            )
    except StorageError as exc:
        log.warning("codebase %s: cannot record the failure: %s", cid, exc)


async def lifecycle_step(
    services: Services,
    ctx: dict[str, Any],
    subject: dict[str, int],
    work: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run a job's `work` about `subject` ({"codebase_id": …} or {"installation_id": …}): a lock
    another job holds, or a failure that may pass, brings the job back later (no sooner than
    GitHub asked); a permanent failure ends it with its reason."""
    what = ", ".join(f"{name.removesuffix('_id')} {value}" for name, value in subject.items())
    try:
        return await work()
    except LockBusy:
        raise Retry(defer=services.retry.lock_busy()) from None
    except PermanentSourceError as exc:
        log.warning("%s: %s", what, exc)
        return {**subject, "failed": str(exc)}
    except TRANSIENT_ERRORS as exc:
        delay = services.retry.after(exc, ctx.get("job_try", 1))
        log.warning("%s: %s; retrying in %.0fs", what, exc, delay)
        raise Retry(defer=delay) from None
