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
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from worker.engine.classes import CLASSES_SCHEMA, PathClass, classes_of
from worker.engine.tally import Rules
from worker.engine.teams import OWNERS_SCHEMA

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
    chains, names = coded_ancestry(file_names.to_pylist())
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


def coded_ancestry(files: list[bytes]) -> tuple[pa.Table, list[bytes]]:
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


def merge_into(cells: pa.Table, new: pa.Table) -> pa.Table:
    """merge_path_cells(cells, new), grouping again only the cells of the paths `new` has: a
    push's few paths cost what they are, not what the whole history's cells are."""
    if not new.num_rows or not cells.num_rows:
        return merge_path_cells(cells, new)
    near = pc.is_in(cells.column("path"), value_set=pc.unique(new.column("path")))
    return pa.concat_tables(
        [cells.filter(pc.invert(near)), merge_path_cells(cells.filter(near), new)]
    )


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


LEADERS_SCHEMA = pa.schema(
    [("path", pa.binary()), ("kid", pa.int64()), ("churn", pa.int64()), ("rank", pa.int64())]
)
BUS_SCHEMA = pa.schema([("path", pa.binary()), ("bus_factor", pa.int64())])


def ranked_leaders(churn: pa.Table, keys: list[str]) -> tuple[pa.Table, pa.Table]:
    """Per path: its top people (LEADERS_SCHEMA: kid, churn and rank from 0, most churn first,
    ties by key), by path then rank; and its bus factor (BUS_SCHEMA), for the paths with
    churn. Ranked in Arrow on integer codes (each path's, each key's rank)."""
    if not churn.num_rows:
        return LEADERS_SCHEMA.empty_table(), BUS_SCHEMA.empty_table()
    coded = pc.dictionary_encode(churn.column("path")).combine_chunks()
    by_key = sorted(range(len(keys)), key=keys.__getitem__)
    key_rank = [0] * len(keys)
    for rank, kid in enumerate(by_key):
        key_rank[kid] = rank
    ordered = pa.table(
        {
            "path": coded.indices,
            "kid": churn.column("kid"),
            "churn": churn.column("churn"),
            "key": pc.take(pa.array(key_rank, pa.int32()), churn.column("kid")),
        }
    ).sort_by([("path", "ascending"), ("churn", "descending"), ("key", "ascending")])
    paths = ordered.column("path")
    churns = ordered.column("churn")
    index = pa.array(range(ordered.num_rows), pa.int64())
    # Each row's rank within its path, and the churn held by the people up to it.
    starts = pc.cumulative_max(pc.if_else(run_starts(paths), index, 0))
    rank = pc.subtract(index, starts)
    held = pc.cumulative_sum(churns)
    before = pc.subtract(pc.take(held, starts), pc.take(churns, starts))
    held = pc.subtract(held, before)
    ranked = ordered.append_column("rank", rank).append_column("held", held)
    totals = ranked.group_by("path", use_threads=False).aggregate([("churn", "sum")])
    total = pc.take(totals.column("churn_sum"), pc.index_in(paths, value_set=totals.column("path")))
    majority = ranked.filter(pc.greater(pc.multiply(held, 2), total))
    bus = majority.group_by("path", use_threads=False).aggregate([("rank", "min")])
    bus = pa.table(
        [pc.take(coded.dictionary, bus.column("path")), pc.add(bus.column("rank_min"), 1)],
        schema=BUS_SCHEMA,
    )
    top = ranked.filter(pc.less(rank, TOP_CONTRIBUTORS))
    top = pa.table(
        [
            pc.take(coded.dictionary, top.column("path")),
            *(top.column(name) for name in ("kid", "churn", "rank")),
        ],
        schema=LEADERS_SCHEMA,
    )
    return top, bus


def leaders(
    churn: pa.Table, keys: list[str], only: pa.Array | None = None
) -> dict[bytes, tuple[list[tuple[int, int]], int]]:
    """ranked_leaders' as Python: per path, its top people as (kid, churn) in order and its
    bus factor; of the paths in `only` (None: every one)."""
    return leaders_of(*ranked_leaders(churn, keys), only)


def leaders_of(
    top: pa.Table, bus: pa.Table, only: pa.Array | None = None
) -> dict[bytes, tuple[list[tuple[int, int]], int]]:
    """ranked_leaders' tables as `leaders` gives them."""
    if only is not None:
        top = top.filter(pc.is_in(top.column("path"), value_set=only))
        bus = bus.filter(pc.is_in(bus.column("path"), value_set=only))
    result: dict[bytes, tuple[list[tuple[int, int]], int]] = {
        path: ([], factor)
        for path, factor in zip(
            bus.column("path").to_pylist(), bus.column("bus_factor").to_pylist(), strict=True
        )
    }
    columns = (top.column(name).to_pylist() for name in ("path", "kid", "churn"))
    for path, kid, amount in zip(*columns, strict=True):
        result.setdefault(path, ([], 0))[0].append((kid, amount))
    return result


