"""Merging one codebase into its org: the org state by compare-and-swap, then the public org files.

Many workers finish codebases of the same org at once. Each merges its codebase into the org
state object with a conditional write (retried when another writer got there first), then
derives `org_summary` and `codebases_list` from the state and writes each of them with a
compare-and-swap of its own. In that second loop every attempt reads the public file's ETag
first and the org state second: a write that succeeds was therefore derived from a state at
least as new as any other writer's that finished before it, so the last successful write
reflects the latest org state and no codebase is lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from contract import layout
from contract.documents import (
    CodebaseRow,
    Document,
    OrgHotspot,
    OrgLanguage,
    Overview,
    RunState,
    Status,
)
from contract.org_state import (
    CodebaseContribution,
    OrgState,
    codebases_list,
    org_state_key,
    summarize,
)
from contract.registry import CodebaseEntry
from contract.storage import PreconditionFailed, Storage, StorageError
from worker.engine.export import Hotspot

log = logging.getLogger(__name__)

ORG_DOCUMENTS = ("org_summary", "codebases_list")
MAX_ATTEMPTS = 100
_BACKOFF_BASE_S = 0.005
_BACKOFF_CAP_S = 0.25


class OrgMergeConflict(StorageError):
    """Too many concurrent writers: the merge did not get through. Retry the job."""


def _now() -> datetime:
    return datetime.now(UTC)


async def _backoff(attempt: int) -> None:
    # Full jitter: writers that collided spread out instead of colliding again in step.
    await asyncio.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))


def contribution_from_documents(
    overview: Overview,
    status: Status,
    contributor_keys: Sequence[str],
    authored_contributor_keys: Sequence[str],
    hotspots: Sequence[Hotspot] = (),
) -> CodebaseContribution:
    """What an exported codebase adds to its org.

    `contributor_keys` are the sha256 of the lower-cased emails (`RunResult.contributor_keys`),
    `authored_contributor_keys` those of the authored people (`RunResult`'s likewise): the
    documents cannot give them when EMAIL_MODE=omit. `hotspots` are the run's top files
    (`RunResult.hotspots`).
    """
    row = CodebaseRow(
        codebase_id=overview.codebase_id,
        full_name=overview.full_name,
        default_branch=overview.default_branch,
        primary_language=overview.primary_language,
        total_commits=overview.total_commits,
        total_contributors=overview.total_contributors,
        total_branches=overview.total_branches,
        total_churn=overview.total_churn,
        total_lines=overview.total_lines,
        last_commit_at=overview.last_commit_at,
        state=status.state,
        updated_at=status.updated_at,
    )
    return CodebaseContribution(
        row=row,
        exported=True,
        additions_lines=overview.additions_lines,
        deletions_lines=overview.deletions_lines,
        languages=[
            OrgLanguage(language=lang.language, type=lang.type, bytes=lang.bytes, files=lang.files)
            for lang in overview.languages
        ],
        contributor_keys=sorted(set(contributor_keys)),
        authored=overview.authored,
        authored_contributor_keys=sorted(set(authored_contributor_keys)),
        hotspots=[
            OrgHotspot(
                codebase_id=overview.codebase_id,
                full_name=overview.full_name,
                path=spot.path,
                hotspot=spot.hotspot,
                recent_commits=spot.recent_commits,
                lines=spot.lines,
            )
            for spot in hotspots
        ],
    )


def pending_contribution(entry: CodebaseEntry) -> CodebaseContribution:
    """A registered codebase before its first export: listed, counted in no total."""
    row = CodebaseRow(
        codebase_id=entry.codebase_id,
        full_name=entry.full_name,
        default_branch=entry.default_branch,
        primary_language=None,
        total_commits=0,
        total_contributors=0,
        total_branches=0,
        total_churn=0,
        total_lines=0,
        last_commit_at=None,
        state=RunState.QUEUED,
        updated_at=_now(),
    )
    return CodebaseContribution(row=row, exported=False)


async def read_org_state(storage: Storage, org_id: int) -> OrgState | None:
    stored = await storage.get(org_state_key(org_id))
    return OrgState.model_validate_json(stored.data) if stored else None


async def update_org_state(
    storage: Storage, org_id: int, org_login: str, change: Callable[[OrgState], None]
) -> OrgState:
    """Apply `change` to the org state by compare-and-swap, retried on conflict."""
    key = org_state_key(org_id)
    for attempt in range(MAX_ATTEMPTS):
        stored = await storage.get(key)
        state = (
            OrgState.model_validate_json(stored.data)
            if stored
            else OrgState(org_id=org_id, org_login=org_login)
        )
        before = state.model_copy(deep=True)
        state.org_login = org_login
        change(state)
        if state == before:
            return state  # nothing to write (and no empty state for an org we do not know)
        try:
            await storage.put_if(
                key, state.model_dump_json().encode(), stored.etag if stored else None
            )
        except PreconditionFailed:
            await _backoff(attempt)
            continue
        return state
    raise OrgMergeConflict(f"org {org_id}: state still contended after {MAX_ATTEMPTS} attempts")


async def _publish(
    storage: Storage, org_id: int, name: str, derive: Callable[[OrgState, datetime], Document]
) -> None:
    key = layout.org_document(org_id, name)
    for attempt in range(MAX_ATTEMPTS):
        # The order is the point: this file's ETag first, the state second (see the module doc).
        current = await storage.get(key)
        state = await read_org_state(storage, org_id)
        if state is None:
            return  # the org was dropped; nothing to publish
        document = derive(state, _now())
        if current is not None and _same_apart_from_time(current.data, document):
            return
        try:
            await storage.put_if(key, document.to_json(), current.etag if current else None)
        except PreconditionFailed:
            await _backoff(attempt)
            continue
        return
    raise OrgMergeConflict(f"org {org_id}: {name} still contended after {MAX_ATTEMPTS} attempts")


def _same_apart_from_time(stored: bytes, document: Document) -> bool:
    """Whether the stored file already says what `document` says (only updated_at differs):
    then rewriting it would only change its ETag under pollers."""
    try:
        old = type(document).model_validate_json(stored)
    except ValueError:
        return False
    return old.model_copy(update={"updated_at": getattr(document, "updated_at", None)}) == document


async def publish_org_files(storage: Storage, org_id: int) -> None:
    """Write org_summary and codebases_list from the current org state."""
    await _publish(storage, org_id, "org_summary", lambda s, now: summarize(s, None, now))
    await _publish(storage, org_id, "codebases_list", lambda s, now: codebases_list(s, None, now))


async def merge_codebases_into_org(
    storage: Storage,
    org_id: int,
    org_login: str,
    contributions: Mapping[int, CodebaseContribution | None],
    *,
    keep_existing: bool = False,
) -> OrgState:
    """Set (or, for None, remove) several codebases of one org in one swap, then publish.

    `keep_existing`: leave a codebase the org already has as it is (registering again must not
    turn an exported codebase back into a pending one).
    """

    def change(state: OrgState) -> None:
        for codebase_id, contribution in contributions.items():
            key = str(codebase_id)
            if contribution is None:
                state.codebases.pop(key, None)
            elif not (keep_existing and key in state.codebases):
                state.codebases[key] = contribution

    state = await update_org_state(storage, org_id, org_login, change)
    await publish_org_files(storage, org_id)
    return state


async def merge_codebase_into_org(
    storage: Storage,
    org_id: int,
    org_login: str,
    codebase_id: int,
    contribution: CodebaseContribution | None,
) -> OrgState:
    """Set one codebase's contribution to its org (None removes it), then publish."""
    return await merge_codebases_into_org(storage, org_id, org_login, {codebase_id: contribution})


async def set_codebase_state_in_org(
    storage: Storage, org_id: int, org_login: str, codebase_id: int, run_state: RunState
) -> None:
    """Show a codebase's run state in codebases_list, keeping its last exported numbers."""

    def change(state: OrgState) -> None:
        contribution = state.codebases.get(str(codebase_id))
        if contribution is not None and contribution.row.state != run_state:
            contribution.row = contribution.row.model_copy(
                update={"state": run_state, "updated_at": _now()}
            )

    await update_org_state(storage, org_id, org_login, change)
    await publish_org_files(storage, org_id)


async def drop_org_if_empty(storage: Storage, org_id: int) -> bool:
    """Remove an org's files and state once no codebase is left in it (the App was uninstalled)."""
    state = await read_org_state(storage, org_id)
    if state is not None and state.codebases:
        return False
    # The state first: a publish running meanwhile then finds no state and writes nothing.
    await storage.delete(org_state_key(org_id))
    for name in ORG_DOCUMENTS:
        await storage.delete(layout.org_document(org_id, name))
    log.info("org %s has no codebase left: its files are removed", org_id)
    return True
