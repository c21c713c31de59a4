"""The aggregates' additive state: what phase 6 keeps between runs so that a push costs what it
adds, not what the history holds.

A *cell* sums the commits of one raw identity (author name and email as recorded) in one week
and one month (a week that straddles two months makes two cells): commits, merges, lines and
bytes, clamped dates, and the first and last commit (time, and sha to break ties). The punch card
is 168 counters. Added commits add their cells; removed commits (a force-push, a deleted branch)
take their counters off the punch card, and their cells are counted again from the stored
commit rows, as a minimum or a maximum cannot be subtracted. Every document is made from the
cells and the punch card (`aggregate.aggregate_tally`), never from the commits: the mailmap is
applied over the identities, a few thousand rows, so a `.mailmap` change re-keys without touching
the history, and distinct contributors per period stay exact because the identities of each
period are in its cells.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from worker.engine.extract import EARLIEST_TIME, LATEST_TIME

KEY = ("author_name", "author_email", "week", "month")
CELLS_SCHEMA = pa.schema(
    [
        ("author_name", pa.string()),
        ("author_email", pa.string()),
        ("week", pa.date32()),
        ("month", pa.date32()),
        ("commits", pa.int64()),
        ("merges", pa.int64()),
        ("additions_lines", pa.int64()),
        ("deletions_lines", pa.int64()),
        ("addition_bytes", pa.int64()),
        ("deletion_bytes", pa.int64()),
        # Commits whose author date git records outside the years 1 to 9999 (stored clamped).
        ("clamped", pa.int64()),
        ("first_time", pa.int64()),
        ("last_time", pa.int64()),
        ("last_sha", pa.string()),  # of the latest (time, sha): whose name the key shows
    ]
)
# The commit columns the cells and the punch card are made of.
COMMIT_COLUMNS = (
    "sha",
    "is_merge",
    "author_name",
    "author_email",
    "author_time",
    "author_offset",
    "additions_lines",
    "deletions_lines",
    "addition_bytes",
    "deletion_bytes",
)

PunchCard = Counter[tuple[int, int]]  # (weekday 0 = Monday, hour) -> commits


@dataclass
class Tally:
    cells: pa.Table
    punch: PunchCard = field(default_factory=Counter)

    def punch_rows(self) -> list[list[int]]:
        return [[d, h, n] for (d, h), n in sorted(self.punch.items()) if n]

    @classmethod
    def from_stored(cls, cells: pa.Table, punch: Sequence[Sequence[int]]) -> Tally:
        return cls(cells, Counter({(d, h): n for d, h, n in punch}))


_EMPTY_COMMITS = (
    "CREATE TEMP TABLE commits (sha VARCHAR, is_merge BOOLEAN, author_name VARCHAR,"
    " author_email VARCHAR, author_time BIGINT, author_offset SMALLINT,"
    " additions_lines BIGINT, deletions_lines BIGINT, addition_bytes BIGINT,"
    " deletion_bytes BIGINT)"
)

_CELLS = f"""
    WITH c AS (SELECT *, make_timestamp(author_time * 1000000) AS t FROM commits)
    SELECT author_name, author_email,
           date_trunc('week', t)::DATE AS week, date_trunc('month', t)::DATE AS month,
           count(*) AS commits,
           count(*) FILTER (WHERE is_merge) AS merges,
           sum(additions_lines)::BIGINT AS additions_lines,
           sum(deletions_lines)::BIGINT AS deletions_lines,
           sum(addition_bytes)::BIGINT AS addition_bytes,
           sum(deletion_bytes)::BIGINT AS deletion_bytes,
           count(*) FILTER (
               WHERE author_time NOT BETWEEN {EARLIEST_TIME + 1} AND {LATEST_TIME - 1}
           ) AS clamped,
           min(author_time) AS first_time,
           max(author_time) AS last_time,
           arg_max(sha, (author_time, sha)) AS last_sha
    FROM c {{only}}
    GROUP BY ALL
"""

_PUNCH = """
    WITH local AS (
        SELECT make_timestamp((author_time + author_offset::BIGINT * 60) * 1000000) AS t
        FROM commits)
    SELECT isodow(t) - 1 AS weekday, hour(t) AS hour, count(*) AS commits
    FROM local GROUP BY 1, 2
"""

_MERGE = """
    SELECT author_name, author_email, week, month,
           sum(commits)::BIGINT AS commits, sum(merges)::BIGINT AS merges,
           sum(additions_lines)::BIGINT AS additions_lines,
           sum(deletions_lines)::BIGINT AS deletions_lines,
           sum(addition_bytes)::BIGINT AS addition_bytes,
           sum(deletion_bytes)::BIGINT AS deletion_bytes,
           sum(clamped)::BIGINT AS clamped,
           min(first_time) AS first_time, max(last_time) AS last_time,
           arg_max(last_sha, (last_time, last_sha)) AS last_sha
    FROM (SELECT * FROM a UNION ALL SELECT * FROM b)
    GROUP BY ALL
