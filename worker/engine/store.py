"""Phase 4: the engine's durable state in storage: Parquet parts of commit and file rows, and a
manifest that names them along with the branch heads they account for.

The manifest is the commit point of a run: parts are uploaded first under fresh names, then the
manifest is swapped in with a conditional write, and only then are replaced parts deleted. A run
that dies half way leaves the previous manifest, and the data it names, intact.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from contract import layout
from contract.cache import MISSING, BoundedCache
from contract.storage import PreconditionFailed, Storage, StorageError
from worker.engine.branches import Divergence
from worker.engine.classes import CLASSES_SCHEMA
from worker.engine.extract import COMMITS_SCHEMA, FILES_SCHEMA
from worker.engine.paths import PATH_TABLES, PathState, Window
from worker.engine.provenance import PROVENANCE_SCHEMA
from worker.engine.provenance_state import ProvenanceState
from worker.engine.sha_index import ShaIndex
from worker.engine.tally import CELLS_SCHEMA, COAUTHORED_SCHEMA, Tally, read_cells, write_cells

# 2: commit rows carry their co-authors, the tally the authored figures. A state of another
# version is not read: the next run builds the codebase's state again from nothing.
MANIFEST_VERSION = 2
# The two files of a part.
KINDS = ("commits", "files")
# Past this many parts, the smallest are merged into one so that half as many remain: reads stay
# a few dozen files, and what is rewritten is mostly pushes' small parts (a backfill's
# checkpointed parts, about pipeline.CHECKPOINT_PARTS of them, are the large ones).
MAX_PARTS = 32


# State tables are written once under a fresh name and never changed: a worker process keeps
# those it last wrote or read in memory, by this machine's copy's path, so that the next push of
# a codebase reads only what is new (the tally's journal grows by one object per push, the
# per-path state is written whole). At most this many bytes of them.
STATE_MEMORY_BYTES = 512 * 1024 * 1024
_TABLES: BoundedCache[str, pa.Table] = BoundedCache(max_entries=16_384, max_cost=STATE_MEMORY_BYTES)
# What an aggregation leaves for the next (CodebaseState.remember_kept): each person's
# contributor_activity weeks (JSON) by key, whether each person was a bot, each activity
# series' periods' JSON by first day; in memory by work dir with what it was counted from.
KeptAggregates = tuple[dict[str, str], dict[str, bool], dict[str, dict[int, str]]]
_KEPT: BoundedCache[str, tuple[str, KeptAggregates]] = BoundedCache(
    max_entries=256, max_cost=STATE_MEMORY_BYTES // 4
)


# The line provenance a run left, by work dir, with the manifest's names of what it was read
# from (CodebaseState.load_provenance).
_PROVENANCE: BoundedCache[str, tuple[tuple[str, ...], ProvenanceState]] = BoundedCache(
    max_entries=256, max_cost=STATE_MEMORY_BYTES // 2
)


def forget_state() -> None:
    """Drop what this process keeps of the state (as a new process starts without it)."""
    _TABLES.clear()
    _KEPT.clear()
    _PROVENANCE.clear()


class PartRef(BaseModel):
    name: str
    commits: int
    files: int


class PublishedDocument(BaseModel):
    """A document as last written to storage: its content hash and the stored object's version."""

    hash: str
    version: str


# What the last run on this machine left for the next (CodebaseState.load_kept).
KEPT_FILE = "kept.arrow"
_KEPT_SCHEMA = pa.schema(
    [("kind", pa.string()), ("key", pa.string()), ("bot", pa.bool_()), ("text", pa.string())]
)
# How many pushes' tallies a manifest's tally journal holds before they are folded into one.
TALLY_JOURNAL_LIMIT = 16


