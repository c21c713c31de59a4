"""Phase 6: DuckDB over the stored commit rows: totals, activity, punch card, ownership.

Identities go through the `.mailmap` at the default branch's head and are keyed by lower-cased
email, so a change to the mailmap re-keys the whole history on the next run.
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

from worker.engine.extract import EARLIEST_TIME, LATEST_TIME, MAX_IDENTITY_CHARS, SHORTENED


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


_SERIES = """
    SELECT strftime(date_trunc('{unit}', make_timestamp(c.author_time * 1000000)), '%Y-%m-%d')
               AS period_start,
           count(*) AS commits,
           sum(c.additions_lines)::BIGINT AS additions_lines,
           sum(c.deletions_lines)::BIGINT AS deletions_lines,
           sum(c.addition_bytes)::BIGINT AS addition_bytes,
           sum(c.deletion_bytes)::BIGINT AS deletion_bytes,
           count(DISTINCT i.key) AS contributors
    FROM commits c JOIN identities i USING (author_name, author_email)
    GROUP BY 1 ORDER BY 1
"""


_COLUMNS = (
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


def aggregate(commit_files: Sequence[Path], mailmap: pygit2.Mailmap) -> Aggregates:
    con = duckdb.connect()
    try:
        if commit_files:
            # Read the parts once into memory: every query below scans the commits again.
            con.read_parquet([str(p) for p in commit_files]).select(", ".join(_COLUMNS)).create(
                "commits"
            )
        else:
            con.execute(
                "CREATE TABLE commits (sha VARCHAR, is_merge BOOLEAN, author_name VARCHAR,"
                " author_email VARCHAR, author_time BIGINT, author_offset SMALLINT,"
                " additions_lines BIGINT, deletions_lines BIGINT, addition_bytes BIGINT,"
                " deletion_bytes BIGINT)"
            )
        raw = con.execute("SELECT DISTINCT author_name, author_email FROM commits").fetchall()
        names, emails, mapped_names, mapped_emails, keys = [], [], [], [], []
        for name, email in raw:
            mapped_name, mapped_email = map_identity(mailmap, name, email)
            names.append(name)
            emails.append(email)
            mapped_names.append(mapped_name)
            mapped_emails.append(mapped_email)
            keys.append(mapped_email.lower())
        identities = pa.table(
            {
                "author_name": pa.array(names, pa.string()),
                "author_email": pa.array(emails, pa.string()),
                "name": pa.array(mapped_names, pa.string()),
                "email": pa.array(mapped_emails, pa.string()),
                "key": pa.array(keys, pa.string()),
            }
        )
        con.register("identities", identities)
        row = con.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE is_merge), count(DISTINCT i.key),
                   coalesce(sum(additions_lines), 0)::BIGINT,
                   coalesce(sum(deletions_lines), 0)::BIGINT,
                   coalesce(sum(addition_bytes), 0)::BIGINT,
                   coalesce(sum(deletion_bytes), 0)::BIGINT,
                   min(author_time), max(author_time),
                   count(*) FILTER (WHERE author_time NOT BETWEEN ? AND ?),
                   count(DISTINCT (author_name, author_email)) FILTER (
                       WHERE length(author_name) = ? AND ends_with(author_name, ?)
                          OR length(author_email) = ? AND ends_with(author_email, ?))
            FROM commits c JOIN identities i USING (author_name, author_email)
            """,
            [
                EARLIEST_TIME + 1,
                LATEST_TIME - 1,
                MAX_IDENTITY_CHARS,
                SHORTENED,
                MAX_IDENTITY_CHARS,
                SHORTENED,
            ],
        ).fetchone()
        assert row is not None
        (commits, merges, people, adds, dels, add_bytes, del_bytes, first, last, clamped) = row[:10]
        shortened = row[10]
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
        weekly = _records(con, _SERIES.format(unit="week"))
        monthly = _records(con, _SERIES.format(unit="month"))
        punch_card = _records(
            con,
            """
            WITH local AS (
                SELECT make_timestamp((author_time + author_offset::BIGINT * 60) * 1000000) AS t
                FROM commits)
            SELECT isodow(t) - 1 AS weekday, hour(t) AS hour, count(*) AS commits
            FROM local GROUP BY 1, 2 ORDER BY 1, 2
            """,
        )
        contributors = _records(
            con,
            """
            SELECT i.key,
                   arg_max(i.name, (c.author_time, c.sha)) AS name,
                   arg_max(i.email, (c.author_time, c.sha)) AS email,
                   count(*) AS commits,
                   sum(c.additions_lines)::BIGINT AS additions_lines,
                   sum(c.deletions_lines)::BIGINT AS deletions_lines,
                   sum(c.addition_bytes)::BIGINT AS addition_bytes,
                   sum(c.deletion_bytes)::BIGINT AS deletion_bytes,
                   min(c.author_time) AS first_commit_time,
                   max(c.author_time) AS last_commit_time
            FROM commits c JOIN identities i USING (author_name, author_email)
            GROUP BY i.key
            ORDER BY sum(c.additions_lines + c.deletions_lines) DESC, count(*) DESC, i.key
            """,
        )
    finally:
        con.close()
    return Aggregates(totals, weekly, monthly, punch_card, contributors)


def _records(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
