"""The engine end to end: fetch → refs delta → extract → store → snapshot → aggregate → branches
→ export, one function per phase (numbered in run order), each named in the status document as
it starts. Convergent and idempotent: whatever ran before, a run brings the stored state and the
documents to the source's current branches, processing only the difference.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pygit2

from contract import layout
from contract.documents import (
    Branch,
    Document,
    EmailMode,
    LastError,
    LastRun,
    Phase,
    Progress,
    RunState,
    Status,
    Teams,
)
from contract.storage import Storage
from worker.engine import classes as path_classes
from worker.engine import codeowners, teams
from worker.engine import paths as path_state
from worker.engine import snapshot as snapshots
from worker.engine import tally as tallies
from worker.engine.aggregate import (
    MAILMAP_FILE,
    Aggregates,
    Reuse,
    aggregate_tally,
    head_blob,
    load_ignored_revisions,
    load_mailmap,
)
from worker.engine.branches import Divergence, describe_branches
from worker.engine.errors import (
    IncompleteRepositoryError,
    RunSuperseded,
    missing_object,
    public_message,
)
from worker.engine.export import (
    CodebaseFacts,
    Hotspot,
    PathsExport,
    RenderedDocument,
    build_documents,
    export_paths,
    publish_documents,
    publish_weeks,
    shown_people,
    teams_document,
    top_hotspots,
    weeks_held,
)
from worker.engine.extract import MAX_IDENTITY_CHARS, extract_new_commits, tune_libgit2
from worker.engine.fetch import (
    DEFAULT_TIMEOUTS,
    FetchedRepository,
    NetworkTimeouts,
    fetch_source,
    resolve_source,
)
from worker.engine.mailmap import Mailmap
from worker.engine.provenance import Updated, reblamed, regular_files, update_provenance
from worker.engine.provenance_state import ProvenanceState
from worker.engine.refs_delta import RefsDelta, compute_refs_delta
from worker.engine.store import (
    TALLY_JOURNAL_LIMIT,
    CodebaseState,
    Manifest,
    PartFiles,
    PartRef,
    compact_parts,
    drop_commits,
    stored_shas,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often a long phase refreshes its progress in the status document.
STATUS_INTERVAL_S = 2.0
# A run that blames every file whole (a backfill, a force-push of the default branch) publishes
# the other documents first when its text files times its commits reach this: blame's work
# grows with both (git/git: 4,800 files, 82,000 commits, 6 minutes on 2 cores).
PUBLISH_FIRST_WORK = 1_000_000
# A push stores the runs of the files it changed as one more table of the journal; once the
# journal has this many, the base is written again with them.
PROVENANCE_JOURNAL_LIMIT = 32
# How long after a phase begins the status document says so at the latest.
STATUS_LATENCY_S = 0.25
# An extraction of at least twice this many commits checkpoints its progress, in about
# CHECKPOINT_PARTS parts of at least this many commits each.
CHECKPOINT_MIN_COMMITS = 2_000
CHECKPOINT_PARTS = 16

ProgressCallback = Callable[[Phase, int, int], None]
# Asked right before a run commits and before it publishes: False stops the run (RunSuperseded).
OwnerCheck = Callable[[], Awaitable[bool]]


@dataclass
class RunResult:
    commits_added: int
    commits_removed: int
    documents_written: list[str] = field(default_factory=list)
    # Of the added commits, those whose rows an interrupted run had extracted and checkpointed.
    commits_resumed: int = 0
    duration_ms: int = 0
    full_walk: bool = False
    # sha256 of each contributor's lower-cased email: what org-wide distinct counts merge on,
    # whatever EMAIL_MODE lets the documents show.
    contributor_keys: list[str] = field(default_factory=list)
    # The same of the people of authored commits (overview.authored.contributors).
    authored_contributor_keys: list[str] = field(default_factory=list)
    # What the run counted at a limit, for the status (Status.notices).
    notices: list[str] = field(default_factory=list)
    # The files with the largest hotspots, for the org summary.
    hotspots: list[Hotspot] = field(default_factory=list)
    # Seconds spent in each phase, in run order.
    phase_seconds: dict[Phase, float] = field(default_factory=dict)
    # Provenance: the files git blame ran on (over the new commits, or their whole history),
    # and of those, the files blamed whole.
    files_blamed: int = 0
    files_blamed_whole: int = 0


@dataclass
class _StatusWriter:
    """The run's status document: written at once (update), or within STATUS_LATENCY_S
    (note), which a push's phases, milliseconds each, share one write of."""

    storage: Storage
    codebase_id: int
    status: Status
    _written_at: float = -math.inf
    _due: asyncio.TimerHandle | None = None
    _writing: asyncio.Task[None] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def update(self, **changes: object) -> None:
        self._change(changes)
        await self._write()

    async def note(self, **changes: object) -> None:
        self._change(changes)
        wait = self._written_at + STATUS_LATENCY_S - time.monotonic()
        if wait <= 0:
            await self._write()
        elif self._due is None:
            self._due = asyncio.get_running_loop().call_later(wait, self._write_later)

    async def close(self) -> None:
        """Write nothing more; wait for a write in progress."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)

    def _change(self, changes: dict[str, object]) -> None:
        self.status = self.status.model_copy(update={**changes, "updated_at": _now()})

    def _write_later(self) -> None:
        self._due = None
        self._writing = asyncio.ensure_future(self._write())
        self._writing.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            log.warning(
                "codebase %s: status not written: %s", self.codebase_id, public_message(failure)
            )

    async def _write(self) -> None:
        if self._due is not None:
            self._due.cancel()
            self._due = None
        # One write at a time, each of the latest status: none is overtaken by an older one.
        async with self._lock:
            self._written_at = time.monotonic()
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


async def analyze_codebase(
    source: str,
    storage: Storage,
    codebase_id: int,
    work_dir: Path,
    *,
    full_name: str | None = None,
    default_branch: str | None = None,
    email_mode: EmailMode = EmailMode.HASH,
    bot_authors: Sequence[str] = (),
    trigger: str = "cli",
    callbacks: pygit2.RemoteCallbacks | None = None,
    timeouts: NetworkTimeouts = DEFAULT_TIMEOUTS,
    on_progress: ProgressCallback | None = None,
    workers: int | None = None,
    still_owner: OwnerCheck | None = None,
) -> RunResult:
    """Bring codebase `codebase_id` in `storage` up to date with `source`'s branches.

    `bot_authors`: globs of the people counted as bots besides GitHub's `[bot]` accounts."""
    # A path that is not a repository fails here, before the codebase's status is touched.
    resolve_source(source)
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
            notices=previous.notices if previous else [],
            refs=previous.refs if previous else {},
            updated_at=started,
        ),
    )

    def report(phase: Phase, done: int, total: int) -> None:
        if on_progress:
            on_progress(phase, done, total)

    run = _Run(
        source=source,
        storage=storage,
        codebase_id=codebase_id,
        work_dir=work_dir,
        status=status,
        report=report,
        full_name=full_name,
        default_branch=default_branch,
        email_mode=email_mode,
        callbacks=callbacks,
        timeouts=timeouts,
        workers=workers,
        still_owner=still_owner,
        bot_authors=tuple(bot_authors),
        tidy=previous is None or previous.state is not RunState.SUCCEEDED,
    )
    try:
        try:
            result = await _run_or_drop_mirror(run)
        except RunSuperseded:
            raise  # the status is the new owner's to write
        except BaseException as exc:
            message = public_message(exc)
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
            notices=result.notices,
        )
        return result
    finally:
        await status.close()
        await _left_behind(run)


