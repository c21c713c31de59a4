"""Phase 6: totals, activity, punch card and contributors, from the tally (worker/engine/tally.py).

Identities go through the `.mailmap` at the default branch's head and are keyed by lower-cased
email; the mailmap is applied over the tally's identities, not the commits, so a change to it
re-keys the whole history on the next run at the cost of an aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pygit2

from worker.engine.extract import MAX_IDENTITY_CHARS, SHORTENED
from worker.engine.tally import EPOCH_ORDINAL, Tally, tally_commits


@dataclass(frozen=True)
class Totals:
    commits: int
    merges: int
    contributors: int
    additions_lines: int
    deletions_lines: int
    addition_bytes: int
    deletion_bytes: int
    first_commit_at: datetime | None
    last_commit_at: datetime | None
    # Commits whose author date git records outside the years 1 to 9999 (stored clamped).
    clamped_dates: int = 0
    # Authors (as recorded) whose name or email was over MAX_IDENTITY_CHARS (stored shortened).
    shortened_identities: int = 0


@dataclass(frozen=True)
class Aggregates:
    totals: Totals
    weekly: list[dict[str, Any]]
    monthly: list[dict[str, Any]]
    punch_card: list[dict[str, Any]]
    contributors: list[dict[str, Any]]


def load_mailmap(repo: pygit2.Repository, head: str | None) -> pygit2.Mailmap:
    """The mailmap at `head` (an empty one when there is none)."""
    if head is not None:
        tree = repo[head].peel(pygit2.Tree)
        if ".mailmap" in tree:
            blob = repo[tree[".mailmap"].id]
            if isinstance(blob, pygit2.Blob):
                return pygit2.Mailmap.from_buffer(blob.data)
    return pygit2.Mailmap()


def map_identity(mailmap: pygit2.Mailmap, name: str, email: str) -> tuple[str, str]:
    """(display name, canonical email) after the mailmap."""
    return mailmap.resolve(name, email)


def _utc(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


_SUMS = ("commits", "additions_lines", "deletions_lines", "addition_bytes", "deletion_bytes")


@dataclass(frozen=True)
class _Keyed:
    """The cells with each row's contributor (`kid`, an index into `keys`) after the mailmap.

    The mailmap is resolved once per raw identity (a few thousand), never per cell, and the
    groupings below run on integer ids in Arrow's single-threaded hash aggregation: a push at
    400,000 commits reads tens of thousands of cells, where DuckDB's per-query start-up costed
    more than the work."""

    cells: pa.Table  # CELLS_SCHEMA + pair (index of the raw identity) + kid
    names: list[str]  # per pair: the name and email after the mailmap
    emails: list[str]
    pair_keys: list[int]  # per pair: its kid
    keys: list[str]  # per kid: the lower-cased canonical email
    raw: list[tuple[str, str]]  # per pair: the identity as recorded


def _keyed(cells: pa.Table, mailmap: pygit2.Mailmap) -> _Keyed:
    names = pc.dictionary_encode(cells.column("author_name")).combine_chunks()
    emails = pc.dictionary_encode(cells.column("author_email")).combine_chunks()
    width = max(len(emails.dictionary), 1)
    code = pc.add(
        pc.multiply(names.indices.cast(pa.int64()), pa.scalar(width, pa.int64())),
        emails.indices.cast(pa.int64()),
    )
    codes = pc.unique(code)
    pair = pc.index_in(code, value_set=codes)
    name_dictionary = names.dictionary.to_pylist()
    email_dictionary = emails.dictionary.to_pylist()
    mapped_names: list[str] = []
    mapped_emails: list[str] = []
    pair_keys: list[int] = []
    keys: list[str] = []
    raw: list[tuple[str, str]] = []
    kid_of: dict[str, int] = {}
    for value in codes.to_pylist():
        name, email = name_dictionary[value // width], email_dictionary[value % width]
        mapped_name, mapped_email = map_identity(mailmap, name, email)
        key = mapped_email.lower()
        kid = kid_of.setdefault(key, len(keys))
        if kid == len(keys):
            keys.append(key)
        raw.append((name, email))
        mapped_names.append(mapped_name)
        mapped_emails.append(mapped_email)
        pair_keys.append(kid)
    kid = pc.take(pa.array(pair_keys, pa.int32()), pair)
    keyed = cells.append_column("pair", pair).append_column("kid", kid)
    return _Keyed(keyed, mapped_names, mapped_emails, pair_keys, keys, raw)


def _series(keyed: _Keyed, unit: str) -> list[dict[str, Any]]:
    needed = keyed.cells.select([unit, *_SUMS, "kid"])
    grouped = needed.group_by(unit, use_threads=False).aggregate(
        [(column, "sum") for column in _SUMS] + [("kid", "count_distinct")]
    )
    grouped = grouped.sort_by(unit)
    columns = [grouped.column(f"{column}_sum").to_pylist() for column in _SUMS]
    # Days since 1970 to ISO dates by hand: Arrow's dates to Python objects cost more.
    periods = grouped.column(unit).cast(pa.int32()).to_pylist()
    people = grouped.column("kid_count_distinct").to_pylist()
    return [
        {
            "period_start": date.fromordinal(EPOCH_ORDINAL + period).isoformat(),
            **dict(zip(_SUMS, sums, strict=True)),
            "contributors": n,
        }
        for period, *sums, n in zip(periods, *columns, people, strict=True)
    ]


def _contributors(keyed: _Keyed) -> list[dict[str, Any]]:
    cells = keyed.cells
    grouped = cells.select(["kid", *_SUMS, "first_time", "last_time"])
    grouped = grouped.group_by("kid", use_threads=False).aggregate(
        [(column, "sum") for column in _SUMS] + [("first_time", "min"), ("last_time", "max")]
    )
    # Whose name and email a contributor shows: those of its latest commit, (time, sha). Within
    # one raw identity the latest time is in a single cell (equal times share week and month).
    latest = cells.select(["pair", "last_time"])
    latest = latest.group_by("pair", use_threads=False).aggregate([("last_time", "max")])
    pair_latest = pc.take(
        latest.column("last_time_max"),
        pc.index_in(cells.column("pair"), value_set=latest.column("pair")),
    )
    newest = cells.filter(pc.equal(cells.column("last_time"), pair_latest))
    shown: dict[int, tuple[int, str, int]] = {}
    for pair, time, sha in zip(
        newest.column("pair").to_pylist(),
        newest.column("last_time").to_pylist(),
        newest.column("last_sha").to_pylist(),
        strict=True,
    ):
        kid = keyed.pair_keys[pair]
        if kid not in shown or (time, sha) > shown[kid][:2]:
            shown[kid] = (time, sha, pair)
    rows = []
    sums = [grouped.column(f"{column}_sum").to_pylist() for column in _SUMS]
    for kid, *totals, first, last in zip(
        grouped.column("kid").to_pylist(),
        *sums,
        grouped.column("first_time_min").to_pylist(),
        grouped.column("last_time_max").to_pylist(),
        strict=True,
    ):
        pair = shown[kid][2]
        rows.append(
            {
                "key": keyed.keys[kid],
                "name": keyed.names[pair],
                "email": keyed.emails[pair],
                **dict(zip(_SUMS, totals, strict=True)),
                "first_commit_time": first,
                "last_commit_time": last,
            }
        )
    rows.sort(
        key=lambda r: (-(r["additions_lines"] + r["deletions_lines"]), -r["commits"], r["key"])
    )
    return rows


def _sum(cells: pa.Table, column: str) -> int:
    return pc.sum(cells.column(column)).as_py() or 0


def aggregate_tally(tally: Tally, mailmap: pygit2.Mailmap) -> Aggregates:
    """Totals, activity, punch card and contributors from the tally's cells, the mailmap applied
    over their identities."""
    cells = tally.cells
    keyed = _keyed(cells, mailmap)
    totals = Totals(
        _sum(cells, "commits"),
        _sum(cells, "merges"),
        len(keyed.keys),
        _sum(cells, "additions_lines"),
        _sum(cells, "deletions_lines"),
        _sum(cells, "addition_bytes"),
        _sum(cells, "deletion_bytes"),
        _utc(pc.min(cells.column("first_time")).as_py()),
        _utc(pc.max(cells.column("last_time")).as_py()),
        _sum(cells, "clamped"),
        sum(1 for name, email in keyed.raw if _shortened(name) or _shortened(email)),
    )
    punch_card = [{"weekday": d, "hour": h, "commits": n} for d, h, n in tally.punch_rows()]
    return Aggregates(
        totals,
        _series(keyed, "week"),
        _series(keyed, "month"),
        punch_card,
        _contributors(keyed),
    )


def _shortened(text: str) -> bool:
    return len(text) == MAX_IDENTITY_CHARS and text.endswith(SHORTENED)


def aggregate(commit_files: Sequence[Path], mailmap: pygit2.Mailmap) -> Aggregates:
    """The aggregates of every commit row in these parts (a fresh tally)."""
    return aggregate_tally(tally_commits(commit_files), mailmap)
