"""Line provenance kept current push by push (DESIGN.md definition 16).

provenance.py says which commit holds each run of lines of the files a push changed; this keeps,
for every text file at the default head, its runs and what the documents show of them: each
person's lines under each path (the file, its directories, the root), under each CODEOWNERS
owner, and the lines' author times. A push changes a few files: the counts of those files are
taken out of their paths' and owners' and the new ones put in, and only the paths and owners
they touch are ranked again, so that a push costs what it changed, not what the repository
holds. Counts are by person key (the mailmap and the bots applied): a change of either, or of
CODEOWNERS, counts everything again from the runs, without blaming.

Stored as a base table of every run (provenance.PROVENANCE_SCHEMA) and a journal of the tables
that replaced some files' runs since (a file with no runs left is one row of no lines), as the
tally is: a push writes what it changed, and the base is written again once the journal is long.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate

import pyarrow as pa
import pyarrow.compute as pc

from worker.engine.paths import BUS_SCHEMA, LEADERS_SCHEMA, ROOT, TOP_CONTRIBUTORS, ancestors
from worker.engine.paths import bus_factor as _bus_factor
from worker.engine.provenance import CODE_AGE, DAY, PROVENANCE_SCHEMA, Author, Run

KeyOf = Callable[[str, str], str]  # a person's key from their name and email
# code_age sums lines over spans of author times this long, and over author times within the
# span a bucket's bound falls in.
_SPAN = 30 * DAY


@dataclass(frozen=True)
class Ranked:
    """One path's or owner's provenance: its lines, its top owners as (key, lines), most
    first, ties by key, and its bus factor over lines."""

    lines: int
    top: tuple[tuple[str, int], ...]
    bus_factor: int


def ranked(counts: Mapping[str, int]) -> Ranked:
    order = sorted(((k, n) for k, n in counts.items() if n > 0), key=lambda kn: (-kn[1], kn[0]))
    lines = [n for _, n in order]
    return Ranked(sum(lines), tuple(order[:TOP_CONTRIBUTORS]), _bus_factor(lines))


@dataclass
class ProvenanceState:
    """Every text file's runs at `head` and the commits' authors; the counts made of them for
    the mapping of people and the owners they were counted with (`count`)."""

    head: str
    runs: dict[bytes, list[Run]]
    authors: dict[str, Author]
    # The files whose runs changed since the counts were brought up to date.
    pending: set[bytes] = field(default_factory=set)
    # The counts, and what they were made with (None: not counted yet).
    keys: dict[tuple[str, str], str] | None = None
    owners_basis: str | None = None
    by_file: dict[bytes, Counter[str]] = field(default_factory=dict)
    ages: dict[bytes, Counter[int]] = field(default_factory=dict)  # lines by author time
    # Every file's lines by span of author times (_SPAN), and within each by author time.
    span_lines: Counter[int] = field(default_factory=Counter)
    time_lines: dict[int, Counter[int]] = field(default_factory=dict)
    file_owners: dict[bytes, tuple[str, ...]] = field(default_factory=dict)
    by_path: dict[bytes, Counter[str]] = field(default_factory=dict)  # directories, the root
    by_owner: dict[str, Counter[str]] = field(default_factory=dict)
    path_ranked: dict[bytes, Ranked] = field(default_factory=dict)
    owner_ranked: dict[str, Ranked] = field(default_factory=dict)
    # path_ranked as the tables path_tables gives (top owners by key rather than kid), and the
    # paths ranked again since they were made (None: make them all).
    tables: tuple[pa.Table, pa.Table, pa.Table] | None = None
    ranked_again: set[bytes] = field(default_factory=set)

    @classmethod
    def from_table(cls, head: str, table: pa.Table) -> ProvenanceState:
        state = cls(head, {}, {})
        state.replace_from(table)
        return state

    def replace_from(self, table: pa.Table) -> None:
        """Take each file's runs from `table` (PROVENANCE_SCHEMA; a row of no lines: the file
        has none)."""
        columns = (table.column(name).to_pylist() for name in PROVENANCE_SCHEMA.names)
        named: dict[bytes, list[Run]] = {}
        for path, start, lines, sha, name, email, time in zip(*columns, strict=True):
            runs = named.setdefault(path, [])
            if lines:
                runs.append((start, lines, sha))
                self.authors[sha] = (name, email, time)
        for path, runs in named.items():
            if runs:
                self.runs[path] = sorted(runs)
            else:
                self.runs.pop(path, None)
        self.pending |= named.keys()

    def table(self, paths: Iterable[bytes] | None = None) -> pa.Table:
        """PROVENANCE_SCHEMA's rows of `paths` (None: every file), by path then line; a path
        without runs is one row of no lines."""
        rows: dict[str, list[object]] = {name: [] for name in PROVENANCE_SCHEMA.names}
        for path in sorted(self.runs if paths is None else paths):
            for start, lines, sha in self.runs.get(path) or [(0, 0, "")]:
                author = self.authors[sha] if lines else ("", "", 0)
                for column, value in zip(
                    PROVENANCE_SCHEMA.names, (path, start, lines, sha, *author), strict=True
                ):
                    rows[column].append(value)
        return pa.table(rows, schema=PROVENANCE_SCHEMA)

    def update(
        self,
        head: str,
        changed: Mapping[bytes, list[Run]],
        gone: Iterable[bytes],
        authors: Mapping[str, Author],
    ) -> set[bytes]:
        """Move to `head`: `changed` files have these runs now, `gone` files none. The files
        whose runs changed (the counts are brought up to date by `count`)."""
        self.head = head
        self.authors.update(authors)
        touched = set(gone) | set(changed)
        for path in gone:
            self.runs.pop(path, None)
        for path, runs in changed.items():
            if runs:
                self.runs[path] = runs
            else:
                self.runs.pop(path, None)
        self.pending |= touched
        return touched

    def count(
        self,
        key_of: KeyOf,
        owners_basis: str,
        owners_of: Callable[[Iterable[bytes]], dict[bytes, tuple[str, ...]]],
    ) -> None:
        """Bring the counts up to date: the files changed since they were last counted, or
        every file when people map to other keys or the owners were matched otherwise."""
        pending, self.pending = self.pending, set()
        keys = self.keys
        if keys is not None and any(key_of(*identity) != key for identity, key in keys.items()):
            keys = None  # the mailmap or the bots changed
        if keys is None or self.owners_basis != owners_basis:
            self.keys, self.owners_basis = {}, owners_basis
            self.by_file, self.ages, self.file_owners = {}, {}, {}
            self.span_lines, self.time_lines = Counter(), {}
            self.by_path, self.by_owner, self.path_ranked, self.owner_ranked = {}, {}, {}, {}
            self.tables, self.ranked_again = None, set()
            pending = set(self.runs)
        assert self.keys is not None
        owners = owners_of(sorted(path for path in pending if path in self.runs))
        touched_paths: set[bytes] = set()
        touched_owners: set[str] = set()
        for path in pending:
            old = self.by_file.pop(path, None)
            self._age(self.ages.pop(path, None), -1)
            was = self.file_owners.pop(path, ())
            runs = self.runs.get(path)
            new: Counter[str] | None = None
            if runs:
                new, ages = Counter[str](), Counter[int]()
                for _start, lines, sha in runs:
                    name, email, time = self.authors[sha]
                    key = self.keys.get((name, email))
                    if key is None:
                        key = self.keys[(name, email)] = key_of(name, email)
                    new[key] += lines
                    ages[time] += lines
                self.by_file[path] = new
                self.ages[path] = ages
                self._age(ages, 1)
                self.file_owners[path] = owners.get(path, ())
            touched_paths.add(path)
            for at in ancestors(path):
                counts = self.by_path.setdefault(at, Counter())
                if old:
                    counts.subtract(old)
                if new:
                    counts.update(new)
                touched_paths.add(at)
            for owner in was:
                if old:
                    self.by_owner.setdefault(owner, Counter()).subtract(old)
                touched_owners.add(owner)
            for owner in self.file_owners.get(path, ()):
                if new:
                    self.by_owner.setdefault(owner, Counter()).update(new)
                touched_owners.add(owner)
        self.ranked_again |= touched_paths
        for path in touched_paths:
            held = self.by_file.get(path) or self.by_path.get(path)
            result = ranked(held) if held else None
            if result is None or not result.lines:
                self.path_ranked.pop(path, None)
                self.by_path.pop(path, None)
            else:
                self.path_ranked[path] = result
        for owner in touched_owners:
            result = ranked(self.by_owner.get(owner, {}))
            if result.lines:
                self.owner_ranked[owner] = result
            else:
                self.owner_ranked.pop(owner, None)
                self.by_owner.pop(owner, None)

    def by_person(self) -> dict[str, int]:
        """Each person's lines (by key)."""
        root = self.by_path.get(ROOT, Counter())
        return {key: lines for key, lines in root.items() if lines > 0}

    def _age(self, ages: Counter[int] | None, sign: int) -> None:
        """Add (sign 1) or take out (-1) one file's lines by author time."""
        for time, lines in (ages or {}).items():
            span = time // _SPAN
            self.span_lines[span] += sign * lines
            within = self.time_lines.setdefault(span, Counter())
            within[time] += sign * lines
            if not within[time]:
                del within[time]
            if not self.span_lines[span]:
                del self.span_lines[span], self.time_lines[span]

    def code_age(self, head_time: int) -> list[tuple[str, int]]:
        """The lines by the age of their commit against `head_time` (CODE_AGE's buckets; an
        author time after the head's counts as the youngest): summed over whole spans, and
        over the author times of the span each bucket's bound falls in."""
        spans = sorted(self.span_lines)
        held = list(accumulate(self.span_lines[span] for span in spans))
        total = held[-1] if held else 0
        younger = []  # per bound: the lines authored after head_time - bound
        for _, bound in CODE_AGE[:-1]:
            assert bound is not None
            since = head_time - bound
            after = bisect.bisect_right(spans, since // _SPAN)
            that: Counter[int] = self.time_lines.get(since // _SPAN, Counter())
            younger.append(
                total
                - (held[after - 1] if after else 0)
                + sum(lines for time, lines in that.items() if time > since)
            )
        counts = [b - a for a, b in zip([0, *younger], [*younger, total], strict=True)]
        return [(bucket, count) for (bucket, _), count in zip(CODE_AGE, counts, strict=True)]

    def path_tables(self, keys: list[str]) -> tuple[pa.Table, pa.Table, pa.Table]:
        """export.export_paths' owners: (path, surviving_lines), the top owners
        (paths.LEADERS_SCHEMA, kid indexing `keys`; each path's rows together, by rank) and
        the bus factor (paths.BUS_SCHEMA). Only the paths ranked again since the last call
        are made again."""
        if self.tables is None:
            self.tables = _ranked_tables(self.path_ranked, sorted(self.path_ranked))
        elif self.ranked_again:
            again = pa.array(sorted(self.ranked_again), pa.binary())
            made = _ranked_tables(
                self.path_ranked, [p for p in again.to_pylist() if p in self.path_ranked]
            )
            self.tables = tuple(
                pa.concat_tables(
                    [old.filter(pc.invert(pc.is_in(old.column("path"), value_set=again))), new]
                )
                for old, new in zip(self.tables, made, strict=True)
            )
        self.ranked_again = set()
        surviving, top, bus = self.tables
        kids = pc.index_in(top.column("key"), value_set=pa.array(keys, pa.string()))
        assert kids.null_count == 0, "every owner is a person of the history"
        owners = pa.table(
            [top.column("path"), kids.cast(pa.int64()), top.column("churn"), top.column("rank")],
            schema=LEADERS_SCHEMA,
        )
        return surviving, owners, bus

    def owner_tables(self, keys: list[str]) -> dict[str, tuple[int, list[tuple[int, int]], int]]:
        """Per owner key: its lines, its top owners as (kid indexing `keys`, lines), its bus
        factor over lines (export.teams_document's `surviving`)."""
        kid_of = {key: kid for kid, key in enumerate(keys)}
        return {
            owner: (result.lines, [(kid_of[key], n) for key, n in result.top], result.bus_factor)
            for owner, result in self.owner_ranked.items()
        }


_TOP_SCHEMA = pa.schema(
    [("path", pa.binary()), ("key", pa.string()), ("churn", pa.int64()), ("rank", pa.int64())]
)


def _ranked_tables(
    ranked: Mapping[bytes, Ranked], paths: list[bytes]
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(path, surviving_lines), the top owners by key (_TOP_SCHEMA) and the bus factor
    (paths.BUS_SCHEMA) of `paths`."""
    lines, buses = [], []
    top: dict[str, list[object]] = {name: [] for name in _TOP_SCHEMA.names}
    for path in paths:
        result = ranked[path]
        lines.append(result.lines)
        buses.append(result.bus_factor)
        for rank, (key, n) in enumerate(result.top):
            for column, value in zip(top, (path, key, n, rank), strict=True):
                top[column].append(value)
    listed = pa.array(paths, pa.binary())
    return (
        pa.table({"path": listed, "surviving_lines": pa.array(lines, pa.int64())}),
        pa.table(top, schema=_TOP_SCHEMA),
        pa.table([listed, pa.array(buses, pa.int64())], schema=BUS_SCHEMA),
    )
