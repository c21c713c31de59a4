"""Repository changes: refresh what the registry knows of a codebase, or purge it."""

from __future__ import annotations

import logging
from typing import Any

from gidgethub import sansio
from gidgethub.routing import Router
from pydantic import Field

from contract.jobs import PURGE_CODEBASE, REFRESH_CODEBASE, Account
from service.webhooks.handler import Jobs, RepositoryPayload

log = logging.getLogger(__name__)

router = Router()


class RepositoryChange(RepositoryPayload):
    changes: dict[str, Any] = Field(default_factory=dict)


# Name, owner, default branch and visibility live in the registry; refreshing is harmless.
@router.register("repository", action="renamed")
@router.register("repository", action="transferred")
@router.register("repository", action="archived")
@router.register("repository", action="unarchived")
@router.register("repository", action="privatized")
@router.register("repository", action="publicized")
async def refresh_on_change(event: sansio.Event, jobs: Jobs) -> None:
    await refresh(jobs, RepositoryChange.model_validate(event.data))


@router.register("repository", action="edited")
async def refresh_on_default_branch(event: sansio.Event, jobs: Jobs) -> None:
    """Only a new default branch changes the analytics; a description does not."""
    change = RepositoryChange.model_validate(event.data)
    if "default_branch" in change.changes:
        await refresh(jobs, change)
    else:
        log.info("delivery %s: edit leaves the default branch alone", event.delivery_id)


@router.register("repository", action="deleted")
async def purge_on_delete(event: sansio.Event, jobs: Jobs) -> None:
    gone = RepositoryPayload.model_validate(event.data)
    await purge_codebase(jobs, gone.repository.id, gone.installation.id, gone.owner)


async def refresh(jobs: Jobs, change: RepositoryPayload) -> None:
    """Enqueue a refresh: the worker re-reads the repository, updates its entry and syncs it."""
    await jobs.enqueue(REFRESH_CODEBASE, change.sync_request(trigger="repository"))


async def purge_codebase(
    jobs: Jobs, codebase_id: int, installation_id: int, account: Account
) -> None:
    """Enqueue the removal of a codebase's analytics and registry entry."""
    await jobs.enqueue(
        PURGE_CODEBASE,
        {
            "codebase_id": codebase_id,
            "account": account.model_dump(mode="json"),
            "installation_id": installation_id,
        },
    )
