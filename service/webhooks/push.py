"""Pushes, and branches created or deleted: each asks for a sync of its codebase."""

from __future__ import annotations

import logging

from gidgethub import sansio
from gidgethub.routing import Router

from contract.jobs import SYNC_CODEBASE, enqueue_sync
from service.webhooks.handler import Jobs, RepositoryPayload

log = logging.getLogger(__name__)

router = Router()


class PushPayload(RepositoryPayload):
    ref: str


class RefPayload(RepositoryPayload):
    ref_type: str


@router.register("push")
async def sync_on_push(event: sansio.Event, jobs: Jobs) -> None:
    """Any branch push (created, deleted and forced too); tags add nothing to the commit set."""
    push = PushPayload.model_validate(event.data)
    if push.ref.startswith("refs/heads/"):
        await request_sync(jobs, push, trigger=event.event)
    else:
        log.info("delivery %s: push to %s is not a branch", event.delivery_id, push.ref)


@router.register("create")
@router.register("delete")
async def sync_on_branch_ref(event: sansio.Event, jobs: Jobs) -> None:
    change = RefPayload.model_validate(event.data)
    if change.ref_type == "branch":
        await request_sync(jobs, change, trigger=event.event)
    else:
        log.info("delivery %s: %s of a %s", event.delivery_id, event.event, change.ref_type)


async def request_sync(jobs: Jobs, payload: RepositoryPayload, trigger: str) -> None:
    """Enqueue a sync under a new generation: one queued or running is never in the way."""
    _, job_id = await enqueue_sync(jobs.redis, payload.sync_request(trigger))
    jobs.record(SYNC_CODEBASE, job_id)
