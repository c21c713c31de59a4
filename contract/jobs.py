"""What the web side asks of the worker: job names, their JSON arguments, and how to enqueue a sync.

Jobs are enqueued by name (the web side never imports worker code) with JSON-serialisable
arguments, and every job is idempotent: arq may run one more than once.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from arq.constants import default_queue_name, job_key_prefix
from pydantic import BaseModel

from contract.redis_keys import generation_key, queued_sync_key, synced_key

if TYPE_CHECKING:
    from arq.connections import ArqRedis

# Job names.
SYNC_CODEBASE = "sync_codebase"
REGISTER_REPOSITORIES = "register_repositories"
PURGE_CODEBASE = "purge_codebase"
PURGE_INSTALLATION = "purge_installation"
REFRESH_CODEBASE = "refresh_codebase"
SET_INSTALLATION_SUSPENDED = "set_installation_suspended"
RECONCILE = "reconcile"
RECOVER_ORPHANS = "recover_orphans"

# Delivery ids are remembered for longer than GitHub lets a delivery be redelivered by hand.
DELIVERY_TTL_S = 5 * 24 * 3600
# The pointer to a queued sync job is checked against arq's own job key before it is trusted;
# it expires only so that nothing is left behind.
QUEUED_SYNC_TTL_S = 24 * 3600


class Account(BaseModel):
    """The org (or user) an installation belongs to."""

    id: int
    login: str


class RepositoryRef(BaseModel):
    """A repository as a webhook names it: only a hint, the worker registers a repository from
    what GitHub's API answers alone."""

    id: int
    full_name: str
    clone_url: str | None = None
    default_branch: str | None = None
    archived: bool = False


class SyncRequest(BaseModel):
    codebase_id: int
    installation_id: int
    account: Account
    repository: RepositoryRef
    trigger: str
    generation: int = 0


class RegisterRequest(BaseModel):
    installation_id: int
    account: Account
    # None: every repository the installation can see (asked of the API).
    repositories: list[RepositoryRef] | None = None


class PurgeRequest(BaseModel):
    codebase_id: int
    # Which org's files to remove the codebase from when its registry entry is already gone.
    account: Account | None = None
    installation_id: int | None = None


class InstallationRequest(BaseModel):
    installation_id: int
    account: Account | None = None
    suspended: bool = False


def serialize_job(value: Any) -> bytes:
    """Jobs and results as JSON, not pickle: both sides read them without each other's classes."""
    return json.dumps(value, default=_jsonable, separators=(",", ":")).encode()


def deserialize_job(data: bytes) -> Any:
    return json.loads(data)


def _jsonable(value: object) -> object:
    # arq stores a failed job's exception as its result.
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def sync_job_id(codebase_id: int, generation: int) -> str:
    return f"sync:{codebase_id}:{generation}"


async def enqueue_sync(redis: ArqRedis, request: SyncRequest) -> tuple[int, str]:
    """Ask for a sync of `request`'s codebase: (the new generation, the id of the job that will
    cover it).

    Pushes coalesce: while a sync job of the codebase is queued and has not started, a push only
    bumps the generation and joins that job, which reads the generation when it starts. A job
    that started (it holds the codebase's lock) covers what was bumped before it read it, and a
    later push gets a job of its own. A pointer to a job that no longer exists is ignored.
    """
    codebase_id = request.codebase_id
    generation = int(await redis.incr(generation_key(codebase_id)))
    queued = await redis.get(queued_sync_key(codebase_id))
    if queued is not None and await redis.exists(job_key_prefix + queued.decode()):
        return generation, queued.decode()
    while True:
        job_id = sync_job_id(codebase_id, generation)
        await redis.set(queued_sync_key(codebase_id), job_id, ex=QUEUED_SYNC_TTL_S)
        job = await redis.enqueue_job(
            SYNC_CODEBASE,
            request.model_copy(update={"generation": generation}).model_dump(mode="json"),
            _job_id=job_id,
        )
        if job is not None:
            return generation, job_id
        # Taken only if the counter went back (Redis lost it) while an old job is still stored.
        generation = int(await redis.incr(generation_key(codebase_id)))


async def due_jobs(redis: ArqRedis) -> int:
    """Jobs in arq's queue whose time has come: waiting for a worker or running (arq keeps a
    job in its sorted set, scored by when it may run, until it ends); later retries left out.
    What the workers are scaled on."""
    now_ms = int(time.time() * 1000)
    return int(await redis.zcount(default_queue_name, "-inf", now_ms))


async def sync_covered(redis: ArqRedis, request: SyncRequest) -> bool:
    """Whether every push of the codebase is covered by a finished run, in which case the job
    of `request` has nothing to do: its pointer is released in the same step. Atomic, so that
    a push either sees the pointer gone (and gets a job of its own) or is seen here."""
    covered = await redis.eval(  # type: ignore[misc]
        _COVERED,
        3,
        synced_key(request.codebase_id),
        generation_key(request.codebase_id),
        queued_sync_key(request.codebase_id),
        sync_job_id(request.codebase_id, request.generation),
    )
    return bool(covered)


async def sync_started(redis: ArqRedis, request: SyncRequest) -> None:
    """Called by a sync job once it holds the codebase (or found its push covered): from now on
    a push needs a job of its own. Leaves the pointer alone if it names another job."""
    await redis.eval(  # type: ignore[misc]
        _DELETE_IF_EQUAL,
        1,
        queued_sync_key(request.codebase_id),
        sync_job_id(request.codebase_id, request.generation),
    )


_COVERED = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(redis.call('GET', KEYS[2]) or '0') then
  if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
  return 1
end
return 0
"""

_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