async def _run_or_drop_mirror(run: _Run) -> RunResult:
    """The run's phases; when an object is missing, the mirror may be what lost it: the next
    run fetches a whole new one."""
    try:
        return await _run_phases(run)
    except (KeyError, IncompleteRepositoryError) as exc:
        missing = exc if isinstance(exc, IncompleteRepositoryError) else missing_object(exc)
        if missing is None:
            raise
        await asyncio.to_thread(
            shutil.rmtree, mirror_dir(run.work_dir, run.codebase_id), ignore_errors=True
        )
        raise missing from None


async def _left_behind(run: _Run) -> None:
    """Do what the run left for once it is over; a failure of that costs only what it would
    have saved the next run."""
    for work in run.leaving:
        try:
            await asyncio.to_thread(work)
        except Exception as exc:
            log.warning("codebase %s: %s", run.codebase_id, public_message(exc))


@dataclass
class _Run:
    """One run: what it was asked, and what each phase hands to the next."""

    source: str
    storage: Storage
    codebase_id: int
    work_dir: Path
    status: _StatusWriter
    report: ProgressCallback
    full_name: str | None
    default_branch: str | None
    email_mode: EmailMode
    callbacks: pygit2.RemoteCallbacks | None
    timeouts: NetworkTimeouts
    workers: int | None
    still_owner: OwnerCheck | None = None
    bot_authors: tuple[str, ...] = ()
    # The last run did not succeed (it failed or died): it may have left objects behind in
    # storage, and documents that differ from the manifest's record of them.
    tidy: bool = False
    state: CodebaseState = field(init=False)
    manifest: Manifest = field(init=False)
    phase_seconds: dict[Phase, float] = field(default_factory=dict)
    # The stored rows of the commits this run removes, read before the store phase drops them.
    removed_rows: pa.Table | None = None
    tally: tallies.Tally | None = None
    tally_key: str | None = None
    tally_journal: list[str] = field(default_factory=list)
    # The rules the tally is counted with, and the path classes' object.
    rules: tallies.Rules | None = None
    classes_key: str | None = None
    # The per-path state (worker/engine/paths.py) and its object.
    paths: path_state.PathState | None = None
    paths_key: str | None = None
    paths_export: PathsExport | None = None
    # Line provenance at the default head (worker/engine/provenance_state.py; None: not known)
    # and what the manifest is to name of it: its base table, journal and head.
    provenance: ProvenanceState | None = None
    provenance_key: str | None = None
    provenance_journal: list[str] = field(default_factory=list)
    provenance_head: str | None = None
    blamed: tuple[int, int] = (0, 0)  # files blamed, of which whole (RunResult's)
    # contributor_activity's weeks objects by name (export.build_documents).
    weeks: dict[str, bytes] = field(default_factory=dict)
    hotspots: list[Hotspot] = field(default_factory=list)
    # The CODEOWNERS file at the default head, its rules and digest; each team's commits.
    codeowners_file: codeowners.CodeownersFile | None = None
    codeowners_rules: codeowners.Codeowners | None = None
    codeowners_digest: str | None = None
    team_commits: dict[str, int] = field(default_factory=dict)
    # Commits whose rows came from an interrupted run's checkpoint; parts already in storage;
    # whether the codebase has a checkpoint to delete once the run commits.
    resumed: int = 0
    uploaded: set[str] = field(default_factory=set)
    checkpointed: bool = False
    _phase: tuple[Phase, float] | None = None
    # Work for the runs after this one, done once it is over (published, failed or not).
    leaving: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = CodebaseState(
            self.storage, self.codebase_id, state_cache_dir(self.work_dir, self.codebase_id)
        )

    async def enter(self, phase: Phase, progress: Progress | None = None) -> None:
        self.leave()
        self._phase = (phase, time.monotonic())
        await self.status.note(phase=phase, progress=progress)

    def leave(self) -> None:
        """Close the phase in progress: its time goes into `phase_seconds`."""
        if self._phase is not None:
            phase, since = self._phase
            spent = time.monotonic() - since  # a phase entered twice counts both times
            self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + spent
            self._phase = None

    async def check_lease(self) -> None:
        """RunSuperseded unless the caller still owns the codebase (its lock, for a job)."""
        if self.still_owner is not None and not await self.still_owner():
            raise RunSuperseded(
                f"codebase {self.codebase_id}: another run owns it now; this one stops unwritten"
            )


