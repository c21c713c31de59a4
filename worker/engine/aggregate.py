"""Phase 6: totals, activity, punch card and contributors, from the tally (worker/engine/tally.py).

Identities go through the `.mailmap` at the default branch's head and are keyed by lower-cased
email; the mailmap is applied over the tally's identities, not the commits, so a change to it
re-keys the whole history on the next run at the cost of an aggregation.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pygit2

from worker.engine.extract import MAX_IDENTITY_CHARS, SHORTENED
from worker.engine.mailmap import Mailmap
from worker.engine.tally import AUTHORED, Rows, Rules, Tally, tally_rows


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
    # The activity series: each period's ActivityPeriod as JSON, by its first day (days since
    # 1970).
    weekly: dict[int, str]
    monthly: dict[int, str]
    punch_card: list[dict[str, Any]]
    # Authors by churn, then the people who only co-authored (`commits` 0).
    contributors: list[dict[str, Any]]
    # Definition 13: AuthoredTotals' fields; per excluded reason, ExcludedFigures' fields.
    authored: dict[str, int]
    excluded: dict[str, dict[str, int]]
    # ContributorActivityRow's fields and "key", "weeks" being the JSON text of the list.
    contributor_activity: list[dict[str, Any]]
    # The lower-cased emails of the people of authored commits.
    authored_keys: list[str]
    # Every identity's contributor and bot flag, and the co-authored commits, for the paths.
    people: People | None = None
    co_authored: list[_CoAuthored] | None = None


def head_blob(repo: pygit2.Repository, head: str | None, name: str) -> pygit2.Blob | None:
    """The file `name` at the root of `head`'s tree; None if there is none (or not a file)."""
    if head is None:
        return None
    tree = repo[head].peel(pygit2.Tree)
    if name not in tree:
        return None
    blob = repo[tree[name].id]
    return blob if isinstance(blob, pygit2.Blob) else None


MAILMAP_FILE = ".mailmap"


def load_mailmap(repo: pygit2.Repository, head: str | None) -> Mailmap:
    """The mailmap at `head` (an empty one when there is none)."""
    blob = head_blob(repo, head, MAILMAP_FILE)
    return Mailmap() if blob is None else Mailmap(blob.data)


IGNORE_REVS_FILE = ".git-blame-ignore-revs"
_OBJECT_NAME = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def load_ignored_revisions(repo: pygit2.Repository, head: str | None) -> frozenset[str]:
    """The commits `.git-blame-ignore-revs` at `head` names (definition 12): one full object
    name per line; blank lines, `#` comments and anything else skipped."""
    blob = head_blob(repo, head, IGNORE_REVS_FILE)
    if blob is None:
        return frozenset()
    names = set()
    for line in blob.data.decode("utf-8", "replace").splitlines():
        text = line.strip().lower()
        if _OBJECT_NAME.fullmatch(text):
            names.add(text)
    return frozenset(names)


def map_identity(mailmap: Mailmap, name: str, email: str) -> tuple[str, str]:
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
    people: People  # every identity's kid and whether it is a bot, co-authors' included


class People:
    """Contributors by lower-cased email after the mailmap (`kid`: an index into `keys`), and
    which of them are bots (definition 10): a contributor is one if any identity of theirs is."""

    def __init__(self, mailmap: Mailmap, bot_globs: Sequence[str]) -> None:
        self.mailmap = mailmap
        self.globs = [glob.lower() for glob in bot_globs]
        self.keys: list[str] = []
        self.bots: list[bool] = []
        self._kids: dict[str, int] = {}
        self._resolved: dict[tuple[str, str], tuple[str, str, int]] = {}

    def resolve(self, name: str, email: str) -> tuple[str, str, int]:
        """(name, email) after the mailmap, and their kid."""
        found = self._resolved.get((name, email))
        if found is not None:
            return found
        mapped_name, mapped_email = map_identity(self.mailmap, name, email)
        key = mapped_email.lower()
        kid = self._kids.setdefault(key, len(self.keys))
        if kid == len(self.keys):
            self.keys.append(key)
            self.bots.append(False)
        if not self.bots[kid] and self._is_bot(mapped_name, mapped_email):
            self.bots[kid] = True
        found = self._resolved[(name, email)] = (mapped_name, mapped_email, kid)
        return found

    def kid_of(self, key: str) -> int | None:
        """The kid of the contributor keyed `key`, None if none resolved to it yet."""
        return self._kids.get(key)

    def kids(self, names: pa.ChunkedArray, emails: pa.ChunkedArray) -> pa.Array:
        """Each row's kid, resolving each distinct (name, email) once."""
        if not len(names):
            return pa.array([], pa.int32())
        pair, raw = _identities(names, emails)
        kid_of_pair = [self.resolve(name, email)[2] for name, email in raw]
        return pc.take(pa.array(kid_of_pair, pa.int32()), pair)

    def _is_bot(self, name: str, email: str) -> bool:
        name, email = name.lower(), email.lower()
        local = email.rsplit("@", 1)[0]
        if name.endswith(_BOT_SUFFIX) or local.endswith(_BOT_SUFFIX):
            return True
        return any(fnmatchcase(name, g) or fnmatchcase(email, g) for g in self.globs)