def run_starts(paths: pa.ChunkedArray) -> pa.Array:
    """Whether each row's path differs from the row before's (the first row's does)."""
    values = paths.combine_chunks() if isinstance(paths, pa.ChunkedArray) else paths
    if not len(values):
        return pa.array([], pa.bool_())
    earlier = pa.concat_arrays([pa.array([None], values.type), values.slice(0, len(values) - 1)])
    return pc.fill_null(pc.not_equal(values, earlier), True)


def head_lines(snapshot: pa.Table) -> pa.Table:
    """(path, lines) at the head: each file's lines, each directory's the sum of its files'."""
    if not snapshot.num_rows:
        return pa.table({"path": pa.array([], pa.binary()), "lines": pa.array([], pa.int64())})
    chains, names = coded_ancestry(snapshot.column("path").to_pylist())
    files = pa.table(
        {
            "file": pa.array(range(snapshot.num_rows), pa.int32()),
            "lines": snapshot.column("lines"),
        }
    )
    grouped = (
        files.join(chains, "file", use_threads=False)
        .group_by("at", use_threads=False)
        .aggregate([("lines", "sum")])
    )
    paths = pc.take(pa.array(names, pa.binary()), grouped.column("at"))
    return pa.table({"path": paths, "lines": grouped.column("lines_sum")})


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


# The commit and file columns the per-path state is counted from.
COMMIT_COLUMNS = ("sha", "author_name", "author_email", "author_time", "co_authors")
FILE_COLUMNS = ("sha", "path", "additions_lines", "deletions_lines")
# Per (path, co-authored commit): the authored churn its people share (definition 11).
SHARED_SCHEMA = pa.schema([("path", pa.binary()), ("sha", pa.string()), ("churn", pa.int64())])
# Per (path, commit) of the commits recent enough to count (definition 14), kept so that a push
# counts recent commits without reading the history: those authored within the state's Window.
RECENT_SCHEMA = pa.schema(
    [("path", pa.binary()), ("sha", pa.string()), ("author_time", pa.int64())]
)
# Per path: what its entry in the documents last published said (a fingerprint of its figures
# and people), to publish only the directories whose entries or children changed.
ENTRIES_SCHEMA = pa.schema(
    [("path", pa.binary()), ("is_dir", pa.bool_()), ("fingerprint", pa.binary())]
)
# The state's tables in the order they are stored (store.paths_tables): the owners of the
# files at the head (worker/engine/teams.py) are kept with them.
PATH_TABLES = (PATH_CELLS_SCHEMA, SHARED_SCHEMA, RECENT_SCHEMA, ENTRIES_SCHEMA, OWNERS_SCHEMA)
# How far back from the default head's committer time a commit is recent (definition 14).
RECENT_SECONDS = 90 * 86_400


@dataclass(frozen=True)
class Window:
    """The author times whose (path, commit) rows the state keeps: `floor` to `ceiling`, both
    included; `later` is the earliest author time of a counted commit above `ceiling` (None:
    there is none), which tells whether a later head's window is covered."""

    floor: int
    ceiling: int
    later: int | None = None

    @classmethod
    def at(cls, head_time: int | None) -> Window | None:
        """The window of a default head of this committer time (None without a head)."""
        if head_time is None:
            return None
        return cls(head_time - RECENT_SECONDS, head_time)

    def covers(self, other: Window) -> bool:
        """Whether rows kept for this window hold every row `other` needs."""
        above = other.ceiling <= self.ceiling or self.later is None or other.ceiling < self.later
        return self.floor <= other.floor and above


def _window_rows(rows: pa.Table, window: Window | None) -> tuple[pa.Table, int | None]:
    """RECENT_SCHEMA rows within `window`, and the earliest author time above it."""
    if window is None or not rows.num_rows:
        return RECENT_SCHEMA.empty_table(), None
    times = rows.column("author_time")
    above = pc.min(times.filter(pc.greater(times, window.ceiling))).as_py()
    inside = pc.and_(pc.greater_equal(times, window.floor), pc.less_equal(times, window.ceiling))
    return rows.filter(inside), above


def _earliest(*times: int | None) -> int | None:
    given = [t for t in times if t is not None]
    return min(given) if given else None