class Manifest(BaseModel):
    schema_version: int = MANIFEST_VERSION
    codebase_id: int
    full_name: str | None = None
    default_branch: str | None = None
    refs: dict[str, str] = {}
    parts: list[PartRef] = []
    snapshot_head: str | None = None
    snapshot_key: str | None = None
    # What the documents in storage are, as far as this codebase's runs know: a document is
    # written again unless it is still the very object published with the same content.
    published: dict[str, PublishedDocument] = {}
    divergence: dict[str, Divergence] = {}
    # The aggregates' additive state (worker/engine/tally.py): its cells' object (the
    # co-authored commits' object beside it), and the punch card as [weekday, hour, commits]
    # rows. No key: counted from the parts on the next run.
    tally_key: str | None = None
    # What pushes added since, oldest first: each a tally of its own (cells, co-authored commits
    # beside them) loaded with it, so that a push writes its own few cells and not the whole
    # history's; folded into a new tally_key after TALLY_JOURNAL_LIMIT of them.
    tally_journal: list[str] = []
    punch_card: list[list[int]] = []
    # The rules the tally was counted with: the path classes' object (worker/engine/classes.py)
    # and the ignored revisions. When they change, the tally is counted again.
    classes_key: str | None = None
    ignored_revisions: list[str] = []
    # The per-path state (worker/engine/paths.py): its cells' object, its other tables beside
    # it (paths_tables); the window of its recent rows.
    paths_key: str | None = None
    paths_window: Window | None = None
    # Per team (worker/engine/teams.py, by owner key): its commits; what the owners kept with
    # the per-path state were matched with (a digest of the CODEOWNERS file used, "" for none).
    team_commits: dict[str, int] = {}
    codeowners: str | None = None
    # Line provenance (worker/engine/provenance_state.py): the base table of runs, the tables
    # that replaced some files' runs since, and the default head they are git blame's at.
    provenance_key: str | None = None
    provenance_journal: list[str] = []
    provenance_head: str | None = None

    def objects(self) -> set[str]:
        """The keys of every state object this manifest names, its own included."""
        named = {key for ref in self.parts for key in _part_keys(self.codebase_id, ref.name)}
        named.add(layout.manifest(self.codebase_id))
        for key in [self.tally_key, *self.tally_journal] if self.tally_key else []:
            named |= {key, coauthored_of(key)}
        if self.paths_key:
            named |= set(paths_tables(self.paths_key))
        named |= {key for key in (self.snapshot_key, self.classes_key, self.provenance_key) if key}
        named |= set(self.provenance_journal)
        return named


class Checkpoint(BaseModel):
    """The parts a long extraction has uploaded so far, not yet named by any manifest: what a
    later run of the same codebase may take over instead of extracting those commits again.

    A commit's rows depend on nothing but the commit, so a checkpoint stays valid whatever
    happened since; the run that resumes keeps only the rows of commits it is to add."""

    parts: list[PartRef] = []


class StateConflict(StorageError):
    """Another run changed this codebase's manifest while we worked."""


def _part_keys(codebase_id: int, name: str) -> tuple[str, str]:
    return (
        layout.state_object(codebase_id, f"parts/{name}.commits.parquet"),
        layout.state_object(codebase_id, f"parts/{name}.files.parquet"),
    )


@dataclass
class PartFiles:
    ref: PartRef
    commits: Path
    files: Path