@dataclass
class _Source:
    """The fetched mirror and its branches, with the default branch chosen."""

    fetched: FetchedRepository
    repo: pygit2.Repository
    default: str | None

    @property
    def heads(self) -> dict[str, str]:
        return self.fetched.branches

    @property
    def head(self) -> str | None:
        return self.heads.get(self.default) if self.default else None


async def _run_phases(run: _Run) -> RunResult:
    run.manifest = await run.state.load_manifest()
    if run.state.outdated:
        run.tidy = True  # what the other version stored goes once this run commits
    source = await fetch(run)
    parts, delta = await refs_delta(run, source)
    new_parts = await extract(run, source, delta)
    parts, obsolete = await store(run, parts, new_parts, delta)
    table, snapshot_key = await snapshot(run, source)
    aggregates, mailmap = await aggregate(run, source, parts, new_parts, table)
    now = _now()  # the documents' generation time, which "stale" is measured against
    branch_facts, divergence = await branches(run, source, mailmap, delta, now)
    plan = await _blame_plan(run, source, table)
    written = []
    if _publish_first(plan, aggregates):
        # Every file blamed whole takes long: the other figures are published first (those of
        # provenance null), the last rows staying named until the new ones replace them.
        run.provenance_key = run.manifest.provenance_key
        run.provenance_journal = run.manifest.provenance_journal
        run.provenance_head = run.manifest.provenance_head
        documents = await export(run, source, aggregates, table, branch_facts, now)
        await _commit(run, source, parts, obsolete, snapshot_key, divergence, delta)
        written = await _publish(run, documents)
        await provenance(run, source, plan)
        documents = await export(run, source, aggregates, table, branch_facts, now)
        await _commit_provenance(run)
    else:
        await provenance(run, source, plan)
        documents = await export(run, source, aggregates, table, branch_facts, now)
        await _commit(run, source, parts, obsolete, snapshot_key, divergence, delta)
    written = list(dict.fromkeys([*written, *await _publish(run, documents)]))
    if run.provenance is not None:
        run.state.remember_provenance(run.manifest, run.provenance)
    run.leave()
    return RunResult(
        commits_added=len(delta.added),
        commits_removed=len(delta.removed),
        documents_written=written,
        commits_resumed=run.resumed,
        full_walk=delta.full_walk,
        contributor_keys=_digests(row["key"] for row in aggregates.contributors if row["commits"]),
        authored_contributor_keys=_digests(aggregates.authored_keys),
        notices=_notices(aggregates, len(branch_facts), len(source.heads)),
        hotspots=run.hotspots,
        phase_seconds=run.phase_seconds,
        files_blamed=run.blamed[0],
        files_blamed_whole=run.blamed[1],
    )


def _digests(keys: Iterable[str]) -> list[str]:
    return sorted(hashlib.sha256(key.encode()).hexdigest() for key in keys)


def _notices(aggregates: Aggregates, described: int, branches: int) -> list[str]:
    """What the run counted at a limit, one sentence each."""
    notices = []
    if clamped := aggregates.totals.clamped_dates:
        commits = "1 commit has" if clamped == 1 else f"{clamped} commits have"
        notices.append(
            f"{commits} an author date outside the years 1 to 9999: counted at the nearest end "
            "of that span"
        )
    if shortened := aggregates.totals.shortened_identities:
        people = "1 author has" if shortened == 1 else f"{shortened} authors have"
        notices.append(
            f"{people} a name or email over {MAX_IDENTITY_CHARS} characters: shortened to it"
        )
    if described < branches:
        notices.append(
            f"{branches} branches: the branches document describes the default one and the "
            f"{described - 1} most recently committed others"
        )
    return notices


async def fetch(run: _Run) -> _Source:
    """Phase 1: every branch of the source into the codebase's bare mirror."""
    await run.enter(Phase.FETCH)
    run.report(Phase.FETCH, 0, 1)
    fetched = await asyncio.to_thread(
        fetch_source,
        run.source,
        mirror_dir(run.work_dir, run.codebase_id),
        run.callbacks,
        run.timeouts,
    )
    default = choose_default_branch(
        fetched.branches, run.default_branch, fetched.remote_default_branch
    )
    # The delta's walk of a backfill reads every commit: with libgit2's default 256 MiB object
    # cache, that cost the process 150 MiB more at 400,000 commits, for no speed.
    tune_libgit2()
    return _Source(fetched, pygit2.Repository(str(fetched.path)), default)


async def refs_delta(run: _Run, source: _Source) -> tuple[list[PartFiles], RefsDelta]:
    """Phase 2: the commits the new branch heads add to the stored set and those they remove."""
    await run.enter(Phase.DELTA)
    parts = await run.state.local_parts(run.manifest.parts)
    delta = await asyncio.to_thread(
        compute_refs_delta,
        source.repo,
        run.manifest.refs.values(),
        source.heads.values(),
        lambda: stored_shas(parts),
        lambda shas: run.state.sha_index.among([(p.ref.name, p.commits) for p in parts], shas),
    )
    return parts, delta


