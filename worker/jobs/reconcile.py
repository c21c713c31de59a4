"""Reconcile: rebuild from GitHub and storage whatever Redis lost or a webhook never said.

Every installation and every repository it sees is listed from GitHub's API: a repository that
is not registered gets a registration, a registered codebase whose installation or repository is
gone gets a purge, a suspension that differs gets the suspension job, and a codebase whose
branches moved gets a sync. Each of those jobs checks GitHub again before it acts, so a listing
that is a moment old does no harm; a listing that failed purges nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from contract import registry
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
from contract.registry import CodebaseEntry
from worker.engine import pipeline
from worker.engine.fetch import list_remote_branches
from worker.jobs.context import TRANSIENT_ERRORS, Services, enqueue_sync_of
from worker.jobs.github_app import GitHubRepository, Installation

log = logging.getLogger(__name__)

RECONCILE_CONCURRENCY = 4


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


async def _resync(services: Services, entries: list[CodebaseEntry]) -> int:
    """Enqueue a sync of every codebase whose branches moved without us hearing of it."""
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

    return sum(await asyncio.gather(*(check(entry) for entry in entries)))


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
    enqueued = await _resync(services, active)
    if enqueued or asked:
        log.info(
            "reconcile: %d of %d codebases out of date, %d lifecycle jobs asked for",
            enqueued,
            len(entries),
            asked,
        )
    return {"checked": len(entries), "enqueued": enqueued, "lifecycle": asked}