class PartWriter:
    """Streams (commits, files) tables into one new part's two local Parquet files."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.name = uuid.uuid4().hex
        self.commits_path = directory / f"{self.name}.commits.parquet"
        self.files_path = directory / f"{self.name}.files.parquet"
        self._commits = pq.ParquetWriter(self.commits_path, COMMITS_SCHEMA, compression="zstd")
        self._files = pq.ParquetWriter(self.files_path, FILES_SCHEMA, compression="zstd")
        self.commit_rows = 0
        self.file_rows = 0

    def write(self, commits: pa.Table, files: pa.Table) -> None:
        self._commits.write_table(commits)
        self._files.write_table(files)
        self.commit_rows += commits.num_rows
        self.file_rows += files.num_rows

    def close(self) -> PartFiles:
        self._commits.close()
        self._files.close()
        return PartFiles(
            PartRef(name=self.name, commits=self.commit_rows, files=self.file_rows),
            self.commits_path,
            self.files_path,
        )


class CodebaseState:
    """One codebase's state in storage, with a local cache of its (immutable) parts."""

    def __init__(self, storage: Storage, codebase_id: int, cache_dir: Path) -> None:
        self.storage = storage
        self.codebase_id = codebase_id
        self.cache_dir = cache_dir
        self.parts_dir = cache_dir / "parts"
        self.tally_dir = cache_dir / "tally"
        self.sha_index = ShaIndex(cache_dir)
        self._manifest_etag: str | None = None
        # The stored manifest was of another version: its objects are left for a tidy run.
        self.outdated = False

    def load_kept(self, basis: str) -> KeptAggregates | None:
        """What the last run on this machine left for the next (save_kept) when it counted from
        `basis`; None if it left nothing for it. Kept on this machine only: another one counts
        it all afresh."""
        remembered = _KEPT.get(str(self.cache_dir))
        if remembered is not MISSING:
            return remembered[1] if remembered[0] == basis else None
        try:
            with pa.memory_map(str(self.cache_dir / KEPT_FILE)) as source:
                table = pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowInvalid):
            return None
        if (table.schema.metadata or {}).get(b"basis") != basis.encode():
            return None
        weeks: dict[str, str] = {}
        bots: dict[str, bool] = {}
        series: dict[str, dict[int, str]] = {"week": {}, "month": {}}
        for kind, key, bot, text in zip(*table.to_pydict().values(), strict=True):
            if kind == "person":
                bots[key] = bot
                if text is not None:
                    weeks[key] = text
            else:
                series[kind][int(key)] = text
        return weeks, bots, series

    def remember_kept(self, basis: str, kept: KeptAggregates) -> None:
        """Leave for the next run in this process what this one counted from `basis`: each
        person's contributor_activity weeks (JSON) and whether a bot, each activity period's
        JSON; save_kept leaves it on this machine."""
        weeks, _bots, series = kept
        cost = sum(map(len, weeks.values())) + sum(
            sum(map(len, periods.values())) for periods in series.values()
        )
        _KEPT.put(str(self.cache_dir), (basis, kept), cost=cost)

    def save_kept(self, basis: str, kept: KeptAggregates) -> None:
        """Leave on this machine what remember_kept leaves in this process."""
        weeks, bots, series = kept
        rows: dict[str, list[Any]] = {"kind": [], "key": [], "bot": [], "text": []}
        for key, bot in bots.items():
            for column, value in zip(rows, ("person", key, bot, weeks.get(key)), strict=True):
                rows[column].append(value)
        for unit, periods in series.items():
            for day, text in periods.items():
                for column, value in zip(rows, (unit, str(day), None, text), strict=True):
                    rows[column].append(value)
        table = pa.table(rows, schema=_KEPT_SCHEMA).replace_schema_metadata({"basis": basis})
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.cache_dir / f"{KEPT_FILE}.{uuid.uuid4().hex}"
        with pa.ipc.new_file(temporary, table.schema) as writer:
            writer.write_table(table)
        os.replace(temporary, self.cache_dir / KEPT_FILE)

    async def load_manifest(self) -> Manifest:
        """The codebase's manifest; an empty one if it has none or one of another version
        (whose objects a tidy run then collects)."""
        stored = await self.storage.get(layout.manifest(self.codebase_id))
        if stored is None:
            self._manifest_etag = None
            return Manifest(codebase_id=self.codebase_id)
        self._manifest_etag = stored.etag
        manifest = Manifest.model_validate_json(stored.data)
        if manifest.schema_version != MANIFEST_VERSION:
            self.outdated = True
            return Manifest(codebase_id=self.codebase_id)
        return manifest

    async def save_manifest(self, manifest: Manifest) -> None:
        """Swap the manifest in; StateConflict if it changed since load_manifest."""
        try:
            self._manifest_etag = await self.storage.put_if(
                layout.manifest(self.codebase_id),
                manifest.model_dump_json().encode(),
                self._manifest_etag,
            )
        except PreconditionFailed:
            raise StateConflict(
                f"codebase {self.codebase_id}: state changed by another run"
            ) from None

    async def load_checkpoint(self) -> list[PartFiles]:
        """Local copies of the parts the codebase's checkpoint names (none if it has none); a
        part whose objects are gone is left out."""
        stored = await self.storage.get(self._checkpoint_key)
        if stored is None:
            return []
        try:
            checkpoint = Checkpoint.model_validate_json(stored.data)
        except ValueError:
            return []  # unreadable: started over, as if there were none
        parts = []
        for ref in checkpoint.parts:
            try:
                part = await self.local_parts([ref])
                # A part written by a version of the engine with other columns is of no use.
                if pq.read_schema(part[0].commits).names == COMMITS_SCHEMA.names:
                    parts += part
            except StorageError:
                if await self._part_stored(ref):
                    raise
                for kind in KINDS:  # what half of it was downloaded
                    (self.parts_dir / f"{ref.name}.{kind}.parquet").unlink(missing_ok=True)
        return parts

    async def save_checkpoint(self, parts: Iterable[PartRef]) -> None:
        checkpoint = Checkpoint(parts=list(parts))
        await self.storage.put(self._checkpoint_key, checkpoint.model_dump_json().encode())

    async def delete_checkpoint(self) -> None:
        await self.storage.delete(self._checkpoint_key)

    @property
    def _checkpoint_key(self) -> str:
        return layout.state_object(self.codebase_id, "checkpoint.json")

    async def _part_stored(self, ref: PartRef) -> bool:
        keys = _part_keys(self.codebase_id, ref.name)
        return all([await self.storage.stat(key) is not None for key in keys])

    def new_part(self) -> PartWriter:
        return PartWriter(self.parts_dir)

    async def upload_part(self, part: PartFiles) -> None:
        commits_key, files_key = _part_keys(self.codebase_id, part.ref.name)
        await self.storage.upload_file(part.files, files_key)
        await self.storage.upload_file(part.commits, commits_key)

    async def local_parts(self, parts: Iterable[PartRef]) -> list[PartFiles]:
        """Local copies of the parts, downloading those this machine has not seen."""
        result = []
        for ref in parts:
            files = PartFiles(
                ref,
                self.parts_dir / f"{ref.name}.commits.parquet",
                self.parts_dir / f"{ref.name}.files.parquet",
            )
            for path, key in zip(
                (files.commits, files.files), _part_keys(self.codebase_id, ref.name), strict=True
            ):
                if not path.exists():
                    self.parts_dir.mkdir(parents=True, exist_ok=True)
                    await self.storage.download_file(key, path)
            result.append(files)
        return result

    async def _local_copy(self, key: str) -> Path | None:
        """This machine's copy of the state object at `key` (downloaded if it lacks one); None
        if the object is gone."""
        path = self._tally_path(key)
        if not path.exists():
            self.tally_dir.mkdir(parents=True, exist_ok=True)
            try:
                await self.storage.download_file(key, path)
            except StorageError:
                if await self.storage.stat(key) is None:
                    return None
                raise
        return path

    async def _table(self, key: str, schema: pa.Schema) -> pa.Table | None:
        """The state table stored at `key`: from this process's memory, or this machine's copy
        (downloaded if it lacks one); None if the object is gone."""
        path = self._tally_path(key)
        table = _TABLES.get(str(path))
        if table is not MISSING:
            return table
        local = await self._local_copy(key)
        if local is None:
            return None
        table = read_cells(local, schema)
        _TABLES.put(str(path), table, cost=table.nbytes)
        return table

    async def load_tally(self, manifest: Manifest) -> Tally | None:
        """The tally `manifest` names; None if it names none, or its objects are gone."""
        if manifest.tally_key is None:
            return None
        cells, coauthored = [], []
        for key in [manifest.tally_key, *manifest.tally_journal]:
            cells_table = await self._table(key, CELLS_SCHEMA)
            coauthored_table = await self._table(coauthored_of(key), COAUTHORED_SCHEMA)
            if cells_table is None or coauthored_table is None:
                return None
            cells.append(cells_table)
            coauthored.append(coauthored_table)
        return Tally.from_stored(
            pa.concat_tables(cells), manifest.punch_card, pa.concat_tables(coauthored)
        )

    async def save_tally(self, tally: Tally) -> str:
        """Upload the tally's cells and co-authored commits under a new key (the latter beside
        it), which the next manifest names as its tally or in its journal."""
        key = layout.state_object(self.codebase_id, f"tally/{uuid.uuid4().hex}.arrow")
        await self._put_tables(
            [
                (tally.coauthored, coauthored_of(key), COAUTHORED_SCHEMA),
                (tally.cells, key, CELLS_SCHEMA),
            ]
        )
        return key

    async def delete_tally(self, key: str) -> None:
        await self._delete_tables([key, coauthored_of(key)])

    async def load_paths(self, manifest: Manifest) -> PathState | None:
        """The per-path state `manifest` names; None if it names none, or it is gone."""
        if manifest.paths_key is None:
            return None
        tables = []
        for key, schema in zip(paths_tables(manifest.paths_key), PATH_TABLES, strict=True):
            table = await self._table(key, schema)
            if table is None:
                return None
            tables.append(table)
        cells, shared, recent, entries, owners = tables
        return PathState(cells, shared, recent, manifest.paths_window, entries, owners)

    async def save_paths(self, state: PathState) -> str:
        """Upload the per-path state's tables under a new key, which the next manifest names
        (with the state's window)."""
        key = layout.state_object(self.codebase_id, f"tally/{uuid.uuid4().hex}.paths.arrow")
        keys = paths_tables(key)
        tables = [state.cells, state.shared, state.recent, state.entries, state.owners]
        written = list(zip(tables, keys, PATH_TABLES, strict=True))
        # The cells last: the others are beside a key only once it is complete.
        await self._put_tables([*written[1:], written[0]])
        return key

    async def delete_paths(self, key: str) -> None:
        await self._delete_tables(paths_tables(key))

    async def load_classes(self, manifest: Manifest) -> pa.Table | None:
        """The path classes `manifest` names; None if it names none, or they are gone."""
        if manifest.classes_key is None:
            return None
        return await self._table(manifest.classes_key, CLASSES_SCHEMA)

    async def save_classes(self, table: pa.Table) -> str:
        key = layout.state_object(self.codebase_id, f"tally/{uuid.uuid4().hex}.classes.arrow")
        await self._put_tables([(table, key, CLASSES_SCHEMA)])
        return key

    async def delete_classes(self, key: str) -> None:
        await self._delete_tables([key])

    async def load_provenance(self, manifest: Manifest) -> ProvenanceState | None:
        """The line provenance `manifest` names (its base table, then its journal's); None if
        it names none, or an object is gone. What this process left (remember_provenance) is
        taken instead of read: the caller changes it."""
        if manifest.provenance_key is None or manifest.provenance_head is None:
            return None
        basis = (manifest.provenance_key, *manifest.provenance_journal)
        remembered = _PROVENANCE.get(str(self.cache_dir))
        _PROVENANCE.pop(str(self.cache_dir))
        if remembered is not MISSING and remembered[0] == basis:
            return remembered[1]
        state = None
        for key in basis:
            table = await self._local_table(key, PROVENANCE_SCHEMA)
            if table is None:
                return None
            if state is None:
                state = ProvenanceState.from_table(manifest.provenance_head, table)
            else:
                state.replace_from(table)
        return state

    def remember_provenance(self, manifest: Manifest, state: ProvenanceState) -> None:
        """Keep `state` in this process as what `manifest` names (load_provenance takes it)."""
        if manifest.provenance_key is None:
            return
        basis = (manifest.provenance_key, *manifest.provenance_journal)
        # Measured on git/git: 535,501 runs of 4,843 files take 119 MiB of Python objects.
        cost = 240 * sum(map(len, state.runs.values())) + 1024 * len(state.runs)
        _PROVENANCE.put(str(self.cache_dir), (basis, state), cost=cost)

    async def save_provenance(self, rows: pa.Table) -> str:
        """Store a provenance table (a base or a journal's) under a new key; its key."""
        key = layout.state_object(self.codebase_id, f"tally/{uuid.uuid4().hex}.provenance.arrow")
        await self._put_tables([(rows, key, PROVENANCE_SCHEMA)], remember=False)
        return key

    async def delete_provenance(self, key: str) -> None:
        await self._delete_tables([key])

    async def _put_tables(
        self, tables: list[tuple[pa.Table, str, pa.Schema]], remember: bool = True
    ) -> None:
        """Write each table (of `schema`) to this machine's copy of its key, then upload it, in
        order; this process keeps it in memory as reading it back would give it (unless not
        to `remember`)."""
        for table, key, schema in tables:
            path = self._tally_path(key)
            write_cells(table, path)
            await self.storage.upload_file(path, key)
            if remember:
                kept = table.cast(schema)
                _TABLES.put(str(path), kept, cost=kept.nbytes)

    async def _local_table(self, key: str, schema: pa.Schema) -> pa.Table | None:
        """The state table stored at `key`, from this machine's copy (downloaded if it lacks
        one), not kept in memory; None if the object is gone."""
        local = await self._local_copy(key)
        return None if local is None else read_cells(local, schema)

    async def _delete_tables(self, keys: list[str]) -> None:
        for key in keys:
            await self.storage.delete(key)
            path = self._tally_path(key)
            _TABLES.pop(str(path))
            path.unlink(missing_ok=True)

    def _tally_path(self, key: str) -> Path:
        """Where the tally stored at `key` is kept on this machine."""
        return self.tally_dir / key.rsplit("/", 1)[-1]

    async def collect_garbage(self, manifest: Manifest) -> list[str]:
        """Delete the state objects `manifest` does not name (parts and snapshots a run uploaded
        before it died or lost its commit), and the local parts nothing names; the keys
        deleted. Only for the one run that owns the codebase: another's uploads look the same."""
        named = manifest.objects()
        garbage = [
            key
            for key in await self.storage.list(layout.state_prefix(self.codebase_id))
            if key not in named
        ]
        for key in garbage:
            await self.storage.delete(key)
        local_names = {f"{ref.name}.{kind}.parquet" for ref in manifest.parts for kind in KINDS}
        local_names |= {
            self._tally_path(key).name
            for key in manifest.objects()
            if key.startswith(layout.state_object(self.codebase_id, "tally/"))
        }
        for folder in (self.parts_dir, self.tally_dir):
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.name not in local_names:
                        path.unlink(missing_ok=True)
        return garbage

    async def delete_parts(self, parts: Iterable[PartRef]) -> None:
        for ref in parts:
            for key in _part_keys(self.codebase_id, ref.name):
                await self.storage.delete(key)
            for kind in KINDS:
                (self.parts_dir / f"{ref.name}.{kind}.parquet").unlink(missing_ok=True)


