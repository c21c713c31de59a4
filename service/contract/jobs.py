"""What the web side asks of the worker: job names, their JSON arguments, and Redis keys.

Jobs are enqueued by name (the web side never imports worker code) with JSON-serialisable
arguments, and every job is idempotent: arq may run one more than once.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

# Job names.
SYNC_CODEBASE = "sync_codebase"
REGISTER_REPOSITORIES = "register_repositories"
PURGE_CODEBASE = "purge_codebase"
PURGE_INSTALLATION = "purge_installation"
REFRESH_CODEBASE = "refresh_codebase"
SET_INSTALLATION_SUSPENDED = "set_installation_suspended"
RECONCILE = "reconcile"

# Delivery ids are remembered for longer than GitHub lets a delivery be redelivered by hand.
DELIVERY_TTL_S = 5 * 24 * 3600


class Account(BaseModel):
    """The org (or user) an installation belongs to."""

    id: int
    login: str


class RepositoryRef(BaseModel):
    """A repository as a webhook names it; enough to register it without an API call."""

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


def delivery_key(delivery_id: str) -> str:
    return f"gitstats:delivery:{delivery_id}"


def generation_key(codebase_id: int) -> str:
    """Bumped by every push; a sync that started before the bump runs again."""
    return f"gitstats:generation:{codebase_id}"


def codebase_lock_key(codebase_id: int) -> str:
    return f"gitstats:lock:codebase:{codebase_id}"


def sync_job_id(codebase_id: int, generation: int) -> str:
    return f"sync:{codebase_id}:{generation}"
