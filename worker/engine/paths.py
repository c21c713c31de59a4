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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
    # Grouped on integer codes of the paths and shas: Arrow hashes those several times faster
    # than the bytes and strings themselves.
    file_names = pc.unique(files.column("path"))
    shas = pc.unique(files.column("sha"))
    rows = pa.table(
        {
            "sha": pc.index_in(files.column("sha"), value_set=shas),
            "file": pc.index_in(files.column("path"), value_set=file_names),
            "additions_lines": files.column("additions_lines"),
            "deletions_lines": files.column("deletions_lines"),
            "authored_additions_lines": pc.if_else(authored, files.column("additions_lines"), 0),
            "authored_deletions_lines": pc.if_else(authored, files.column("deletions_lines"), 0),
        }
    )
    chains, names = _coded_ancestry(file_names.to_pylist())
    expanded = rows.join(chains, "file", use_threads=False)
    grouped = expanded.group_by(["at", "sha"], use_threads=False).aggregate(
        [("under", "sum")] + [(column, "sum") for column in PATH_COMMITS_SCHEMA.names[3:]]
    )
    return pa.table(
        {
            "path": pc.take(pa.array(names, pa.binary()), grouped.column("at")),
            "sha": pc.take(shas, grouped.column("sha")),
            "changes_under": grouped.column("under_sum"),
            **{name: grouped.column(f"{name}_sum") for name in PATH_COMMITS_SCHEMA.names[3:]},
        },
        schema=PATH_COMMITS_SCHEMA,
    )


def _coded_ancestry(files: list[bytes]) -> tuple[pa.Table, list[bytes]]:
    """(file, at, under) for each file (by its index in `files`) and each of: itself, its
    directories, the root (by their index in the list returned), `under` 1 for a directory."""
    codes: dict[bytes, int] = {}
    file_codes: list[int] = []
    at_codes: list[int] = []
    under: list[int] = []
    for index, path in enumerate(files):
        chain = [path, *ancestors(path)] if path else [ROOT]
        for depth, at in enumerate(chain):
            file_codes.append(index)
            at_codes.append(codes.setdefault(at, len(codes)))
            under.append(int(depth > 0))
    table = pa.table(
        {
            "file": pa.array(file_codes, pa.int32()),
            "at": pa.array(at_codes, pa.int32()),
            "under": pa.array(under, pa.int64()),
        }
    )
    return table, list(codes)


def path_cells(commits: pa.Table, by_path: pa.Table, rules: Rules) -> pa.Table:
    """The cells of these (path, commit) rows; `commits` are the commits' rows (sha, author
    name, email and time at least)."""
    if not by_path.num_rows:
        return PATH_CELLS_SCHEMA.empty_table()
    # Grouped on integer codes, as in path_commits: each commit's identity and ignored flag as
    # one code, each path as another.
    names = pc.dictionary_encode(commits.column("author_name")).combine_chunks()
    emails = pc.dictionary_encode(commits.column("author_email")).combine_chunks()
    ignored = pc.is_in(
        commits.column("sha"), value_set=pa.array(sorted(rules.ignored), pa.string())
    )
    width = max(len(emails.dictionary), 1)
    who = pc.add(
        pc.multiply(
            pc.add(
                pc.multiply(names.indices.cast(pa.int64()), pa.scalar(width, pa.int64())),
                emails.indices.cast(pa.int64()),
            ),
            2,
        ),
        pc.cast(ignored, pa.int64()),
    )
    people = pa.table(
        {"sha": commits.column("sha"), "who": who, "author_time": commits.column("author_time")}
    )
    paths = pc.unique(by_path.column("path"))
    rows = by_path.append_column("at", pc.index_in(by_path.column("path"), value_set=paths))
    rows = rows.drop_columns(["path"]).join(people, "sha", use_threads=False)
    grouped = rows.group_by(["at", "who"], use_threads=False).aggregate(
        [("sha", "count")]
        + [(column, "sum") for column in _SUMMED[1:]]
        + [("author_time", "min"), ("author_time", "max")]
    )
    who = grouped.column("who")
    pair = pc.divide(who, 2)
    grouped = grouped.append_column("path", pc.take(paths, grouped.column("at")))
    grouped = grouped.append_column(
        "author_name", pc.take(names.dictionary, pc.divide(pair, width))
    )
    grouped = grouped.append_column(
        "author_email",
        pc.take(emails.dictionary, pc.subtract(pair, pc.multiply(pc.divide(pair, width), width))),
    )
    grouped = grouped.append_column("ignored", pc.equal(pc.subtract(who, pc.multiply(pair, 2)), 1))
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


# How many of a path's people its entry names.
TOP_CONTRIBUTORS = 5