def coauthored_of(tally_key: str) -> str:
    """Where a tally's co-authored commits are stored, beside its cells."""
    return tally_key.removesuffix(".arrow") + ".coauthored.arrow"


def paths_tables(paths_key: str) -> list[str]:
    """The keys of the per-path state's tables (paths.PATH_TABLES' order): its cells at
    `paths_key`, the others beside it."""
    stem = paths_key.removesuffix(".arrow")
    others = ("shared", "recent", "entries", "owners")
    return [paths_key, *(f"{stem}.{name}.arrow" for name in others)]


def stored_shas(parts: Iterable[PartFiles]) -> set[str]:
    shas: set[str] = set()
    for part in parts:
        shas.update(pq.read_table(part.commits, columns=["sha"]).column("sha").to_pylist())
    return shas


def drop_commits(
    parts: list[PartFiles], removed: set[str], writer_dir: Path
) -> tuple[list[PartFiles], list[PartRef]]:
    """Rewrite the parts that hold any of `removed` without them.

    Returns the new list of parts and the refs of the parts it replaced.
    """
    if not removed:
        return parts, []
    gone = pa.array(sorted(removed), pa.string())
    kept: list[PartFiles] = []
    replaced: list[PartRef] = []
    for part in parts:
        shas = pq.read_table(part.commits, columns=["sha"]).column("sha")
        if not pc.any(pc.is_in(shas, value_set=gone)).as_py():
            kept.append(part)
            continue
        commits = pq.read_table(part.commits)
        files = pq.read_table(part.files)
        writer = PartWriter(writer_dir)
        writer.write(
            commits.filter(pc.invert(pc.is_in(commits.column("sha"), value_set=gone))),
            files.filter(pc.invert(pc.is_in(files.column("sha"), value_set=gone))),
        )
        replaced.append(part.ref)
        new = writer.close()
        if new.ref.commits:
            kept.append(new)
        else:
            new.commits.unlink()
            new.files.unlink()
    return kept, replaced


def compact_parts(
    parts: list[PartFiles], writer_dir: Path
) -> tuple[list[PartFiles], list[PartRef]]:
    """Once there are more than MAX_PARTS parts, merge the smallest into one, leaving
    MAX_PARTS // 2. Returns the new list of parts and the refs of those merged."""
    if len(parts) <= MAX_PARTS:
        return parts, []
    small = sorted(parts, key=lambda part: part.ref.commits)[: len(parts) - MAX_PARTS // 2 + 1]
    writer = PartWriter(writer_dir)
    for part in small:
        writer.write(pq.read_table(part.commits), pq.read_table(part.files))
    merged = writer.close()
    return [p for p in parts if p not in small] + [merged], [p.ref for p in small]