async def extract(run: _Run, source: _Source, delta: RefsDelta) -> list[PartFiles]:
    """Phase 3: the added commits' rows into new local parts, with progress in the status.

    A long extraction checkpoints: every `checkpoint_interval` commits it closes its part,
    uploads it and names it in the codebase's checkpoint, so that a run after this one dies takes
    those rows over instead of extracting them again."""
    total = len(delta.added)
    resumed, held = await _resume(run, delta.added) if run.tidy and total else ([], set())
    remaining = [sha for sha in delta.added if sha not in held] if held else delta.added
    done = run.resumed = total - len(remaining)
    if done:
        log.info(
            "codebase %s: %d of %d commits taken over from an interrupted run's checkpoint",
            run.codebase_id,
            done,
            total,
        )
    await run.enter(Phase.EXTRACT, Progress(done=done, total=total))
    run.report(Phase.EXTRACT, done, total)
    new_parts: list[PartFiles] = list(resumed)
    interval = checkpoint_interval(total)
    loop = asyncio.get_running_loop()

    def extract_all() -> None:
        nonlocal done
        writer = run.state.new_part()
        batches = extract_new_commits(str(source.fetched.path), remaining, workers=run.workers)
        for commits, files in batches:
            writer.write(commits, files)
            done += commits.num_rows
            run.report(Phase.EXTRACT, done, total)
            if interval and writer.commit_rows >= interval and done < total:
                new_parts.append(writer.close())
                saved = save_checkpoint(run, list(new_parts), done, total)
                asyncio.run_coroutine_threadsafe(saved, loop).result()
                writer = run.state.new_part()
        new_parts.append(writer.close())

    await _with_progress(run, extract_all, lambda: Progress(done=done, total=total))
    return new_parts


async def _with_progress(run: _Run, work: Callable[[], T], progress: Callable[[], Progress]) -> T:
    """`work` in a thread, the status saying its `progress` every STATUS_INTERVAL_S meanwhile."""
    job = asyncio.ensure_future(asyncio.to_thread(work))
    while not job.done():
        finished, _ = await asyncio.wait({job}, timeout=STATUS_INTERVAL_S)
        if not finished:
            await run.status.update(progress=progress())
    return job.result()


