"""Reconcile: rebuild from GitHub and storage whatever Redis lost or a webhook never said.

Every installation and every repository it sees is listed from GitHub's API: a repository that
is not registered gets a registration, a registered codebase whose installation or repository is
gone gets a purge, a suspension that differs gets the suspension job, and a codebase whose
branches moved, or whose documents an older version wrote, gets a sync. Each of those jobs
checks GitHub again before it acts, so a listing that is a moment old does no harm; a listing
that failed purges nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from contract import registry
from contract.documents import SCHEMA_VERSION
from contract.jobs import (
    PURGE_CODEBASE,
    PURGE_INSTALLATION,
    REGISTER_REPOSITORIES,
    SET_INSTALLATION_SUSPENDED,
    InstallationRequest,
    PurgeRequest,
    RegisterRequest,
    RepositoryRef,
)
from contract.redis_keys import retry_backoff_key
from contract.registry import CodebaseEntry
from worker.engine import pipeline
from worker.engine.fetch import list_remote_branches
from worker.jobs.context import TRANSIENT_ERRORS, Services, enqueue_sync_of
from worker.jobs.github_app import GitHubRepository, Installation

log = logging.getLogger(__name__)

RECONCILE_CONCURRENCY = 4
# How often the cron runs reconcile (worker/main.py), and the longest wait between two re-syncs
# of refs that keep failing.
RECONCILE_PERIOD_S = 600
MAX_RESYNC_BACKOFF_S = 24 * 3600


@dataclass
class GitHubView:
    """What GitHub says now: its installations, and the repositories of those listed in full."""

    installations: dict[int, Installation]
    repositories: dict[int, dict[int, GitHubRepository]] = field(default_factory=dict)


async def _github_view(services: Services) -> GitHubView:
    github = services.github
    view = GitHubView({i.id: i for i in await github.list_installations()})
    for installation in view.installations.values():
        if installation.suspended:
            continue  # no token is issued for it: its repositories are left as they are
        try:
            repos = await github.list_installation_repositories(installation.id)
        except TRANSIENT_ERRORS as exc:
            log.warning("reconcile: installation %s: %s", installation.id, exc)
            continue
        view.repositories[installation.id] = {repo.id: repo for repo in repos}
    return view


async def _enqueue(services: Services, name: str, request: Any) -> None:
    await services.redis.enqueue_job(name, request.model_dump(mode="json"))


async def _rebuild(services: Services, view: GitHubView, entries: list[CodebaseEntry]) -> int:
    """Enqueue the registrations, purges and suspension changes GitHub's view asks for."""
    registered = {entry.codebase_id for entry in entries}
    asked = 0
    for installation_id, repos in view.repositories.items():
        missing = [
            RepositoryRef(id=repo.id, full_name=repo.full_name)
            for repo in repos.values()
            if repo.id not in registered
        ]
        if missing:
            account = view.installations[installation_id].account
            request = RegisterRequest(
                installation_id=installation_id, account=account, repositories=missing
            )
            await _enqueue(services, REGISTER_REPOSITORIES, request)
            asked += 1
    gone_installations = {e.installation_id for e in entries} - set(view.installations)
    for installation_id in sorted(gone_installations):
        await _enqueue(
            services, PURGE_INSTALLATION, InstallationRequest(installation_id=installation_id)
        )
        asked += 1
    for entry in entries:
        installation = view.installations.get(entry.installation_id)
        if installation is None:
            continue
        if installation.suspended != entry.suspended:
            change = InstallationRequest(
                installation_id=installation.id, suspended=installation.suspended
            )
            await _enqueue(services, SET_INSTALLATION_SUSPENDED, change)
            asked += 1
        listed = view.repositories.get(entry.installation_id)
        if listed is not None and entry.codebase_id not in listed:
            await _enqueue(services, PURGE_CODEBASE, PurgeRequest(codebase_id=entry.codebase_id))
            asked += 1
    return asked