def person_churn(cells: pa.Table, kids: pa.Array, authored: pa.Array, moves: pa.Table) -> pa.Table:
    """(path, kid, churn): each person's authored churn on each path, their co-authors' shares
    (`moves`: path, kid, churn rows, negative for the author) included; only churn above 0."""
    churn = pc.add(
        cells.column("authored_additions_lines"), cells.column("authored_deletions_lines")
    )
    own = pa.table(
        {
            "path": cells.column("path"),
            "kid": kids,
            "churn": pc.if_else(authored, churn, 0),
        }
    )
    both = pa.concat_tables([own, moves.select(["path", "kid", "churn"]).cast(own.schema)])
    grouped = both.group_by(["path", "kid"], use_threads=False).aggregate([("churn", "sum")])
    grouped = grouped.filter(pc.greater(grouped.column("churn_sum"), 0))
    return pa.table(
        {
            "path": grouped.column("path"),
            "kid": grouped.column("kid"),
            "churn": grouped.column("churn_sum"),
        }
    )


def bus_factor(churns: list[int]) -> int:
    """The smallest k such that the k largest of `churns` (sorted, largest first) hold more than
    half of their sum; 0 when the sum is 0."""
    total = sum(churns)
    held = 0
    for k, churn in enumerate(churns, 1):
        held += churn
        if 2 * held > total:
            return k
    return 0


def leaders(churn: pa.Table, keys: list[str]) -> dict[bytes, tuple[list[tuple[int, int]], int]]:
    """Per path: its top people as (kid, churn), most churn first, ties by key; and its bus
    factor."""
    key = pc.take(pa.array(keys, pa.string()), churn.column("kid"))
    ordered = churn.append_column("key", key).sort_by(
        [("path", "ascending"), ("churn", "descending"), ("key", "ascending")]
    )
    paths = ordered.column("path").to_pylist()
    kids = ordered.column("kid").to_pylist()
    churns = ordered.column("churn").to_pylist()
    result: dict[bytes, tuple[list[tuple[int, int]], int]] = {}
    start = 0
    while start < len(paths):
        end = start
        while end < len(paths) and paths[end] == paths[start]:
            end += 1
        top = list(zip(kids[start:end], churns[start:end], strict=True))
        result[paths[start]] = (top[:TOP_CONTRIBUTORS], bus_factor(churns[start:end]))
        start = end
    return result


def head_lines(snapshot: pa.Table) -> pa.Table:
    """(path, lines) at the head: each file's lines, each directory's the sum of its files'."""
    if not snapshot.num_rows:
        return pa.table({"path": pa.array([], pa.binary()), "lines": pa.array([], pa.int64())})
    chains = ancestry(snapshot.column("path").to_pylist())
    files = pa.table({"file": snapshot.column("path"), "lines": snapshot.column("lines")})
    grouped = (
        files.join(chains, "file", use_threads=False)
        .group_by("at", use_threads=False)
        .aggregate([("lines", "sum")])
    )
    return pa.table({"path": grouped.column("at"), "lines": grouped.column("lines_sum")})


def path_figures(
    cells: pa.Table, kids: pa.Array, bots: pa.Array, lines: pa.Table, recent: pa.Table
) -> pa.Table:
    """One row per path: its figures (definition 14) but its people's. `kids` and `bots` are
    each cell's contributor (after the mailmap) and whether a bot; `lines` (path, lines) at the
    head, `recent` (path, recent_commits)."""
    authored = pc.and_(pc.invert(cells.column("ignored")), pc.invert(bots))
    table = cells.append_column("kid", kids)
    for column in ("authored_additions_lines", "authored_deletions_lines"):
        index = table.column_names.index(column)
        table = table.set_column(index, column, pc.if_else(authored, table.column(column), 0))
    grouped = table.group_by("path", use_threads=False).aggregate(
        [(column, "sum") for column in _SUMMED]
        + [("kid", "count_distinct"), ("first_time", "min"), ("last_time", "max")]
    )
    figures = pa.table(
        {
            "path": grouped.column("path"),
            "is_dir": pc.greater(grouped.column("changes_under_sum"), 0),
            **{name: grouped.column(f"{name}_sum") for name in _SUMMED if name != "changes_under"},
            "contributors": grouped.column("kid_count_distinct"),
            "first_time": grouped.column("first_time_min"),
            "last_time": grouped.column("last_time_max"),
        }
    )
    figures = figures.join(lines, "path", join_type="left outer", use_threads=False)
    figures = figures.join(recent, "path", join_type="left outer", use_threads=False)
    recent_commits = pc.fill_null(figures.column("recent_commits"), 0)
    figures = figures.set_column(
        figures.column_names.index("recent_commits"), "recent_commits", recent_commits
    )
    hotspot = pc.multiply(recent_commits, pc.fill_null(figures.column("lines"), 0))
    return figures.append_column("hotspot", hotspot).sort_by("path")


def recent_counts(by_path: pa.Table, recent_shas: pa.Array) -> pa.Table:
    """(path, recent_commits): how many of `recent_shas` change something under each path."""
    rows = by_path.filter(pc.is_in(by_path.column("sha"), value_set=recent_shas))
    grouped = rows.group_by("path", use_threads=False).aggregate([("sha", "count")])
    return pa.table({"path": grouped.column("path"), "recent_commits": grouped.column("sha_count")})