def checkpoint_interval(total: int) -> int | None:
    """How many commits an extraction of `total` puts in each checkpointed part; None when it is
    too short to checkpoint. About CHECKPOINT_PARTS parts: a run that dies redoes at most that
    fraction of the work, and the parts stay few."""
    if total < 2 * CHECKPOINT_MIN_COMMITS:
        return None
    return max(CHECKPOINT_MIN_COMMITS, -(-total // CHECKPOINT_PARTS))


async def save_checkpoint(run: _Run, parts: list[PartFiles], done: int, total: int) -> None:
    """Upload the extraction's parts that storage lacks, then name them all in the checkpoint."""
    await run.check_lease()
    for part in parts:
        if part.ref.name not in run.uploaded:
            await run.state.upload_part(part)
            run.uploaded.add(part.ref.name)
    await run.state.save_checkpoint(part.ref for part in parts)
    run.checkpointed = True
    log.info("codebase %s: checkpoint at %d of %d commits", run.codebase_id, done, total)


async def _resume(run: _Run, added: list[str]) -> tuple[list[PartFiles], set[str]]:
    """The checkpointed parts of an interrupted run, cut to the commits this run adds, and those
    commits."""
    parts = await run.state.load_checkpoint()
    if not parts:
        return [], set()
    run.checkpointed = True
    run.uploaded.update(part.ref.name for part in parts)

    def cut() -> tuple[list[PartFiles], set[str]]:
        held = stored_shas(parts)
        wanted = set(added)
        # Rows of commits the branches no longer reach, or that a later run stored.
        kept, _ = drop_commits(parts, held - wanted, run.state.parts_dir)
        return kept, held & wanted

    return await asyncio.to_thread(cut)


async def store(
    run: _Run, parts: list[PartFiles], new_parts: list[PartFiles], delta: RefsDelta
) -> tuple[list[PartFiles], list[PartRef]]:
    """Phase 4: removed commits dropped, parts compacted, new parts uploaded.

    Returns the parts of the new state and those of the old one it no longer needs, which may go
    only once the new manifest is committed.
    """
    await run.enter(Phase.STORE)
    state = run.state
    if delta.removed and run.manifest.tally_key:
        run.removed_rows = await asyncio.to_thread(
            tallies.removed_rows, [p.commits for p in parts], set(delta.removed)
        )
    parts, replaced = await asyncio.to_thread(
        drop_commits, parts, set(delta.removed), state.parts_dir
    )
    parts += [p for p in new_parts if p.ref.commits]
    for part in new_parts:
        if not part.ref.commits:
            part.commits.unlink(missing_ok=True)
            part.files.unlink(missing_ok=True)
    parts, compacted = await asyncio.to_thread(compact_parts, parts, state.parts_dir)
    known = {ref.name for ref in run.manifest.parts} | run.uploaded
    for part in parts:
        if part.ref.name not in known:
            await state.upload_part(part)
    return parts, replaced + compacted


async def snapshot(run: _Run, source: _Source) -> tuple[snapshots.pa.Table, str | None]:
    """Phase 5: the per-file snapshot at the default head, updated from the tree diff against
    the stored one."""
    await run.enter(Phase.SNAPSHOT)
    storage, manifest, repo, head = run.storage, run.manifest, source.repo, source.head
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


async def aggregate(
    run: _Run, source: _Source, parts: list[PartFiles], new_parts: list[PartFiles], table: pa.Table
) -> tuple[Aggregates, Mailmap]:
    """Phase 6: the rules (path classes, ignored revisions) at the default head, the tally
    updated by what the run added and removed (counted from every stored row when there is
    none yet, or when the rules changed), then the documents' figures from it, the mailmap and
    the bots applied over its identities."""
    await run.enter(Phase.AGGREGATE)
    repo, head, manifest = source.repo, source.head, run.manifest
    mailmap = load_mailmap(repo, head)
    ignored = load_ignored_revisions(repo, head)
    added = [p for p in new_parts if p.ref.commits]
    known = await run.state.load_classes(manifest)
    # Paths new to the classes: those of the added rows (of every row when there are none).
    sources = parts if known is None else added
    paths = await asyncio.to_thread(_paths_of, [p.files for p in sources])
    classes, reclassified = await asyncio.to_thread(
        path_classes.update_classes, repo, known, manifest.snapshot_head, head, paths, table
    )
    run.classes_key = manifest.classes_key
    if known is None or classes is not known:
        run.classes_key = await run.state.save_classes(classes)
    rules = run.rules = tallies.Rules(classes, ignored)
    rules_changed = reclassified or ignored != frozenset(manifest.ignored_revisions)
    await _count_paths(run, source, parts, added, rules, rules_changed, table)
    tally = await run.state.load_tally(manifest)
    every = tallies.Rows.of_parts([(p.commits, p.files) for p in parts])
    # What this push adds to the tally the last run counted, when that is all it changes.
    delta: tallies.Tally | None = None
    if tally is None or rules_changed:
        tally = await asyncio.to_thread(tallies.tally_rows, every, rules)
        run.tally_key = await run.state.save_tally(tally)
    elif added and run.removed_rows is None:
        new = tallies.Rows.of_parts([(p.commits, p.files) for p in added])
        delta = await asyncio.to_thread(tallies.tally_rows, new, rules)
        tally = await asyncio.to_thread(tallies.plus, tally, delta)
        journal = manifest.tally_journal
        if (
            len(journal) < TALLY_JOURNAL_LIMIT
            and delta.cells.num_rows * TALLY_JOURNAL_LIMIT <= tally.cells.num_rows
        ):
            # A push writes its own cells, not the whole history's.
            run.tally_key = manifest.tally_key
            run.tally_journal = [*journal, await run.state.save_tally(delta)]
        else:
            tally = replace(tally, cells=await asyncio.to_thread(tallies.compact, tally.cells))
            run.tally_key = await run.state.save_tally(tally)
    elif added or run.removed_rows is not None:
        new = tallies.Rows.of_parts([(p.commits, p.files) for p in added])
        tally = await asyncio.to_thread(tallies.update, tally, new, run.removed_rows, every, rules)
        tally = replace(tally, cells=await asyncio.to_thread(tallies.compact, tally.cells))
        run.tally_key = await run.state.save_tally(tally)
    else:
        run.tally_key, run.tally_journal = manifest.tally_key, manifest.tally_journal
        delta = tallies.Tally(tallies.CELLS_SCHEMA.empty_table())
    run.tally = tally
    mailmap_id = _mailmap_id(repo, head)
    reuse = None
    if delta is not None:
        before = _kept_basis([manifest.tally_key, *manifest.tally_journal], mailmap_id, run)
        kept = await asyncio.to_thread(run.state.load_kept, before)
        reuse = None if kept is None else Reuse(*kept, added=delta)
    aggregates = await asyncio.to_thread(aggregate_tally, tally, mailmap, run.bot_authors, reuse)
    people = aggregates.people
    assert people is not None
    basis = _kept_basis([run.tally_key, *run.tally_journal], mailmap_id, run)
    counted = (
        {row["key"]: row["weeks"] for row in aggregates.contributor_activity},
        dict(zip(people.keys, people.bots, strict=True)),
        {"week": aggregates.weekly, "month": aggregates.monthly},
    )
    run.state.remember_kept(basis, counted)
    # On this machine too, for a run in another process: once this one is over.
    run.leaving.append(functools.partial(run.state.save_kept, basis, counted))
    return aggregates, mailmap


def _mailmap_id(repo: pygit2.Repository, head: str | None) -> str:
    """The object id of the `.mailmap` at `head` ("" for none), as load_mailmap reads it."""
    blob = head_blob(repo, head, MAILMAP_FILE)
    return "" if blob is None else str(blob.id)


def _kept_basis(tally: list[str | None], mailmap_id: str, run: _Run) -> str:
    """What the aggregates a run leaves for the next (CodebaseState.save_kept) are counted
    from: the tally's objects, the mailmap, the bot globs."""
    return json.dumps([tally, mailmap_id, sorted(run.bot_authors)])


async def _count_paths(
    run: _Run,
    source: _Source,
    parts: list[PartFiles],
    added: list[PartFiles],
    rules: tallies.Rules,
    rules_changed: bool,
    table: pa.Table,
) -> None:
    """The per-path state: counted again from every stored row when there is none, the rules
    changed or commits were removed (a minimum cannot be subtracted), else the added rows'
    cells merged in; its recent rows those of the default head's window (read again from the
    stored rows only when the head moved out of the window kept)."""
    window = path_state.Window.at(_head_time(source))
    every = [(p.commits, p.files) for p in parts]
    state = await run.state.load_paths(run.manifest)
    before = state
    if state is None or rules_changed or run.removed_rows is not None:
        counted = await asyncio.to_thread(path_state.count_parts, every, rules, window)
        # What was published stays what the documents are compared with.
        state = counted if state is None else replace(counted, entries=state.entries)
    else:
        counted = None
        if added:
            new = [(p.commits, p.files) for p in added]
            counted = await asyncio.to_thread(path_state.count_parts, new, rules, window)
        if state.covers(window):
            state = state.narrowed(window) if counted is None else state.merge(counted)
        else:
            # The recent rows of every stored commit, the added ones' included.
            if counted is not None:
                state = state.merge_cells(counted)
            recent = await asyncio.to_thread(path_state.recent_parts, every, window)
            state = state.with_recent(recent)
    run.paths = await asyncio.to_thread(
        _count_teams, run, source, parts, added, table, state, before
    )


def _count_teams(
    run: _Run,
    source: _Source,
    parts: list[PartFiles],
    added: list[PartFiles],
    table: pa.Table,
    state: path_state.PathState,
    before: path_state.PathState | None,
) -> path_state.PathState:
    """The owners of the files at the default head, the CODEOWNERS file's (only the files new
    to the head matched when it is the one the kept owners were matched with), and each team's
    commits (run.team_commits), counted again from the stored rows only for the teams whose
    files changed otherwise than by gaining files with no history."""
    found = None
    if source.head is not None:
        found = codeowners.find_codeowners(source.repo[source.head].peel(pygit2.Tree))
    rules = None if found is None else codeowners.parse_codeowners(found.data)
    digest = ""
    if found is not None:
        digest = hashlib.sha256(found.path.encode() + b"\0" + found.data).hexdigest()
    run.codeowners_file, run.codeowners_rules, run.codeowners_digest = found, rules, digest
    manifest = run.manifest
    same = before is not None and manifest.codeowners == digest
    known = before.owners if same and before is not None else None
    owners = teams.update_owners(rules, table.column("path").combine_chunks(), known)
    kept = None if before is None or run.removed_rows is not None else before
    stale = teams.stale_teams(
        owners,
        None if kept is None else kept.owners,
        pa.array([], pa.binary()) if kept is None else pc.unique(kept.cells.column("path")),
    )
    added_rows = pa.concat_tables(
        [pq.read_table(p.files, columns=["sha", "path"]) for p in added]
        or [pa.table({"sha": pa.array([], pa.string()), "path": pa.array([], pa.binary())})]
    )
    run.team_commits = teams.update_commits(
        owners,
        manifest.team_commits if kept is not None else {},
        stale,
        added_rows,
        [p.files for p in parts],
    )
    return replace(state, owners=owners)


def _head_time(source: _Source) -> int | None:
    """The committer time of the default branch's head commit."""
    if source.head is None:
        return None
    return source.repo[source.head].peel(pygit2.Commit).commit_time


def _paths_of(files: list[Path]) -> list[bytes]:
    """The distinct paths of these file rows' parts."""
    if not files:
        return []
    column = pa.chunked_array(
        [pq.read_table(path, columns=["path"]).column("path") for path in files],
        pa.binary(),
    )
    return pc.unique(column).to_pylist()


async def branches(
    run: _Run, source: _Source, mailmap: Mailmap, delta: RefsDelta, now: datetime
) -> tuple[list[Branch], dict[str, Divergence]]:
    """Phase 7: each branch's facts, ahead/behind carried forward from the last run."""
    await run.enter(Phase.BRANCHES)
    return await asyncio.to_thread(
        describe_branches,
        source.repo,
        source.heads,
        source.default,
        mailmap,
        now,
        run.manifest.divergence,
        frozenset(delta.added),
    )


@dataclass
class _Blame:
    """What the provenance phase starts from: the text files at the default head, the line
    provenance the manifest names (None: none) and whether every file is to be blamed whole."""

    text: set[bytes]
    state: ProvenanceState | None
    whole: bool


async def _blame_plan(run: _Run, source: _Source, table: pa.Table) -> _Blame:
    head = source.head
    if head is None:
        return _Blame(set(), None, whole=False)
    state = await run.state.load_provenance(run.manifest)
    binary = set(table.filter(table.column("binary")).column("path").to_pylist())
    text = await asyncio.to_thread(regular_files, source.repo, head) - binary
    whole = state is None or reblamed(source.repo, state.head, head) is None
    return _Blame(text, state, whole)


def _publish_first(plan: _Blame, aggregates: Aggregates) -> bool:
    """Whether the documents are published before provenance: when every file is to be blamed
    whole over a history large enough for that to take a while."""
    return plan.whole and len(plan.text) * aggregates.totals.commits >= PUBLISH_FIRST_WORK


async def provenance(run: _Run, source: _Source, plan: _Blame) -> None:
    """Phase 8: the lines of each text file at the default head by the commit git blame names
    for them (worker/engine/provenance.py): a push blames again only the files it changed, and
    stores what changed (worker/engine/provenance_state.py)."""
    await run.enter(Phase.PROVENANCE)
    manifest, head, state = run.manifest, source.head, plan.state
    if head is None:
        run.provenance, run.provenance_key, run.provenance_journal = None, None, []
        run.provenance_head = None
        return
    done, total = 0, 0

    def report(blamed: int, of: int) -> None:
        nonlocal done, total
        done, total = blamed, of
        run.report(Phase.PROVENANCE, blamed, of)

    def update() -> Updated:
        return update_provenance(
            source.fetched.path,
            head,
            plan.text,
            None if state is None else state.runs,
            None if state is None else state.head,
            workers=run.workers or os.cpu_count() or 1,
            report=report,
            known=frozenset() if state is None else state.authors,
        )

    updated = await _with_progress(run, update, lambda: Progress(done=done, total=total))
    run.blamed = (updated.blamed, updated.whole)
    journal = manifest.provenance_journal
    if state is None or plan.whole or len(journal) >= PROVENANCE_JOURNAL_LIMIT:
        state = state or ProvenanceState(head, {}, {})
        state.update(head, updated.changed, updated.gone, updated.authors)
        run.provenance_key = await run.state.save_provenance(state.table())
        run.provenance_journal = []
    else:
        touched = state.update(head, updated.changed, updated.gone, updated.authors)
        run.provenance_key, run.provenance_journal = manifest.provenance_key, journal
        if touched:
            delta = await run.state.save_provenance(state.table(touched))
            run.provenance_journal = [*journal, delta]
    run.provenance, run.provenance_head = state, head


async def _commit_provenance(run: _Run) -> None:
    """After a run that published before provenance: the manifest names the new line
    provenance, and the per-path state the second export saved (its entries show it)."""
    await run.check_lease()
    manifest = run.manifest
    run.manifest = manifest.model_copy(
        update={**_provenance_names(run), "paths_key": run.paths_key}
    )
    await run.state.save_manifest(run.manifest)
    await _drop_provenance(run, manifest)
    if manifest.paths_key and manifest.paths_key != run.paths_key:
        await run.state.delete_paths(manifest.paths_key)


def _provenance_names(run: _Run) -> dict[str, Any]:
    return {
        "provenance_key": run.provenance_key,
        "provenance_journal": run.provenance_journal,
        "provenance_head": run.provenance_head,
    }


async def _drop_provenance(run: _Run, replaced: Manifest) -> None:
    """Delete the provenance tables `replaced` named and the manifest no longer does."""
    named = {run.manifest.provenance_key, *run.manifest.provenance_journal}
    for key in [replaced.provenance_key, *replaced.provenance_journal]:
        if key and key not in named:
            await run.state.delete_provenance(key)


async def export(
    run: _Run,
    source: _Source,
    aggregates: Aggregates,
    table: snapshots.pa.Table,
    branch_facts: list[Branch],
    now: datetime,
) -> dict[str, Document | RenderedDocument]:
    """Phase 8: the documents, built from what the earlier phases found. They are published
    only once the run's state is committed, so readers never see what a run did not commit."""
    await run.enter(Phase.EXPORT)
    rules = run.rules
    assert rules is not None, "the aggregate phase runs first"
    facts = CodebaseFacts(
        codebase_id=run.codebase_id,
        full_name=_full_name(run),
        default_branch=source.default,
        head_sha=source.head,
        aggregates=aggregates,
        snapshot=snapshots.summarize_snapshot(table, rules.classes),
        branches=branch_facts,
        total_branches=len(source.heads),
        **_surviving(run, aggregates, source),
    )
    documents, run.weeks = build_documents(facts, run.email_mode, now)
    paths, documents["teams"] = await asyncio.to_thread(
        _export_paths, run, aggregates, table, now, rules
    )
    assert run.paths is not None, "the aggregate phase counts the paths"
    run.paths_export = paths
    state = replace(run.paths, entries=paths.entries)
    run.paths_key = await run.state.save_paths(state)
    return documents


def _surviving(run: _Run, aggregates: Aggregates, source: _Source) -> dict[str, Any]:
    """CodebaseFacts' surviving lines by person and code age, from the line provenance (its
    counts brought up to date first)."""
    state, people, head_time = run.provenance, aggregates.people, _head_time(source)
    if state is None or people is None or head_time is None or run.paths is None:
        return {}  # not known (yet)
    owners = run.paths.owners

    def key_of(name: str, email: str) -> str:
        return people.keys[people.resolve(name, email)[2]]

    def owners_of(paths: Iterable[bytes]) -> dict[bytes, tuple[str, ...]]:
        wanted = owners.filter(
            pc.is_in(owners.column("path"), value_set=pa.array(list(paths), pa.binary()))
        )
        found: dict[bytes, tuple[str, ...]] = {}
        for path, owner in zip(*wanted.to_pydict().values(), strict=True):
            found[path] = (*found.get(path, ()), owner)
        return found

    state.count(key_of, run.codeowners_digest or "", owners_of)
    return {"surviving": state.by_person(), "code_age": state.code_age(head_time)}


def _export_paths(
    run: _Run,
    aggregates: Aggregates,
    table: pa.Table,
    now: datetime,
    rules: tallies.Rules,
) -> tuple[PathsExport, Teams]:
    """The paths documents that changed since the last run (every one after a run that did
    not succeed), and the teams document, from the per-path state."""
    state, people, co_authored = run.paths, aggregates.people, aggregates.co_authored
    assert state is not None and people is not None and co_authored is not None
    cells = state.cells
    kids = people.kids(cells.column("author_name"), cells.column("author_email"))
    bot_flags = pa.array(people.bots, pa.bool_())
    bots = pc.take(bot_flags, kids) if len(kids) else pa.array([], pa.bool_())
    recent = state.recent_counts()
    lines = path_state.head_lines(table)
    figures = path_state.path_figures(cells, kids, bots, lines, recent)
    moves = path_state.shared_moves(
        state.shared,
        ((c.sha, c.author, c.co_authors, c.ignored) for c in co_authored),
        people.bots,
    )
    authored = pc.and_(pc.invert(cells.column("ignored")), pc.invert(bots))
    churn = path_state.person_churn(cells, kids, authored, moves)
    ranked = path_state.ranked_leaders(churn, people.keys)
    shown = {row["key"]: (row["name"], row["email"]) for row in aggregates.contributors}
    names = shown_people([shown.get(key, (key, key)) for key in people.keys], run.email_mode)
    last = None if run.tidy or not state.entries.num_rows else state.entries
    owners, by_team = None, None
    if run.provenance is not None and run.provenance.keys is not None:
        owners = run.provenance.path_tables(people.keys)
        by_team = run.provenance.owner_tables(people.keys)
    paths = export_paths(run.codebase_id, figures, ranked, rules.classes, names, now, last, owners)
    run.hotspots = top_hotspots(figures)
    rows = teams.team_figures(state.owners, lines, figures, cells, kids, run.team_commits)
    leaders = path_state.leaders(teams.team_churn(state.owners, churn), people.keys)
    document = teams_document(
        run.codebase_id,
        rows,
        {owner.decode(): ranked for owner, ranked in leaders.items()},
        run.codeowners_file,
        run.codeowners_rules,
        names,
        now,
        by_team,
    )
    return paths, document


async def _commit(
    run: _Run,
    source: _Source,
    parts: list[PartFiles],
    obsolete: list[PartRef],
    snapshot_key: str | None,
    divergence: dict[str, Divergence],
    delta: RefsDelta,
) -> None:
    """Swap in the new manifest (the commit point of the run), then drop what the old one named."""
    await run.check_lease()
    manifest, heads = run.manifest, dict(sorted(source.heads.items()))
    run.manifest = manifest.model_copy(
        update={
            "full_name": _full_name(run),
            "default_branch": source.default,
            "refs": heads,
            "parts": [p.ref for p in parts],
            "snapshot_head": source.head,
            "snapshot_key": snapshot_key,
            "divergence": divergence,
            "tally_key": run.tally_key,
            "tally_journal": run.tally_journal,
            "punch_card": run.tally.punch_rows() if run.tally else [],
            "classes_key": run.classes_key,
            "paths_key": run.paths_key,
            "paths_window": run.paths.window if run.paths else None,
            "team_commits": run.team_commits,
            **_provenance_names(run),
            "codeowners": run.codeowners_digest,
            "ignored_revisions": sorted(run.rules.ignored) if run.rules else [],
        }
    )
    await run.state.save_manifest(run.manifest)
    if run.checkpointed:
        await run.state.delete_checkpoint()
    await asyncio.to_thread(
        run.state.sha_index.advance,
        [ref.name for ref in manifest.parts],
        [ref.name for ref in run.manifest.parts],
        delta.added,
        delta.removed,
    )
    # Only now that the new manifest is in place may what the old one named go.
    await run.state.delete_parts(obsolete)
    if manifest.snapshot_key and manifest.snapshot_key != snapshot_key:
        await run.storage.delete(manifest.snapshot_key)
    kept = {run.tally_key, *run.tally_journal}
    for key in [manifest.tally_key, *manifest.tally_journal] if manifest.tally_key else []:
        if key not in kept:
            await run.state.delete_tally(key)
    if manifest.classes_key and manifest.classes_key != run.classes_key:
        await run.state.delete_classes(manifest.classes_key)
    if manifest.paths_key and manifest.paths_key != run.paths_key:
        await run.state.delete_paths(manifest.paths_key)
    await _drop_provenance(run, manifest)
    if run.tidy:
        garbage = await run.state.collect_garbage(run.manifest)
        if garbage:
            log.info(
                "codebase %s: %d objects of unfinished runs deleted", run.codebase_id, len(garbage)
            )
    run.status.status = run.status.status.model_copy(update={"refs": heads})


async def _publish(run: _Run, documents: dict[str, Document | RenderedDocument]) -> list[str]:
    """Write the committed state's documents that storage does not hold yet; their names.

    What storage then holds is recorded in the manifest, so that a later run rewrites a document
    that a crash or a failed write left behind, whatever its content."""
    await run.check_lease()
    before = run.manifest.published
    # The index names its people's weeks: those it names are written before it, and those
    # only the last one named go once it is replaced (a reader who read that one just before
    # finds one gone and reads the index again: service/api/codebases.py).
    held = await weeks_held(
        run.storage, run.codebase_id, None if run.tidy else before.get("contributor_activity")
    )
    weeks = await publish_weeks(run.storage, run.codebase_id, run.weeks, held)
    # After a run that succeeded, the manifest's record is what storage holds: only a failed or
    # interrupted one can have left documents that differ from it.
    published = await publish_documents(
        run.storage, run.codebase_id, documents, before, verify=run.tidy
    )
    if published != before:
        run.manifest = run.manifest.model_copy(update={"published": published})
        await run.state.save_manifest(run.manifest)
    for name in held - run.weeks.keys():
        await run.storage.delete(layout.contributor_weeks(run.codebase_id, name))
    written = [name for name in documents if published[name] != before.get(name)]
    written += [layout.WEEKS_PREFIX + name for name in weeks]
    return written + await _publish_paths(run)


async def _publish_paths(run: _Run) -> list[str]:
    """Write the directories' documents that changed and delete those of directories gone (a
    force-push removed every change under them); when every directory's is written (after a
    run that did not succeed, or without a record of what was), any other under the prefix is
    deleted. Their names."""
    paths = run.paths_export
    if paths is None:
        return []
    for name, document in paths.documents.items():
        await run.storage.put(layout.codebase_document(run.codebase_id, name), document.to_json())
    gone = [layout.codebase_document(run.codebase_id, name) for name in paths.gone]
    if paths.everything:
        prefix = layout.paths_documents(run.codebase_id)
        kept = {layout.codebase_document(run.codebase_id, name) for name in paths.documents}
        gone += [key for key in await run.storage.list(prefix) if key not in kept]
    for key in gone:
        await run.storage.delete(key)
    return list(paths.documents)


def _full_name(run: _Run) -> str:
    return run.full_name or run.manifest.full_name or default_full_name(run.source)
