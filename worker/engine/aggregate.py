"""Phase 6: totals, activity, punch card and contributors, from the tally (worker/engine/tally.py).

Identities go through the `.mailmap` at the default branch's head and are keyed by lower-cased
email; the mailmap is applied over the tally's identities, not the commits, so a change to it
re-keys the whole history on the next run at the cost of an aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pygit2

from worker.engine.extract import MAX_IDENTITY_CHARS, SHORTENED
from worker.engine.tally import Tally, connection, tally_commits


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


def _records(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def identities_of(cells: pa.Table, mailmap: pygit2.Mailmap) -> pa.Table:
    """Each raw identity of `cells` with its name, email and key after the mailmap."""
    pairs = sorted(
        set(
            zip(
                cells.column("author_name").to_pylist(),
                cells.column("author_email").to_pylist(),
                strict=True,
            )
        )
    )
    names, emails, mapped_names, mapped_emails, keys = [], [], [], [], []
    for name, email in pairs:
        mapped_name, mapped_email = map_identity(mailmap, name, email)
        names.append(name)
        emails.append(email)
        mapped_names.append(mapped_name)
        mapped_emails.append(mapped_email)
        keys.append(mapped_email.lower())
    return pa.table(
        {
            "author_name": pa.array(names, pa.string()),
            "author_email": pa.array(emails, pa.string()),
            "name": pa.array(mapped_names, pa.string()),
            "email": pa.array(mapped_emails, pa.string()),
            "key": pa.array(keys, pa.string()),
        }
    )


_TALLY_SERIES = """
    SELECT strftime(c.{unit}, '%Y-%m-%d') AS period_start,
           sum(c.commits)::BIGINT AS commits,
           sum(c.additions_lines)::BIGINT AS additions_lines,
           sum(c.deletions_lines)::BIGINT AS deletions_lines,
           sum(c.addition_bytes)::BIGINT AS addition_bytes,
           sum(c.deletion_bytes)::BIGINT AS deletion_bytes,
           count(DISTINCT i.key) AS contributors
    FROM cells c JOIN identities i USING (author_name, author_email)
    GROUP BY 1 ORDER BY 1
"""


def aggregate_tally(tally: Tally, mailmap: pygit2.Mailmap) -> Aggregates:
    """Totals, activity, punch card and contributors from the tally's cells, the mailmap applied
    over their identities."""
    con = connection()
    try:
        con.register("cells", tally.cells)
        identities = identities_of(tally.cells, mailmap)
        con.register("identities", identities)
        row = con.execute(
            """
            SELECT coalesce(sum(commits), 0)::BIGINT, coalesce(sum(merges), 0)::BIGINT,
                   count(DISTINCT i.key),
                   coalesce(sum(additions_lines), 0)::BIGINT,
                   coalesce(sum(deletions_lines), 0)::BIGINT,
                   coalesce(sum(addition_bytes), 0)::BIGINT,
                   coalesce(sum(deletion_bytes), 0)::BIGINT,
                   min(first_time), max(last_time), coalesce(sum(clamped), 0)::BIGINT
            FROM cells c JOIN identities i USING (author_name, author_email)
            """
        ).fetchone()
        assert row is not None
        shortened = sum(
            1
            for name, email in zip(
                identities.column("author_name").to_pylist(),
                identities.column("author_email").to_pylist(),
                strict=True,
            )
            if _shortened(name) or _shortened(email)
        )
        commits, merges, people, adds, dels, add_bytes, del_bytes, first, last, clamped = row
        totals = Totals(
            commits,
            merges,
            people,
            adds,
            dels,
            add_bytes,
            del_bytes,
            _utc(first),
            _utc(last),
            clamped,
            shortened,
        )
        weekly = _records(con, _TALLY_SERIES.format(unit="week"))
        monthly = _records(con, _TALLY_SERIES.format(unit="month"))
        punch_card = [{"weekday": d, "hour": h, "commits": n} for d, h, n in tally.punch_rows()]
        contributors = _records(
            con,
            """
            SELECT i.key,
                   arg_max(i.name, (c.last_time, c.last_sha)) AS name,
                   arg_max(i.email, (c.last_time, c.last_sha)) AS email,
                   sum(c.commits)::BIGINT AS commits,
                   sum(c.additions_lines)::BIGINT AS additions_lines,
                   sum(c.deletions_lines)::BIGINT AS deletions_lines,
                   sum(c.addition_bytes)::BIGINT AS addition_bytes,
                   sum(c.deletion_bytes)::BIGINT AS deletion_bytes,
                   min(c.first_time) AS first_commit_time,
                   max(c.last_time) AS last_commit_time
            FROM cells c JOIN identities i USING (author_name, author_email)
            GROUP BY i.key
            ORDER BY sum(c.additions_lines + c.deletions_lines) DESC, sum(c.commits) DESC, i.key
            """,
        )
    finally:
        con.close()
    return Aggregates(totals, weekly, monthly, punch_card, contributors)


def _shortened(text: str) -> bool:
    return len(text) == MAX_IDENTITY_CHARS and text.endswith(SHORTENED)


def aggregate(commit_files: Sequence[Path], mailmap: pygit2.Mailmap) -> Aggregates:
    """The aggregates of every commit row in these parts (a fresh tally)."""
    return aggregate_tally(tally_commits(commit_files), mailmap)