"""


_database: duckdb.DuckDBPyConnection | None = None
_database_lock = threading.Lock()


def connection() -> duckdb.DuckDBPyConnection:
    """A connection of its own (close it) to the process's one in-memory DuckDB: opening a
    database costs 10 ms or more, a cursor on it a fraction of one. What a caller registers or
    creates as TEMP stays its own."""
    global _database
    with _database_lock:
        if _database is None:
            _database = duckdb.connect()
        return _database.cursor()


def _connect(commit_files: Sequence[Path] | pa.Table) -> duckdb.DuckDBPyConnection:
    """A connection whose table `commits` holds the given commit rows (Parquet parts or a
    table), only the columns the tally needs."""
    con = connection()
    columns = ", ".join(COMMIT_COLUMNS)
    if isinstance(commit_files, pa.Table):
        con.register("given", commit_files)
        con.execute(f"CREATE TEMP VIEW commits AS SELECT {columns} FROM given")
    elif commit_files:
        files = [str(p) for p in commit_files]
        con.register("commits", con.read_parquet(files).select(columns))
    else:
        con.execute(_EMPTY_COMMITS)
    return con


def _table(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    table = con.sql(sql).to_arrow_table()
    assert table is not None
    return table


def _cells(con: duckdb.DuckDBPyConnection, only: str = "") -> pa.Table:
    return _table(con, _CELLS.format(only=only)).cast(CELLS_SCHEMA)


def _punch(con: duckdb.DuckDBPyConnection) -> PunchCard:
    return Counter({(d, h): n for d, h, n in con.execute(_PUNCH).fetchall()})


# Up to this many commit rows are counted in Python (a push): DuckDB's start in a fresh process
# and its per-query set-up cost more than the count of a few commits.
SMALL_TALLY = 1000
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()  # days since 1970 + this = a date's ordinal
_DAY = 86_400


def _rows(commits: Sequence[Path] | pa.Table) -> int:
    if isinstance(commits, pa.Table):
        return commits.num_rows
    return sum(pq.read_metadata(path).num_rows for path in commits)


def _small_tally(commits: Sequence[Path] | pa.Table) -> Tally:
    """What `_CELLS` and `_PUNCH` count, in Python. Days and hours by arithmetic on the epoch
    seconds (a week starts on Monday, 1970-01-01 was a Thursday), so the clamped extremes of the
    years 1 and 9999, and their local times beyond them, count as in DuckDB."""
    if isinstance(commits, pa.Table):
        table = commits.select(list(COMMIT_COLUMNS))
    elif commits:
        table = pa.concat_tables(
            [pq.read_table(path, columns=list(COMMIT_COLUMNS)) for path in commits]
        )
    else:
        return Tally(CELLS_SCHEMA.empty_table())
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}
    punch: PunchCard = Counter()
    for row in table.to_pylist():
        time = row["author_time"]
        days = time // _DAY
        _fold(
            cells,
            {
                "author_name": row["author_name"],
                "author_email": row["author_email"],
                "week": date.fromordinal(EPOCH_ORDINAL + days - (days + 3) % 7),
                "month": date.fromordinal(EPOCH_ORDINAL + days).replace(day=1),
                "commits": 1,
                "merges": int(row["is_merge"]),
                "additions_lines": row["additions_lines"],
                "deletions_lines": row["deletions_lines"],
                "addition_bytes": row["addition_bytes"],
                "deletion_bytes": row["deletion_bytes"],
                "clamped": int(not EARLIEST_TIME + 1 <= time <= LATEST_TIME - 1),
                "first_time": time,
                "last_time": time,
                "last_sha": row["sha"],
            },
        )
        local = time + row["author_offset"] * 60
        local_days = local // _DAY
        punch[((local_days + 3) % 7, local % _DAY // 3600)] += 1
    return Tally(pa.Table.from_pylist(list(cells.values()), schema=CELLS_SCHEMA), punch)


def tally_commits(commits: Sequence[Path] | pa.Table) -> Tally:
    """The tally of these commit rows (Parquet parts of commits, or a table of them)."""
    if _rows(commits) <= SMALL_TALLY:
        return _small_tally(commits)
    con = _connect(commits)
    try:
        return Tally(_cells(con), _punch(con))
    finally:
        con.close()


def merge_cells(a: pa.Table, b: pa.Table) -> pa.Table:
    """Cells of both, those with the same key summed (first and last: the earlier and later).

    `b` is what a run adds, a few cells for a push: only the cells of `a` that may share a key
    with one of them (same email and week) go through the merge, the rest are kept as they are,
    so a push does not regroup the whole history's cells."""
    if not b.num_rows:
        return a
    if not a.num_rows:
        return b
    near = pc.and_(
        pc.is_in(a.column("author_email"), value_set=pc.unique(b.column("author_email"))),
        pc.is_in(a.column("week"), value_set=pc.unique(b.column("week"))),
    )
    close = a.filter(near)
    if close.num_rows + b.num_rows <= SMALL_TALLY:
        merged = _merge_small(close, b)
    else:
        con = connection()
        try:
            con.register("a", close)
            con.register("b", b)
            merged = _table(con, _MERGE).cast(CELLS_SCHEMA)
        finally:
            con.close()
    return pa.concat_tables([a.filter(pc.invert(near)), merged])