@dataclass
class PathState:
    """The per-path cells, the churn of co-authored commits per path, the (path, commit) rows
    of the commits authored within `window` (none when it is None: no default head), the
    entries of the documents last published from it, and the owners of the files at the
    head."""

    cells: pa.Table
    shared: pa.Table
    recent: pa.Table
    window: Window | None
    entries: pa.Table = field(default_factory=ENTRIES_SCHEMA.empty_table)
    owners: pa.Table = field(default_factory=OWNERS_SCHEMA.empty_table)

    @classmethod
    def empty(cls, window: Window | None) -> PathState:
        return cls(
            PATH_CELLS_SCHEMA.empty_table(),
            SHARED_SCHEMA.empty_table(),
            RECENT_SCHEMA.empty_table(),
            window,
        )

    def merge(self, other: PathState) -> PathState:
        """Both states' rows; `other`, counted for a window this one covers, gives its window
        (the rows outside it are dropped)."""
        merged = self.merge_cells(other)
        merged = replace(merged, recent=pa.concat_tables([self.recent, other.recent]))
        narrowed = merged.narrowed(other.window)
        if narrowed.window is None or other.window is None:
            return narrowed
        later = _earliest(narrowed.window.later, other.window.later)
        return replace(narrowed, window=replace(narrowed.window, later=later))

    def merge_cells(self, other: PathState) -> PathState:
        """Both states' cells and shared churn; this one's recent rows."""
        return replace(
            self,
            cells=merge_into(self.cells, other.cells),
            shared=pa.concat_tables([self.shared, other.shared]),
        )

    def covers(self, window: Window | None) -> bool:
        """Whether the recent rows hold every row `window` needs."""
        return window is None or (self.window is not None and self.window.covers(window))

    def narrowed(self, window: Window | None) -> PathState:
        """The state with only the recent rows within `window`, which covers() must allow."""
        assert self.covers(window)
        if window is None or self.window is None:
            return replace(self, recent=RECENT_SCHEMA.empty_table(), window=window)
        kept, above = _window_rows(self.recent, window)
        # The commits above the old ceiling are above the new one too (covers()).
        later = _earliest(above, self.window.later)
        return replace(self, recent=kept, window=replace(window, later=later))

    def with_recent(self, recent: PathState) -> PathState:
        """This state with `recent`'s recent rows and window."""
        return replace(self, recent=recent.recent, window=recent.window)

    def recent_counts(self) -> pa.Table:
        """(path, recent_commits) at the window's head (definition 14): the commits authored
        within RECENT_SECONDS before its committer time, that time included."""
        grouped = self.recent.group_by("path", use_threads=False).aggregate([("sha", "count")])
        return pa.table(
            {"path": grouped.column("path"), "recent_commits": grouped.column("sha_count")}
        )


def count_rows(
    commits: pa.Table, files: pa.Table, rules: Rules, window: Window | None
) -> PathState:
    """The per-path state of these commit and file rows, recent rows within `window`."""
    by_path = path_commits(files.select(list(FILE_COLUMNS)), rules)
    cells = path_cells(commits, by_path, rules)
    co_authored = commits.filter(pc.greater(pc.list_value_length(commits.column("co_authors")), 0))
    shared = by_path.filter(pc.is_in(by_path.column("sha"), value_set=co_authored.column("sha")))
    churn = pc.add(
        shared.column("authored_additions_lines"), shared.column("authored_deletions_lines")
    )
    recent, later = _recent_rows(commits, by_path, window)
    return PathState(
        cells,
        pa.table({"path": shared.column("path"), "sha": shared.column("sha"), "churn": churn}),
        recent,
        window if window is None else replace(window, later=later),
    )


def _recent_rows(
    commits: pa.Table, by_path: pa.Table, window: Window | None
) -> tuple[pa.Table, int | None]:
    """The (path, commit) rows within `window`, and the earliest author time above it."""
    if window is None or not by_path.num_rows:
        return RECENT_SCHEMA.empty_table(), None
    times = commits.select(["sha", "author_time"])
    times = times.filter(pc.greater_equal(times.column("author_time"), window.floor))
    rows = by_path.select(["path", "sha"]).join(times, "sha", use_threads=False)
    return _window_rows(rows.select(RECENT_SCHEMA.names).cast(RECENT_SCHEMA), window)


def count_parts(
    parts: Sequence[tuple[Path, Path]], rules: Rules, window: Window | None
) -> PathState:
    """The per-path state of these (commits, files) Parquet parts, a part at a time."""
    state = PathState.empty(window)
    for commits, files in parts:
        state = state.merge(
            count_rows(
                pq.read_table(commits, columns=list(COMMIT_COLUMNS)),
                pq.read_table(files, columns=list(FILE_COLUMNS)),
                rules,
                window,
            )
        )
    return state


def recent_parts(parts: Sequence[tuple[Path, Path]], window: Window | None) -> PathState:
    """Only the recent rows (within `window`) of these parts, what a head that moved out of
    the kept window needs: only the files of the commits authored from its floor on are read."""
    state = PathState.empty(window)
    if window is None:
        return state
    no_rules = Rules(CLASSES_SCHEMA.empty_table(), frozenset())
    for commits_path, files_path in parts:
        commits = pq.read_table(commits_path, columns=["sha", "author_time"])
        shas = commits.filter(pc.greater_equal(commits.column("author_time"), window.floor))
        if not shas.num_rows:
            continue
        files = pq.read_table(files_path, columns=list(FILE_COLUMNS))
        files = files.filter(pc.is_in(files.column("sha"), value_set=shas.column("sha")))
        recent, later = _recent_rows(commits, path_commits(files, no_rules), window)
        counted = PathState.empty(replace(window, later=later))
        state = state.merge(replace(counted, recent=recent))
    return state


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
