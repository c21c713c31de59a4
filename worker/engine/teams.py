"""Teams (DESIGN.md definition 15): the figures of the files at the default head that each
CODEOWNERS owner owns (worker/engine/codeowners.py says who), and of the files nobody owns.

A team's figures are those of its files, so all but one come from the per-path state
(worker/engine/paths.py) of its files, whatever their number: files and lines at the head,
authored lines, contributors (the distinct people of the cells of its files), and each person's
authored churn (co-authors' shares per file and commit) for its top contributors and bus
factor. The one that does not add up file by file is `commits`, the distinct commits that
change at least one of its files: it is kept per team and counted again from the stored rows
only when a team's files change otherwise than by gaining files that have no history yet.

Owners are grouped case-insensitively, as GitHub compares them; a team is shown as the first
CODEOWNERS line that names it writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from worker.engine.codeowners import Codeowners

# The key of the files no rule gives an owner (no line matches, or the one that does names
# nobody). An owner's key is never empty.
UNOWNED = ""

# One row per (file at the head, owner's key); a file nobody owns has one row, under UNOWNED.
OWNERS_SCHEMA = pa.schema([("path", pa.binary()), ("owner", pa.string())])


def owner_key(owner: str) -> str:
    """How owners are grouped: GitHub compares user and team names, and emails, ignoring case."""
    return owner.lower()


def shown_owners(codeowners: Codeowners | None) -> dict[str, str]:
    """Each owner's key -> the owner as the first line naming it writes it."""
    shown: dict[str, str] = {}
    for rule in codeowners.rules if codeowners else ():
        for owner in rule.owners:
            shown.setdefault(owner_key(owner), owner)
    return shown


def match_owners(codeowners: Codeowners | None, paths: Iterable[bytes]) -> pa.Table:
    """OWNERS_SCHEMA rows for these files."""
    files: list[bytes] = []
    owners: list[str] = []
    for path in paths:
        found = codeowners.owners_of(path) if codeowners else None
        keys = list(dict.fromkeys(owner_key(owner) for owner in found or ())) or [UNOWNED]
        files += [path] * len(keys)
        owners += keys
    return pa.table(
        {"path": pa.array(files, pa.binary()), "owner": pa.array(owners, pa.string())},
        schema=OWNERS_SCHEMA,
    )


def update_owners(
    codeowners: Codeowners | None, head_files: pa.Array, known: pa.Table | None
) -> pa.Table:
    """The owners of the files at the head: `known`'s rows (matched by the same CODEOWNERS;
    None to match every file) for the files still there, the other files matched."""
    if known is None:
        return match_owners(codeowners, head_files.to_pylist())
    kept = known.filter(pc.is_in(known.column("path"), value_set=head_files))
    new = head_files.filter(pc.invert(pc.is_in(head_files, value_set=known.column("path"))))
    return pa.concat_tables([kept, match_owners(codeowners, new.to_pylist())])


def _files_by_owner(owners: pa.Table) -> dict[str, set[bytes]]:
    found: dict[str, set[bytes]] = {}
    for path, owner in zip(
        owners.column("path").to_pylist(), owners.column("owner").to_pylist(), strict=True
    ):
        found.setdefault(owner, set()).add(path)
    return found


def stale_teams(
    owners: pa.Table, before: pa.Table | None, had_history: pa.Array
) -> set[str] | None:
    """The teams whose commits must be counted again from the stored rows: those whose files
    lost one, or gained one with commits before this run's (`had_history`: the paths the
    per-path state held before the run). None: all of them (nothing was kept)."""
    if before is None:
        return None
    old, new = _files_by_owner(before), _files_by_owner(owners)
    with_history = set(had_history.to_pylist())
    stale = set()
    for owner, files in new.items():
        kept = old.get(owner, set())
        if kept - files or (files - kept) & with_history:
            stale.add(owner)
    return stale


def _owner_pairs(rows: pa.Table, owners: pa.Table) -> pa.Table:
    """The distinct (owner, sha) of `rows` (sha, path) changing one of each owner's files."""
    joined = rows.select(["sha", "path"]).join(owners, "path", join_type="inner", use_threads=False)
    return joined.group_by(["owner", "sha"], use_threads=False).aggregate([])


def _per_owner(pairs: pa.Table) -> dict[str, int]:
    counted = pairs.group_by("owner", use_threads=False).aggregate([("sha", "count")])
    return dict(
        zip(
            counted.column("owner").to_pylist(),
            counted.column("sha_count").to_pylist(),
            strict=True,
        )
    )