# The commit and file columns the per-path state is counted from.
COMMIT_COLUMNS = ("sha", "author_name", "author_email", "author_time", "co_authors")
FILE_COLUMNS = ("sha", "path", "additions_lines", "deletions_lines")
# Per (path, co-authored commit): the authored churn its people share (definition 11).
SHARED_SCHEMA = pa.schema([("path", pa.binary()), ("sha", pa.string()), ("churn", pa.int64())])


@dataclass
class PathState:
    """The per-path cells, and the churn of co-authored commits per path."""

    cells: pa.Table
    shared: pa.Table

    @classmethod
    def empty(cls) -> PathState:
        return cls(PATH_CELLS_SCHEMA.empty_table(), SHARED_SCHEMA.empty_table())

    def merge(self, other: PathState) -> PathState:
        return PathState(
            merge_path_cells(self.cells, other.cells),
            pa.concat_tables([self.shared, other.shared]),
        )


def count_rows(commits: pa.Table, files: pa.Table, rules: Rules) -> PathState:
    """The per-path state of these commit and file rows."""
    by_path = path_commits(files.select(list(FILE_COLUMNS)), rules)
    cells = path_cells(commits, by_path, rules)
    co_authored = commits.filter(pc.greater(pc.list_value_length(commits.column("co_authors")), 0))
    shared = by_path.filter(pc.is_in(by_path.column("sha"), value_set=co_authored.column("sha")))
    churn = pc.add(
        shared.column("authored_additions_lines"), shared.column("authored_deletions_lines")
    )
    return PathState(
        cells,
        pa.table({"path": shared.column("path"), "sha": shared.column("sha"), "churn": churn}),
    )


def count_parts(parts: Sequence[tuple[Path, Path]], rules: Rules) -> PathState:
    """The per-path state of these (commits, files) Parquet parts, a part at a time."""
    state = PathState.empty()
    for commits, files in parts:
        state = state.merge(
            count_rows(
                pq.read_table(commits, columns=list(COMMIT_COLUMNS)),
                pq.read_table(files, columns=list(FILE_COLUMNS)),
                rules,
            )
        )
    return state


# How far back from the default head's committer time a commit is recent (definition 14).
RECENT_SECONDS = 90 * 86_400


def recent_from_parts(
    parts: Sequence[tuple[Path, Path]], head_time: int | None, rules: Rules
) -> pa.Table:
    """(path, recent_commits) counted from the stored parts: the commits whose author time is
    within RECENT_SECONDS before `head_time`, head_time included."""
    empty = pa.table(
        {"path": pa.array([], pa.binary()), "recent_commits": pa.array([], pa.int64())}
    )
    if head_time is None:
        return empty
    counts = []
    for commits_path, files_path in parts:
        commits = pq.read_table(commits_path, columns=["sha", "author_time"])
        times = commits.column("author_time")
        window = pc.and_(
            pc.greater_equal(times, head_time - RECENT_SECONDS), pc.less_equal(times, head_time)
        )
        shas = commits.filter(window).column("sha")
        if not len(shas):
            continue
        files = pq.read_table(files_path, columns=list(FILE_COLUMNS))
        files = files.filter(pc.is_in(files.column("sha"), value_set=shas))
        counts.append(recent_counts(path_commits(files, rules), shas.combine_chunks()))
    if not counts:
        return empty
    grouped = (
        pa.concat_tables(counts)
        .group_by("path", use_threads=False)
        .aggregate([("recent_commits", "sum")])
    )
    return pa.table(
        {"path": grouped.column("path"), "recent_commits": grouped.column("recent_commits_sum")}
    )


def shared_moves(
    shared: pa.Table, commits: Iterable[tuple[str, int, list[int], bool]], bots: Sequence[bool]
) -> pa.Table:
    """(path, kid, churn) moves of co-authored commits' shares (definition 11, per path):
    `commits` are (sha, author kid, co-author kids, ignored); each non-bot co-author of a commit
    neither ignored nor by a bot gets floor(x / n) of its churn x on each path, the author that
    much less for each."""
    people = {}
    for sha, author, co_authors, ignored in commits:
        if ignored or bots[author]:
            continue
        others = [kid for kid in co_authors if not bots[kid]]
        if others:
            people[sha] = (author, others)
    paths: list[bytes] = []
    kids: list[int] = []
    churns: list[int] = []
    for path, sha, churn in zip(
        *shared.select(["path", "sha", "churn"]).to_pydict().values(), strict=True
    ):
        found = people.get(sha)
        if found is None:
            continue
        author, others = found
        share = churn // (len(others) + 1)
        for kid, moved in [(author, -share * len(others)), *((kid, share) for kid in others)]:
            paths.append(path)
            kids.append(kid)
            churns.append(moved)
    return pa.table(
        {
            "path": pa.array(paths, pa.binary()),
            "kid": pa.array(kids, pa.int32()),
            "churn": pa.array(churns, pa.int64()),
        }
    )