_SUMMED = CELLS_SCHEMA.names[4:11]  # commits to clamped


def _fold(cells: dict[tuple[Any, ...], dict[str, Any]], row: dict[str, Any]) -> None:
    """Add the cell `row` into `cells` (by key), as `_MERGE` sums two cells of one key."""
    key = tuple(row[k] for k in KEY)
    cell = cells.get(key)
    if cell is None:
        cells[key] = row
        return
    for column in _SUMMED:
        cell[column] += row[column]
    cell["first_time"] = min(cell["first_time"], row["first_time"])
    if (row["last_time"], row["last_sha"]) > (cell["last_time"], cell["last_sha"]):
        cell["last_time"], cell["last_sha"] = row["last_time"], row["last_sha"]


def _merge_small(a: pa.Table, b: pa.Table) -> pa.Table:
    """What `_MERGE` does, in Python, for a few cells (a push's)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in a.to_pylist() + b.to_pylist():
        _fold(merged, row)
    return pa.Table.from_pylist(list(merged.values()), schema=CELLS_SCHEMA)


def removed_rows(commit_files: Sequence[Path], removed: set[str]) -> pa.Table:
    """The stored rows of the commits `removed` (read before they are dropped)."""
    con = _connect(commit_files)
    try:
        con.register("removed", pa.table({"sha": pa.array(sorted(removed), pa.string())}))
        return _table(con, "SELECT * FROM commits SEMI JOIN removed USING (sha)")
    finally:
        con.close()


def update(
    tally: Tally, added: Sequence[Path], removed: pa.Table | None, current: Sequence[Path]
) -> Tally:
    """`tally` with the commit rows of the parts `added` added and the rows `removed` taken off.

    `current` are all the parts once the run is done (`added` among them). The cells that
    removed commits touched are counted again from them; the other cells get the added rows'.
    """
    new = tally_commits(added)
    punch = tally.punch + new.punch  # Counter addition drops what reaches zero
    cells, fresh = tally.cells, new.cells
    if removed is not None and removed.num_rows:
        gone = tally_commits(removed)
        punch = punch - gone.punch  # Counter subtraction keeps only what stays above zero
        con = _connect(current)
        try:
            con.register("touched", gone.cells.select(list(KEY)))
            con.register("old", cells)
            con.register("fresh", fresh)
            recounted = _cells(
                con,
                "SEMI JOIN touched ON c.author_name = touched.author_name"
                " AND c.author_email = touched.author_email"
                " AND date_trunc('week', c.t)::DATE = touched.week"
                " AND date_trunc('month', c.t)::DATE = touched.month",
            )
            con.register("recounted", recounted)
            untouched = f"ANTI JOIN touched USING ({', '.join(KEY)})"
            cells = _table(con, f"SELECT * FROM old {untouched}")
            fresh = _table(con, f"SELECT * FROM fresh {untouched}")
            cells = pa.concat_tables([cells.cast(CELLS_SCHEMA), recounted])
            fresh = fresh.cast(CELLS_SCHEMA)
        finally:
            con.close()
    return Tally(merge_cells(cells, fresh), punch)


def write_cells(cells: pa.Table, path: Path) -> None:
    """The cells as an Arrow IPC file, zstd-compressed: a push reads and writes the whole tally,
    which this does several times faster than Parquet for a size within 10 % of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.ipc.new_file(
        path, cells.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")
    ) as writer:
        writer.write_table(cells)


def read_cells(source: Path | bytes) -> pa.Table:
    """Cells written by `write_cells`, or as Parquet (how tallies were stored before)."""
    data = pa.OSFile(str(source)) if isinstance(source, Path) else pa.BufferReader(source)
    with data:
        if data.read(4) == b"PAR1":
            data.seek(0)
            return pq.read_table(data).cast(CELLS_SCHEMA)
        data.seek(0)
        return pa.ipc.open_file(data).read_all().cast(CELLS_SCHEMA)
