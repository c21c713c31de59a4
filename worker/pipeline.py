"""The engine end to end: fetch → refs delta → extract → store → snapshot → aggregate → branches
→ export. Convergent and idempotent: whatever ran before, a run brings the stored state and the
documents to the source's current branches, processing only the difference.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pygit2

from service.contract import layout
from service.contract.documents import (
    EmailMode,
    LastError,
    LastRun,
    Progress,
    RunState,
    Status,
)
from service.contract.storage import Storage
from worker import snapshot as snapshots
from worker.aggregate import aggregate, load_mailmap
from worker.branches import describe_branches
from worker.errors import redact
from worker.export import CodebaseFacts, build_documents, write_documents
from worker.extract import extract_new_commits
from worker.fetch import fetch_source
from worker.refs_delta import compute_refs_delta
from worker.store import CodebaseState, Manifest, compact_parts, drop_commits, stored_shas

log = logging.getLogger(__name__)

# How often a long phase refreshes its progress in the status document.
STATUS_INTERVAL_S = 2.0

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class RunResult:
    commits_added: int
    commits_removed: int
    documents_written: list[str] = field(default_factory=list)
    duration_ms: int = 0
    full_walk: bool = False
    # sha256 of each contributor's lower-cased email: what org-wide distinct counts merge on,
    # whatever EMAIL_MODE lets the documents show.
    contributor_keys: list[str] = field(default_factory=list)


@dataclass
class _StatusWriter:
    storage: Storage
    codebase_id: int
    status: Status

    async def update(self, **changes: object) -> None:
        self.status = self.status.model_copy(update={**changes, "updated_at": _now()})
        await self.storage.put(
            layout.codebase_document(self.codebase_id, "status"), self.status.to_json()
        )


def mirror_dir(work_dir: Path, codebase_id: int) -> Path:
    """Where a codebase's bare mirror lives in the work dir (a cache)."""
    return work_dir / "repos" / f"{codebase_id}.git"


def state_cache_dir(work_dir: Path, codebase_id: int) -> Path:
    """Where a codebase's Parquet parts are cached in the work dir."""
    return work_dir / "state" / str(codebase_id)


def _now() -> datetime:
    return datetime.now(UTC)


def choose_default_branch(
    branches: dict[str, str], requested: str | None, remote_default: str | None
) -> str | None:
    """The registry's (or caller's) choice, else the remote's HEAD, else a conventional name."""
    for candidate in (requested, remote_default, "main", "master"):
        if candidate and candidate in branches:
            return candidate
    if requested or remote_default:
        return requested or remote_default
    return min(branches) if branches else None


def default_full_name(source: str) -> str:
    tail = source.rstrip("/").rsplit("/", 2)[-2:]
    return "/".join(part.removesuffix(".git") for part in tail)


async def read_status(storage: Storage, codebase_id: int) -> Status | None:
    stored = await storage.get(layout.codebase_document(codebase_id, "status"))
    return Status.model_validate_json(stored.data) if stored else None