def commits_by_owner(rows: pa.Table, owners: pa.Table) -> dict[str, int]:
    """Per owner: the distinct commits of `rows` (sha, path) that change one of its files."""
    if not rows.num_rows or not owners.num_rows:
        return {}
    return _per_owner(_owner_pairs(rows, owners))


def count_commits(parts: Sequence[Path], owners: pa.Table) -> dict[str, int]:
    """commits_by_owner over every stored file row (Parquet parts), the given owners' only."""
    if not owners.num_rows or not parts:
        return {}
    pairs = []
    for files in parts:
        rows = pq.read_table(files, columns=["sha", "path"])
        rows = rows.filter(pc.is_in(rows.column("path"), value_set=owners.column("path")))
        pairs.append(_owner_pairs(rows, owners))
    distinct = pa.concat_tables(pairs).group_by(["owner", "sha"], use_threads=False).aggregate([])
    return _per_owner(distinct)


def update_commits(
    owners: pa.Table,
    kept: Mapping[str, int],
    stale: set[str] | None,
    added_rows: pa.Table,
    parts: Sequence[Path],
) -> dict[str, int]:
    """Each team's commits: `kept` (before the run) plus the added rows' for the teams not
    stale, counted again from every stored row (`parts`) for the stale ones (all when None)."""
    teams = set(owners.column("owner").to_pylist())
    recount = teams if stale is None else (stale | (teams - kept.keys())) & teams
    counts = {owner: kept[owner] for owner in teams - recount}
    added = commits_by_owner(added_rows, owners)
    for owner in counts:
        counts[owner] += added.get(owner, 0)
    if recount:
        chosen = owners.filter(
            pc.is_in(owners.column("owner"), value_set=pa.array(sorted(recount), pa.string()))
        )
        counted = count_commits(parts, chosen)
        counts |= {owner: counted.get(owner, 0) for owner in recount}
    return counts


@dataclass(frozen=True)
class TeamRow:
    """A team's figures (or the unowned files') but its people."""

    owner: str
    files: int
    lines: int
    commits: int
    authored_additions_lines: int
    authored_deletions_lines: int
    contributors: int


def team_figures(
    owners: pa.Table,
    lines: pa.Table,
    figures: pa.Table,
    cells: pa.Table,
    kids: pa.Array,
    commits: Mapping[str, int],
) -> list[TeamRow]:
    """Per owner key (UNOWNED included when it has files): the figures of its files.
    `lines` (path, lines) at the head; `figures` paths.path_figures'; `cells` the per-path
    cells and `kids` their contributors."""
    if not owners.num_rows:
        return []
    files = owners.join(
        lines.rename_columns(["path", "head_lines"]), "path", use_threads=False
    ).join(
        figures.select(["path", "authored_additions_lines", "authored_deletions_lines"]),
        "path",
        use_threads=False,
    )
    sums = files.group_by("owner", use_threads=False).aggregate(
        [
            ("path", "count"),
            ("head_lines", "sum"),
            ("authored_additions_lines", "sum"),
            ("authored_deletions_lines", "sum"),
        ]
    )
    people = pa.table({"path": cells.column("path"), "kid": kids})
    people = people.join(owners, "path", join_type="inner", use_threads=False)
    distinct = people.group_by("owner", use_threads=False).aggregate([("kid", "count_distinct")])
    contributors = dict(
        zip(
            distinct.column("owner").to_pylist(),
            distinct.column("kid_count_distinct").to_pylist(),
            strict=True,
        )
    )
    columns = (
        "owner",
        "path_count",
        "head_lines_sum",
        "authored_additions_lines_sum",
        "authored_deletions_lines_sum",
    )
    rows = [
        TeamRow(
            owner,
            count,
            head_lines or 0,
            commits.get(owner, 0),
            adds or 0,
            dels or 0,
            contributors.get(owner, 0),
        )
        for owner, count, head_lines, adds, dels in zip(
            *(sums.column(name).to_pylist() for name in columns), strict=True
        )
    ]
    return sorted(rows, key=lambda row: row.owner)


def team_churn(owners: pa.Table, churn: pa.Table) -> pa.Table:
    """(path, kid, churn) with each owner key as the path: paths.person_churn's rows of the
    files each team owns, added up per team, ready for paths.leaders."""
    joined = churn.join(owners, "path", join_type="inner", use_threads=False)
    grouped = joined.group_by(["owner", "kid"], use_threads=False).aggregate([("churn", "sum")])
    return pa.table(
        {
            "path": grouped.column("owner").cast(pa.binary()),
            "kid": grouped.column("kid"),
            "churn": grouped.column("churn_sum"),
        }
    )