async def _remote_refs(
    services: Services, entry: CodebaseEntry, scratch: Path
) -> dict[str, str] | None:
    """The repository's branches if they differ from what the codebase's status last recorded,
    or if its documents are of an older schema (written before an upgrade); None when neither
    (or they cannot be read now)."""
    tokens = services.github.tokens
    try:
        token = await tokens.get(entry.installation_id)
        callbacks = tokens.git_credentials(entry.installation_id, token)
        remote = await asyncio.to_thread(
            list_remote_branches,
            entry.clone_url,
            scratch,
            callbacks,
            services.network_timeouts,
        )
        status = await pipeline.read_status(services.storage, entry.codebase_id)
    except TRANSIENT_ERRORS as exc:
        log.warning("reconcile: codebase %s: %s", entry.codebase_id, exc)
        return None
    if status is None or status.refs != remote or status.schema_version < SCHEMA_VERSION:
        return remote
    return None


async def _backing_off(services: Services, codebase_id: int, remote: dict[str, str]) -> bool:
    """Whether a re-sync of these very refs failed lately and waits its turn: a failure that
    repeats on the same refs costs a run at 1, 2, 4 … periods apart (a day at most), not a
    backfill every period. New refs (a push) start over; a sync that succeeds clears it."""
    key = retry_backoff_key(codebase_id)
    refs = hashlib.sha256(json.dumps(remote, sort_keys=True).encode()).hexdigest()
    record = await services.redis.hgetall(key)  # type: ignore[misc]
    now = time.time()
    same = record.get(b"refs", b"").decode() == refs
    if same and now < float(record.get(b"next_at", b"0")):
        return True
    attempts = int(record.get(b"attempts", b"0")) + 1 if same else 1
    delay = min(RECONCILE_PERIOD_S * 2 ** (attempts - 1), MAX_RESYNC_BACKOFF_S)
    await services.redis.hset(  # type: ignore[misc]
        key, mapping={"refs": refs, "attempts": attempts, "next_at": now + delay}
    )
    await services.redis.expire(key, int(MAX_RESYNC_BACKOFF_S * 2))
    return False


async def _resync(services: Services, entries: list[CodebaseEntry]) -> tuple[int, int]:
    """Enqueue a sync of every codebase whose branches moved without us hearing of it, unless
    it is backing off; (enqueued, backing off)."""
    scratch = services.settings.work_dir / "ls-remote.git"
    if not scratch.exists():
        await asyncio.to_thread(pygit2.init_repository, str(scratch), True)
    limit = asyncio.Semaphore(RECONCILE_CONCURRENCY)

    async def check(entry: CodebaseEntry) -> str:
        async with limit:
            remote = await _remote_refs(services, entry, scratch)
        if remote is None:
            return "current"
        if await _backing_off(services, entry.codebase_id, remote):
            return "backing off"
        await enqueue_sync_of(services.redis, entry, "reconcile")
        return "enqueued"

    found = await asyncio.gather(*(check(entry) for entry in entries))
    return found.count("enqueued"), found.count("backing off")


async def reconcile(ctx: dict[str, Any]) -> dict[str, Any]:
    """Bring the registry, the queue and the documents back in line with GitHub."""
    services = Services.of(ctx)
    entries = await registry.list_entries(services.storage)
    try:
        view = await _github_view(services)
    except TRANSIENT_ERRORS as exc:
        # Without GitHub's word nothing is registered or purged; the branches are still checked.
        log.warning("reconcile: cannot list the App's installations: %s", exc)
        view = None
    asked = 0 if view is None else await _rebuild(services, view, entries)
    active = [entry for entry in entries if not entry.suspended]
    enqueued, backing_off = await _resync(services, active)
    if enqueued or asked:
        log.info(
            "reconcile: %d of %d codebases out of date, %d lifecycle jobs asked for",
            enqueued,
            len(entries),
            asked,
        )
    result = {"checked": len(entries), "enqueued": enqueued, "lifecycle": asked}
    return result | ({"backing_off": backing_off} if backing_off else {})
