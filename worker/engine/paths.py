"""Per-path state (DESIGN.md definition 14): what every directory and file ever changed adds up
to, kept additive like the tally (worker/engine/tally.py) so that a push counts only its own
rows.

A file change counts for its file, for each directory above it and for the root `b""`. The rows
are first grouped per (path, commit), so that a commit counts once for a directory however many
of its files it changes, then per *cell*: one path, one raw identity (author name and email as
recorded), ignored or not. The mailmap and the bots are applied over the identities when the
documents are made, as for the tally; the path classes and the ignored revisions are in the
cells, so a change of them counts the cells again from the stored rows.

Everything is grouped in Arrow, a part of rows at a time: cells of two parts merge by summing
(first and last by min and max).
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from worker.engine.classes import PathClass, classes_of
from worker.engine.tally import Rules

ROOT = b""

KEY = ("path", "author_name", "author_email", "ignored")
PATH_CELLS_SCHEMA = pa.schema(
    [
        ("path", pa.binary()),
        ("author_name", pa.string()),
        ("author_email", pa.string()),
        ("ignored", pa.bool_()),
        ("commits", pa.int64()),
        # Changes to files strictly under the path: a path with some is a directory.
        ("changes_under", pa.int64()),
        ("additions_lines", pa.int64()),
        ("deletions_lines", pa.int64()),
        ("authored_additions_lines", pa.int64()),
        ("authored_deletions_lines", pa.int64()),
        ("first_time", pa.int64()),
        ("last_time", pa.int64()),
    ]
)
_SUMMED = PATH_CELLS_SCHEMA.names[4:10]
# Per (path, commit): what a commit's changes under the path add up to.
PATH_COMMITS_SCHEMA = pa.schema(
    [
        ("path", pa.binary()),
        ("sha", pa.string()),
        ("changes_under", pa.int64()),
        ("additions_lines", pa.int64()),
        ("deletions_lines", pa.int64()),
        ("authored_additions_lines", pa.int64()),
        ("authored_deletions_lines", pa.int64()),
    ]
)


def ancestors(path: bytes) -> list[bytes]:
    """The directories above `path`, nearest first, ending with the root."""
    found = []
    cut = path.rfind(b"/")
    while cut > 0:
        found.append(path[:cut])
        cut = path.rfind(b"/", 0, cut)
    found.append(ROOT)
    return found


def ancestry(paths: Iterable[bytes]) -> pa.Table:
    """(file, path) for each file and each of: itself, its directories, the root."""
    files: list[bytes] = []
    at: list[bytes] = []
    for path in paths:
        chain = [path, *ancestors(path)] if path else [ROOT]
        files += [path] * len(chain)
        at += chain
    return pa.table({"file": pa.array(files, pa.binary()), "at": pa.array(at, pa.binary())})


def path_commits(files: pa.Table, rules: Rules) -> pa.Table:
    """One row per (path, commit) from a commit's file rows (FILES_SCHEMA's sha, path and line
    columns), the authored lines being those of source and documentation files."""
    if not files.num_rows:
        return PATH_COMMITS_SCHEMA.empty_table()
    authored = pc.less_equal(
        classes_of(rules.classes, files.column("path")), int(PathClass.DOCUMENTATION)
    )
    rows = pa.table(
        {
            "sha": files.column("sha"),
            "file": files.column("path"),
            "additions_lines": files.column("additions_lines"),
            "deletions_lines": files.column("deletions_lines"),
            "authored_additions_lines": pc.if_else(authored, files.column("additions_lines"), 0),
            "authored_deletions_lines": pc.if_else(authored, files.column("deletions_lines"), 0),
        }
    )
    chains = ancestry(pc.unique(files.column("path")).to_pylist())
    expanded = rows.join(chains, "file", use_threads=False)
    expanded = expanded.append_column(
        "under", pc.cast(pc.not_equal(expanded.column("file"), expanded.column("at")), pa.int64())
    )
    grouped = expanded.group_by(["at", "sha"], use_threads=False).aggregate(
        [("under", "sum")] + [(column, "sum") for column in PATH_COMMITS_SCHEMA.names[3:]]
    )
    return pa.table(
        {
            "path": grouped.column("at"),
            "sha": grouped.column("sha"),
            "changes_under": grouped.column("under_sum"),
            **{name: grouped.column(f"{name}_sum") for name in PATH_COMMITS_SCHEMA.names[3:]},
        },
        schema=PATH_COMMITS_SCHEMA,
    )


def path_cells(commits: pa.Table, by_path: pa.Table, rules: Rules) -> pa.Table:
    """The cells of these (path, commit) rows; `commits` are the commits' rows (sha, author
    name, email and time at least)."""
    if not by_path.num_rows:
        return PATH_CELLS_SCHEMA.empty_table()
    people = commits.select(["sha", "author_name", "author_email", "author_time"])
    ignored = pa.array(sorted(rules.ignored), pa.string())
    people = people.append_column("ignored", pc.is_in(people.column("sha"), value_set=ignored))
    rows = by_path.join(people, "sha", use_threads=False)
    grouped = rows.group_by(list(KEY), use_threads=False).aggregate(
        [("sha", "count")]
        + [(column, "sum") for column in _SUMMED[1:]]
        + [("author_time", "min"), ("author_time", "max")]
    )
    return _as_cells(grouped, "sha_count", "author_time_min", "author_time_max")


def _as_cells(grouped: pa.Table, commits: str, first: str, last: str) -> pa.Table:
    """Cells from a grouping by KEY: the commits, sums, first and last under these names."""
    return pa.table(
        {
            **{name: grouped.column(name) for name in KEY},
            "commits": grouped.column(commits),
            **{name: grouped.column(f"{name}_sum") for name in _SUMMED[1:]},
            "first_time": grouped.column(first),
            "last_time": grouped.column(last),
        },
        schema=PATH_CELLS_SCHEMA,
    )


def merge_path_cells(*tables: pa.Table) -> pa.Table:
    """Cells of all the tables, those of one key added up (first and last: min and max)."""
    given = [table for table in tables if table.num_rows]
    if len(given) <= 1:
        return given[0] if given else PATH_CELLS_SCHEMA.empty_table()
    grouped = (
        pa.concat_tables(given)
        .group_by(list(KEY), use_threads=False)
        .aggregate(
            [(column, "sum") for column in _SUMMED] + [("first_time", "min"), ("last_time", "max")]
        )
    )
    return _as_cells(grouped, "commits_sum", "first_time_min", "last_time_max")
