"""Phase 5: files, lines, bytes and languages at the default branch's head, kept per file.

The per-file table is updated from a tree diff, so a push that touches a few paths reads only those
blobs; the result always equals a rebuild from the empty tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pygit2
from pygit2.enums import DiffOption

from worker.engine.classes import PathClass, classes_of, generated_at_head
from worker.engine.languages import classify

SNAPSHOT_SCHEMA = pa.schema(
    [
        pa.field("path", pa.binary(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("lines", pa.int64(), nullable=False),
        pa.field("binary", pa.bool_(), nullable=False),
        pa.field("language", pa.string()),
        pa.field("language_type", pa.string()),
        # What Linguist's rules (enry) make of the file's content: generated or not.
        pa.field("generated", pa.bool_(), nullable=False),
    ]
)

_FILE_TYPE_MASK = 0o170000
_REGULAR_FILE = 0o100000
_SYMLINK = 0o120000
# git decides a blob is binary for diffs by a NUL byte in its first 8000 bytes (buffer_is_binary).
_BINARY_SNIFF_BYTES = 8000
# Only the tree entries are compared; skipping the binary check keeps libgit2 from loading blobs.
_DIFF_FLAGS = DiffOption.SKIP_BINARY_CHECK


@dataclass(frozen=True, slots=True)
class LanguageShare:
    language: str
    type: str | None
    bytes: int
    files: int


@dataclass(frozen=True, slots=True)
class SnapshotSummary:
    total_files: int
    total_lines: int
    total_bytes: int
    languages: list[LanguageShare]
    primary_language: str | None


class _FileRow(NamedTuple):
    """One row of the table, in SNAPSHOT_SCHEMA's order."""

    path: bytes
    size: int
    lines: int
    binary: bool
    language: str | None
    language_type: str | None
    generated: bool


def empty_snapshot() -> pa.Table:
    return SNAPSHOT_SCHEMA.empty_table()


def update_snapshot(
    repo: pygit2.Repository,
    table: pa.Table | None,
    old_tree: pygit2.Tree | None,
    new_tree: pygit2.Tree | None,
) -> pa.Table:
    """Return the snapshot of `new_tree`, given `table`, the snapshot of `old_tree`.

    Without a table or an old tree the snapshot is rebuilt from the empty tree.
    """
    if new_tree is None:
        return empty_snapshot()
    if table is None or old_tree is None:
        table, old_tree = empty_snapshot(), None
    diff = (
        new_tree.diff_to_tree(flags=_DIFF_FLAGS, swap=True)
        if old_tree is None
        else old_tree.diff_to_tree(new_tree, flags=_DIFF_FLAGS)
    )
    # Reading raw from the object database inflates each blob once; repo[oid] then
    # Blob.read_raw() reads it twice.
    odb = repo.odb
    touched: set[bytes] = set()
    rows: list[_FileRow] = []
    # Without rename detection a delta's old and new paths are the same (a deletion's new side
    # keeps the path), and a type change comes as a deletion plus an addition of that path:
    # dropping every touched path and reading every new blob covers additions, modifications,
    # deletions, chmods and blob/gitlink changes alike.
    for delta in diff.deltas:
        new_file = delta.new_file
        touched.add(new_file.raw_path)
        kind = new_file.mode & _FILE_TYPE_MASK
        if kind in (_REGULAR_FILE, _SYMLINK):
            rows.append(_read_file(odb, new_file.raw_path, new_file.id, kind == _SYMLINK))
    if not touched:
        return table
    kept = table.filter(
        pc.invert(pc.is_in(table["path"], value_set=pa.array(touched, pa.binary())))
    )
    added = pa.Table.from_pylist([row._asdict() for row in rows], schema=SNAPSHOT_SCHEMA)
    # Sorted by path so that equal snapshots are equal tables, whatever their history.
    return pa.concat_tables([kept, added]).sort_by("path").combine_chunks()


def _read_file(odb: pygit2.Odb, path: bytes, oid: pygit2.Oid, is_symlink: bool) -> _FileRow:
    _type, data = odb.read(oid)
    generated = generated_at_head(path, data, not is_symlink)
    binary = data.find(b"\0", 0, _BINARY_SNIFF_BYTES) != -1
    if binary:
        return _FileRow(path, len(data), 0, True, None, None, generated)
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    # Linguist never classifies symlinks: they count as files but have no language.
    if is_symlink:
        return _FileRow(path, len(data), lines, False, None, None, generated)
    # enry takes str paths and encodes them as strict UTF-8, so undecodable bytes are replaced.
    language = classify(path.decode("utf-8", errors="replace"), data)
    return _FileRow(path, len(data), lines, False, language.language, language.type, generated)


def summarize_snapshot(table: pa.Table, classes: pa.Table) -> SnapshotSummary:
    """Totals and languages; a language counts the files of class source (`classes`: the path
    classes at the same head), as Linguist leaves out vendored, generated and documentation
    files."""
    source = pc.equal(classes_of(classes, table["path"]), int(PathClass.SOURCE))
    counted = table.filter(pc.and_(source, pc.is_valid(table["language"])))
    by_language = counted.group_by(["language", "language_type"]).aggregate(
        [("size", "sum"), ("path", "count")]
    )
    shares = [
        LanguageShare(row["language"], row["language_type"], row["size_sum"], row["path_count"])
        for row in by_language.to_pylist()
    ]
    shares.sort(key=lambda share: (-share.bytes, share.language))
    primary = next((share.language for share in shares if share.type == "programming"), None)
    return SnapshotSummary(
        total_files=table.num_rows,
        total_lines=pc.sum(table["lines"]).as_py() or 0,
        total_bytes=pc.sum(table["size"]).as_py() or 0,
        languages=shares,
        primary_language=primary,
    )


def snapshot_to_parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def snapshot_from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data), schema=SNAPSHOT_SCHEMA)