async def sync_codebase(
    source: str,
    storage: Storage,
    codebase_id: int,
    work_dir: Path,
    *,
    full_name: str | None = None,
    default_branch: str | None = None,
    email_mode: EmailMode = EmailMode.HASH,
    trigger: str = "cli",
    callbacks: pygit2.RemoteCallbacks | None = None,
    on_progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> RunResult:
    """Bring codebase `codebase_id` in `storage` up to date with `source`'s branches."""
    started = _now()
    clock = time.monotonic()
    previous = await read_status(storage, codebase_id)
    status = _StatusWriter(
        storage,
        codebase_id,
        Status(
            codebase_id=codebase_id,
            state=RunState.RUNNING,
            last_run=LastRun(trigger=trigger, started_at=started),
            last_success_at=previous.last_success_at if previous else None,
            last_error=previous.last_error if previous else None,
            refs=previous.refs if previous else {},
            updated_at=started,
        ),
    )

    def report(phase: str, done: int, total: int) -> None:
        if on_progress:
            on_progress(phase, done, total)

    try:
        await status.update(phase="fetch", progress=None)
        report("fetch", 0, 1)
        result = await _run(
            source,
            storage,
            codebase_id,
            work_dir,
            status,
            report,
            full_name=full_name,
            default_branch=default_branch,
            email_mode=email_mode,
            callbacks=callbacks,
            workers=workers,
        )
    except BaseException as exc:
        message = redact(str(exc)) or type(exc).__name__
        finished = _now()
        assert status.status.last_run is not None
        await asyncio.shield(
            status.update(
                state=RunState.FAILED,
                last_error=LastError(at=finished, message=message),
                last_run=status.status.last_run.model_copy(
                    update={
                        "finished_at": finished,
                        "duration_ms": int((time.monotonic() - clock) * 1000),
                    }
                ),
            )
        )
        raise
    finished = _now()
    result.duration_ms = int((time.monotonic() - clock) * 1000)
    await status.update(
        state=RunState.SUCCEEDED,
        phase=None,
        progress=None,
        last_success_at=finished,
        last_run=LastRun(
            trigger=trigger,
            started_at=started,
            finished_at=finished,
            duration_ms=result.duration_ms,
            commits_added=result.commits_added,
            commits_removed=result.commits_removed,
        ),
    )
    return result


async def _run(
    source: str,
    storage: Storage,
    codebase_id: int,
    work_dir: Path,
    status: _StatusWriter,
    report: ProgressCallback,
    *,
    full_name: str | None,
    default_branch: str | None,
    email_mode: EmailMode,
    callbacks: pygit2.RemoteCallbacks | None,
    workers: int | None,
) -> RunResult:
    state = CodebaseState(storage, codebase_id, state_cache_dir(work_dir, codebase_id))
    manifest = await state.load_manifest()
    fetched = await asyncio.to_thread(
        fetch_source, source, mirror_dir(work_dir, codebase_id), callbacks
    )
    repo = pygit2.Repository(str(fetched.path))
    heads = fetched.branches
    default = choose_default_branch(heads, default_branch, fetched.remote_default_branch)
    name = full_name or manifest.full_name or default_full_name(source)

    await status.update(phase="delta")
    parts = await state.local_parts(manifest.parts)
    delta = await asyncio.to_thread(
        compute_refs_delta,
        repo,
        manifest.refs.values(),
        heads.values(),
        lambda: stored_shas(parts),
    )

    total = len(delta.added)
    await status.update(phase="extract", progress=Progress(done=0, total=total))
    report("extract", 0, total)
    done = 0

    def extract() -> None:
        nonlocal done
        writer = state.new_part()
        for commits, files in extract_new_commits(str(fetched.path), delta.added, workers=workers):
            writer.write(commits, files)
            done += commits.num_rows
            report("extract", done, total)
        new_parts.append(writer.close())

    new_parts: list = []
    job = asyncio.ensure_future(asyncio.to_thread(extract))
    while not job.done():
        finished, _ = await asyncio.wait({job}, timeout=STATUS_INTERVAL_S)
        if not finished:
            await status.update(progress=Progress(done=done, total=total))
    job.result()

    await status.update(phase="store", progress=None)
    parts, replaced = await asyncio.to_thread(
        drop_commits, parts, set(delta.removed), state.parts_dir
    )
    parts += [p for p in new_parts if p.ref.commits]
    for part in new_parts:
        if not part.ref.commits:
            part.commits.unlink(missing_ok=True)
            part.files.unlink(missing_ok=True)
    parts, compacted = await asyncio.to_thread(compact_parts, parts, state.parts_dir)
    known = {ref.name for ref in manifest.parts}
    for part in parts:
        if part.ref.name not in known:
            await state.upload_part(part)

    await status.update(phase="snapshot")
    head = heads.get(default) if default else None
    table, snapshot_key = await _snapshot(state, repo, manifest, head)

    await status.update(phase="aggregate")
    mailmap = load_mailmap(repo, head)
    aggregates = await asyncio.to_thread(aggregate, [p.commits for p in parts], mailmap)
    now = _now()
    branch_facts, divergence = await asyncio.to_thread(
        describe_branches,
        repo,
        heads,
        default,
        mailmap,
        now,
        manifest.divergence,
        frozenset(delta.added),
    )

    await status.update(phase="export")
    facts = CodebaseFacts(
        codebase_id=codebase_id,
        full_name=name,
        default_branch=default,
        head_sha=head,
        aggregates=aggregates,
        snapshot=snapshots.summarize_snapshot(table),
        branches=branch_facts,
    )
    documents = build_documents(facts, email_mode, now)
    hashes = await write_documents(storage, codebase_id, documents, manifest.document_hashes)
    written = [n for n, h in hashes.items() if manifest.document_hashes.get(n) != h]

    old_snapshot_key = manifest.snapshot_key
    await state.save_manifest(
        manifest.model_copy(
            update={
                "full_name": name,
                "default_branch": default,
                "refs": dict(sorted(heads.items())),
                "parts": [p.ref for p in parts],
                "snapshot_head": head,
                "snapshot_key": snapshot_key,
                "document_hashes": hashes,
                "divergence": divergence,
            }
        )
    )
    # Only now that the new manifest is in place may what the old one named go.
    await state.delete_parts(replaced + compacted)
    if old_snapshot_key and old_snapshot_key != snapshot_key:
        await storage.delete(old_snapshot_key)
    status.status = status.status.model_copy(update={"refs": dict(sorted(heads.items()))})
    return RunResult(
        commits_added=len(delta.added),
        commits_removed=len(delta.removed),
        documents_written=written,
        full_walk=delta.full_walk,
        contributor_keys=sorted(
            hashlib.sha256(row["key"].encode()).hexdigest() for row in aggregates.contributors
        ),
    )


async def _snapshot(
    state: CodebaseState, repo: pygit2.Repository, manifest: Manifest, head: str | None
) -> tuple[snapshots.pa.Table, str | None]:
    """The per-file snapshot at `head`, updated from the tree diff against the stored one."""
    storage = state.storage
    old_table = None
    if manifest.snapshot_key:
        stored = await storage.get(manifest.snapshot_key)
        if stored is not None:
            old_table = snapshots.snapshot_from_parquet(stored.data)
    if head is not None and head == manifest.snapshot_head and old_table is not None:
        return old_table, manifest.snapshot_key
    old_tree = None
    if old_table is not None and manifest.snapshot_head:
        try:
            old_tree = repo[manifest.snapshot_head].peel(pygit2.Tree)
        except (KeyError, ValueError):
            old_table = None  # the old head left the mirror: rebuild from the empty tree
    new_tree = repo[head].peel(pygit2.Tree) if head else None
    table = await asyncio.to_thread(snapshots.update_snapshot, repo, old_table, old_tree, new_tree)
    if head is None:
        return table, None
    key = layout.state_object(manifest.codebase_id, f"snapshot/{head}.parquet")
    await storage.put(key, snapshots.snapshot_to_parquet(table), "application/octet-stream")
    return table, key