_BOT_SUFFIX = "[bot]"


def _identities(
    names: pa.ChunkedArray, emails: pa.ChunkedArray
) -> tuple[pa.Array, list[tuple[str, str]]]:
    """Each row's identity as an index into the distinct (name, email) pairs, and the pairs:
    grouped on integer codes, so that the mailmap is resolved once per identity."""
    name_codes = pc.dictionary_encode(names).combine_chunks()
    email_codes = pc.dictionary_encode(emails).combine_chunks()
    width = max(len(email_codes.dictionary), 1)
    code = pc.add(
        pc.multiply(name_codes.indices.cast(pa.int64()), pa.scalar(width, pa.int64())),
        email_codes.indices.cast(pa.int64()),
    )
    codes = pc.unique(code)
    name_list = name_codes.dictionary.to_pylist()
    email_list = email_codes.dictionary.to_pylist()
    pairs = [(name_list[value // width], email_list[value % width]) for value in codes.to_pylist()]
    return pc.index_in(code, value_set=codes), pairs


def _keyed(cells: pa.Table, people: People) -> _Keyed:
    pair, raw = _identities(cells.column("author_name"), cells.column("author_email"))
    mapped_names: list[str] = []
    mapped_emails: list[str] = []
    pair_keys: list[int] = []
    for name, email in raw:
        mapped_name, mapped_email, kid = people.resolve(name, email)
        mapped_names.append(mapped_name)
        mapped_emails.append(mapped_email)
        pair_keys.append(kid)
    kid = pc.take(pa.array(pair_keys, pa.int32()), pair)
    keyed = cells.append_column("pair", pair).append_column("kid", kid)
    return _Keyed(keyed, mapped_names, mapped_emails, pair_keys, people.keys, raw, people)


def _series(keyed: _Keyed, unit: str, kept: Kept | None) -> dict[int, str]:
    """The activity series by `unit` ("week" or "month"): each period's ActivityPeriod as JSON,
    by its first day (days since 1970). With `kept`, only the periods of the cells a push added
    are counted again (from every cell of theirs), the others taken from `kept`."""
    cells = keyed.cells
    periods: dict[int, str] = {}
    if kept is not None:
        touched = kept.periods[unit]
        periods = {day: text for day, text in kept.series[unit].items() if day not in touched}
        value_set = pa.array(sorted(touched), pa.int32()).cast(pa.date32())
        cells = cells.filter(pc.is_in(cells.column(unit), value_set=value_set))
    needed = cells.select([unit, *_SUMS, *_MASKED, "kid"])
    grouped = needed.group_by(unit, use_threads=False).aggregate(
        [(column, "sum") for column in (*_SUMS, *_MASKED)] + [("kid", "count_distinct")]
    )
    members = {
        "period_start": grouped.column(unit),
        **{column: grouped.column(f"{column}_sum") for column in _SUMS},
        "contributors": grouped.column("kid_count_distinct"),
        **{column: grouped.column(f"masked_{column}_sum") for column in AUTHORED[:2]},
    }
    days = grouped.column(unit).cast(pa.int32()).to_pylist()
    periods.update(zip(days, _json_rows(members).to_pylist(), strict=True))
    return periods


def json_list(rows: dict[int, str]) -> str:
    """The JSON of the list of these rows (JSON texts), in the order of their keys."""
    return "[" + ",".join(rows[key] for key in sorted(rows)) + "]"


def _json_rows(members: dict[str, pa.ChunkedArray]) -> pa.ChunkedArray:
    """Each row as the JSON object of these members, in this order, written by Arrow's string
    kernels: a long history has thousands of periods and tens of thousands of person-weeks,
    which models would validate and serialize one by one on every push. The members are
    numbers or dates (written as ISO dates), which need no escaping; tests check the text
    against the models' own."""
    pieces: list[str | pa.ChunkedArray] = []
    before = "{"
    for name, column in members.items():
        quote = '"' if pa.types.is_date(column.type) else ""
        pieces += [f'{before}"{name}":{quote}', column.cast(pa.string())]
        before = f"{quote},"
    pieces.append(before.removesuffix(",") + "}")
    return pc.binary_join_element_wise(*pieces, "")


# The authored columns of the cells that count as authored (0 in the others), as "masked_*".
_MASKED = (*(f"masked_{column}" for column in AUTHORED), "masked_commits")


def _with_masks(keyed: _Keyed) -> pa.Table:
    """The cells with a `bot` flag (their author's) and the `masked_*` columns."""
    cells = keyed.cells
    bot = pc.take(pa.array(keyed.people.bots, pa.bool_()), cells.column("kid"))
    authored = pc.and_(pc.invert(cells.column("ignored")), pc.invert(bot))
    cells = cells.append_column("bot", bot).append_column("authored", authored)
    for column, masked in zip((*AUTHORED, "commits"), _MASKED, strict=True):
        cells = cells.append_column(masked, pc.if_else(authored, cells.column(column), 0))
    return cells


@dataclass
class _CoAuthored:
    """One commit with co-authors: its author's and co-authors' kids (co-authors distinct, the
    author left out), its week, and its authored figures."""

    sha: str
    time: int
    week: int  # days since 1970 of its Monday
    author: int
    co_authors: list[int]
    names: dict[int, str]  # each co-author's name after the mailmap
    emails: dict[int, str]
    ignored: bool
    figures: tuple[int, ...]  # AUTHORED's


def _co_authored(table: pa.Table, people: People) -> list[_CoAuthored]:
    """The co-authored commits, their identities resolved (which also decides who is a bot)."""
    commits = []
    for row in table.to_pylist():
        _, _, author = people.resolve(row["author_name"], row["author_email"])
        names: dict[int, str] = {}
        emails: dict[int, str] = {}
        for person in row["co_authors"]:
            name, email, kid = people.resolve(person["name"], person["email"])
            if kid != author and kid not in names:
                names[kid], emails[kid] = name, email
        days = row["author_time"] // _DAY
        commits.append(
            _CoAuthored(
                row["sha"],
                row["author_time"],
                days - (days + 3) % 7,
                author,
                list(names),
                names,
                emails,
                row["ignored"],
                tuple(row[column] for column in AUTHORED),
            )
        )
    return commits


_DAY = 86_400


@dataclass
class _Shares:
    """Per person: their share of the authored figures, in total and per week, and the authored
    commits they are among the people of."""

    totals: dict[int, list[int]]  # kid -> AUTHORED's four, then commits (_MASKED's order)
    weeks: pa.Table  # kid, week and _MASKED's columns, by kid then week


def _shares(
    cells: pa.Table, co_authored: list[_CoAuthored], people: People, only: set[int] | None
) -> _Shares:
    """Authored figures per person (definition 11): a commit's authors' cells give it all, then
    each co-authored commit moves floor(x / n) of each figure x to each of its other n - 1
    people, and counts once for each of them. Grouped in Arrow: a long history has tens of
    thousands of person-weeks. The weeks are those of the people `only` names (None: all)."""
    authored = cells.filter(cells.column("authored"))
    moves: dict[str, list[int]] = {column: [] for column in ("kid", "week", *_MASKED)}
    for commit in co_authored:
        if commit.ignored or people.bots[commit.author]:
            continue
        others = [kid for kid in commit.co_authors if not people.bots[kid]]
        if not others:
            continue
        n = len(others) + 1
        share = [x // n for x in commit.figures]
        for kid, sign in [(commit.author, -(n - 1)), *((kid, 1) for kid in others)]:
            moves["kid"].append(kid)
            moves["week"].append(commit.week)
            for column, value in zip(_MASKED, share, strict=False):
                moves[column].append(sign * value)
            moves["masked_commits"].append(int(sign > 0))
    given = authored.select(["kid", "week", *_MASKED])
    moved = pa.table(moves, schema=given.schema)
    both = pa.concat_tables([given, moved]) if moved.num_rows else given
    by_kid = both.group_by("kid", use_threads=False).aggregate(
        [(column, "sum") for column in _MASKED]
    )
    sums = [by_kid.column(f"{column}_sum").to_pylist() for column in _MASKED]
    totals = {
        kid: list(figures)
        for kid, *figures in zip(by_kid.column("kid").to_pylist(), *sums, strict=True)
    }
    if only is not None:
        both = both.filter(
            pc.is_in(both.column("kid"), value_set=pa.array(sorted(only), pa.int32()))
        )
    # Grouped on one integer key (kid, then week): Arrow's grouping on two keys took from 3 to
    # 15 ms for the 30,000 person-weeks of a long history, on one a steady 4.
    key = pc.add(
        pc.multiply(both.column("kid").cast(pa.int64()), pa.scalar(1 << 32, pa.int64())),
        pc.add(both.column("week").cast(pa.int32()).cast(pa.int64()), pa.scalar(1 << 31)),
    )
    grouped = (
        both.select(list(_MASKED))
        .append_column("key", key)
        .group_by("key", use_threads=False)
        .aggregate([(column, "sum") for column in _MASKED])
        .sort_by("key")
    )
    key = grouped.column("key")
    week = pc.subtract(pc.bit_wise_and(key, pa.scalar((1 << 32) - 1)), pa.scalar(1 << 31))
    weeks = pa.table(
        {
            "kid": pc.shift_right(key, pa.scalar(32)).cast(pa.int32()),
            "week": week.cast(pa.int32()).cast(pa.date32()),
            **{column: grouped.column(f"{column}_sum") for column in _MASKED},
        }
    )
    return _Shares(totals, weeks)


def _excluded(cells: pa.Table) -> dict[str, dict[str, int]]:
    """Definition 13's reasons, each change under the first that applies."""
    ignored = cells.filter(cells.column("ignored"))
    bots = cells.filter(pc.and_(pc.invert(cells.column("ignored")), cells.column("bot")))
    authored = cells.filter(cells.column("authored"))

    def figures(table: pa.Table, prefix: str, commits: str) -> dict[str, int]:
        return {
            "commits": _sum(table, commits),
            "additions_lines": _sum(table, f"{prefix}additions_lines"),
            "deletions_lines": _sum(table, f"{prefix}deletions_lines"),
        }

    return {
        "ignored_revisions": figures(ignored, "", "changed"),
        "bots": figures(bots, "", "changed"),
        "vendored": figures(authored, "vendored_", "vendored_commits"),
        "generated": figures(authored, "generated_", "generated_commits"),
    }


def _contributors(
    keyed: _Keyed, co_authored: list[_CoAuthored], shares: _Shares
) -> list[dict[str, Any]]:
    """Authors by churn (all-in figures, as git log counts them), each with their authored
    shares; then the people who only co-authored."""
    cells = keyed.cells
    people = keyed.people
    co_commits: dict[int, int] = {}
    for commit in co_authored:
        for kid in commit.co_authors:
            co_commits[kid] = co_commits.get(kid, 0) + 1
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
                "is_bot": people.bots[kid],
                **dict(zip(_SUMS, totals, strict=True)),
                "co_authored_commits": co_commits.get(kid, 0),
                **_authored_of(shares, kid),
                "first_commit_time": first,
                "last_commit_time": last,
            }
        )
    rows.sort(
        key=lambda r: (-(r["additions_lines"] + r["deletions_lines"]), -r["commits"], r["key"])
    )
    return rows + _only_co_authors(co_authored, {row["key"] for row in rows}, people, shares)


def _authored_of(shares: _Shares, kid: int) -> dict[str, int]:
    figures = shares.totals.get(kid, [0] * len(_MASKED))
    return dict(zip(AUTHORED, figures, strict=False))


def _only_co_authors(
    co_authored: list[_CoAuthored], authors: set[str], people: People, shares: _Shares
) -> list[dict[str, Any]]:
    """The people who co-authored commits but authored none: their name and email after the
    mailmap as their latest co-authored commit (by time, then sha) gives them."""
    seen: dict[int, dict[str, Any]] = {}
    for commit in co_authored:
        for kid in commit.co_authors:
            if people.keys[kid] in authors:
                continue
            row = seen.get(kid)
            if row is None:
                row = seen[kid] = {
                    "key": people.keys[kid],
                    "is_bot": people.bots[kid],
                    **dict.fromkeys(_SUMS, 0),
                    "co_authored_commits": 0,
                    **_authored_of(shares, kid),
                    "first_commit_time": commit.time,
                    "last_commit_time": commit.time,
                    "latest": (commit.time, ""),
                }
            row["co_authored_commits"] += 1
            row["first_commit_time"] = min(row["first_commit_time"], commit.time)
            row["last_commit_time"] = max(row["last_commit_time"], commit.time)
            if (commit.time, commit.sha) >= row["latest"]:
                row["latest"] = (commit.time, commit.sha)
                row["name"], row["email"] = commit.names[kid], commit.emails[kid]
    rows = list(seen.values())
    for row in rows:
        del row["latest"]
    return sorted(rows, key=_by_authored_churn("co_authored_commits"))


def _by_authored_churn(then: str) -> Callable[[dict[str, Any]], tuple[int, int, str]]:
    """Sort key: most authored churn first, then most `then`, then by key."""
    return lambda r: (
        -(r["authored_additions_lines"] + r["authored_deletions_lines"]),
        -r[then],
        r["key"],
    )


def _contributor_activity(
    contributors: list[dict[str, Any]],
    shares: _Shares,
    people: People,
    earlier: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Each non-bot person of authored commits, their authored shares week by week: the weeks
    of the people in `shares.weeks`, and for anyone else their weeks in `earlier` (a person's
    key to the JSON of their weeks as the last run wrote them; None: nobody else)."""
    shown = {row["key"]: row for row in contributors}
    weeks = shares.weeks
    bots = pa.array([kid for kid, bot in enumerate(people.bots) if bot], pa.int32())
    active = pc.and_(
        pc.greater(weeks.column("masked_commits"), 0),
        pc.invert(pc.is_in(weeks.column("kid").cast(pa.int32()), value_set=bots)),
    )
    weeks = weeks.filter(active)
    # Sorted by kid: each person's weeks are one run of rows, joined in Arrow.
    runs = weeks.group_by("kid", use_threads=False).aggregate([("kid", "count")]).sort_by("kid")
    offsets = pa.array([0, *itertools.accumulate(runs.column("kid_count").to_pylist())], pa.int32())
    members = {
        "week_start": weeks.column("week"),
        "commits": weeks.column("masked_commits"),
        **{column: weeks.column(f"masked_{column}") for column in AUTHORED[:2]},
    }
    texts = _json_rows(members).combine_chunks()
    lists = pc.binary_join(pa.ListArray.from_arrays(offsets, texts), ",").to_pylist()
    found = {
        kid: f"[{text}]" for kid, text in zip(runs.column("kid").to_pylist(), lists, strict=True)
    }
    for key, text in (earlier or {}).items():
        kid = people.kid_of(key)
        assert kid is not None and kid not in found, "earlier: known people not counted again"
        found[kid] = text
    result = []
    for kid, text in found.items():
        adds, dels, _ab, _db, commits = shares.totals[kid]
        person = shown[people.keys[kid]]
        result.append(
            {
                "key": people.keys[kid],
                "name": person["name"],
                "email": person["email"],
                "commits": commits,
                "authored_additions_lines": adds,
                "authored_deletions_lines": dels,
                "weeks": text,
            }
        )
    return sorted(result, key=_by_authored_churn("commits"))


def _sum(cells: pa.Table, column: str) -> int:
    return pc.sum(cells.column(column)).as_py() or 0


@dataclass(frozen=True)
class Reuse:
    """What a push's aggregation may take over from the last run's, when that one counted the
    tally the push adds to under the same mailmap and bot globs: each person's
    contributor_activity weeks (the JSON of the list) and whether each person was a bot, by
    key; each activity period's JSON; and the tally of what the push adds (its cells and
    co-authored commits)."""

    weeks: dict[str, str]
    bots: dict[str, bool]
    # Each activity series ("week", "month"): its periods' ActivityPeriod JSON by first day.
    series: dict[str, dict[int, str]]
    added: Tally


@dataclass(frozen=True)
class Kept:
    """What `Reuse` lets an aggregation take over: the people and the periods (by unit) a push
    touched, whose figures are counted again; the others' as `Reuse` holds them."""

    people: set[int]
    weeks: dict[str, str]
    periods: dict[str, set[int]]
    series: dict[str, dict[int, str]]


def _touched(added: Tally, people: People) -> set[int]:
    """The kids of the people of `added`: the authors of its cells, the authors and co-authors
    of its co-authored commits."""
    identities = set(zip(*(added.cells.column(c).to_pylist() for c in _IDENTITY), strict=True))
    for row in added.coauthored.to_pylist():
        identities.add((row["author_name"], row["author_email"]))
        identities.update((person["name"], person["email"]) for person in row["co_authors"])
    return {people.resolve(name, email)[2] for name, email in identities}


_IDENTITY = ("author_name", "author_email")


def _kept(reuse: Reuse | None, people: People) -> Kept | None:
    """What to take over from the last run: only while no one known then changed whether they
    are a bot, which changes what counts as authored in every week of theirs and in the
    shares of the commits they co-authored."""
    if reuse is None:
        return None
    for key, bot in reuse.bots.items():
        kid = people.kid_of(key)
        if kid is None or people.bots[kid] != bot:
            return None
    touched = _touched(reuse.added, people)
    weeks = {key: text for key, text in reuse.weeks.items() if people.kid_of(key) not in touched}
    cells = reuse.added.cells
    periods = {
        unit: set(pc.unique(cells.column(unit)).cast(pa.int32()).to_pylist())
        for unit in ("week", "month")
    }
    return Kept(touched, weeks, periods, reuse.series)


def aggregate_tally(
    tally: Tally, mailmap: Mailmap, bot_globs: Sequence[str] = (), reuse: Reuse | None = None
) -> Aggregates:
    """Totals, activity, punch card, contributors and the authored figures from the tally's
    cells and co-authored commits, the mailmap and the bots applied over their identities.
    With `reuse`, only the weeks of the people a push touched are counted again."""
    people = People(mailmap, bot_globs)
    keyed = _keyed(tally.cells, people)
    authors = len(people.keys)  # before the co-authors join them
    co_authored = _co_authored(tally.coauthored, people)
    keyed = replace(keyed, cells=_with_masks(keyed))
    cells = keyed.cells
    totals = Totals(
        _sum(cells, "commits"),
        _sum(cells, "merges"),
        authors,
        _sum(cells, "additions_lines"),
        _sum(cells, "deletions_lines"),
        _sum(cells, "addition_bytes"),
        _sum(cells, "deletion_bytes"),
        _utc(pc.min(cells.column("first_time")).as_py()),
        _utc(pc.max(cells.column("last_time")).as_py()),
        _sum(cells, "clamped"),
        sum(1 for name, email in keyed.raw if _shortened(name) or _shortened(email)),
    )
    kept = _kept(reuse, people)
    shares = _shares(cells, co_authored, people, None if kept is None else kept.people)
    contributors = _contributors(keyed, co_authored, shares)
    activity = _contributor_activity(
        contributors, shares, people, None if kept is None else kept.weeks
    )
    punch_card = [{"weekday": d, "hour": h, "commits": n} for d, h, n in tally.punch_rows()]
    authored = {
        "commits": _sum(cells, "masked_commits"),
        "contributors": len(activity),
        **{
            column.removeprefix("authored_"): _sum(cells, f"masked_{column}") for column in AUTHORED
        },
    }
    return Aggregates(
        totals,
        _series(keyed, "week", kept),
        _series(keyed, "month", kept),
        punch_card,
        contributors,
        authored,
        _excluded(cells),
        activity,
        [row["key"] for row in activity],
        people,
        co_authored,
    )


def _shortened(text: str) -> bool:
    return len(text) == MAX_IDENTITY_CHARS and text.endswith(SHORTENED)


def aggregate(parts: Sequence[tuple[Path, Path]], mailmap: Mailmap, rules: Rules) -> Aggregates:
    """The aggregates of every row in these parts ((commits, files) Parquet files), counted
    afresh."""
    return aggregate_tally(tally_rows(Rows.of_parts(parts), rules), mailmap)
