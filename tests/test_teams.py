"""Teams' owners and commit counts (worker/engine/teams.py), kept from run to run: a team's
commits are counted again from the stored rows exactly when its files change otherwise than by
gaining files with no history, and the kept counts plus a push's equal a count from scratch."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from worker.engine.codeowners import parse_codeowners
from worker.engine.teams import (
    UNOWNED,
    commits_by_owner,
    match_owners,
    shown_owners,
    stale_teams,
    update_commits,
    update_owners,
)

RULES = parse_codeowners(b"*.py @Acme/Core\nsrc/ @acme/core @Bob\nvendor/\n")


def rows(*pairs: tuple[str, str]) -> pa.Table:
    return pa.table(
        {
            "sha": pa.array([sha for sha, _ in pairs], pa.string()),
            "path": pa.array([path.encode() for _, path in pairs], pa.binary()),
        }
    )


def owned(table: pa.Table) -> dict[str, set[bytes]]:
    found: dict[str, set[bytes]] = {}
    for row in table.to_pylist():
        found.setdefault(row["owner"], set()).add(row["path"])
    return found


def test_owners_fold_case_and_files_nobody_owns_are_unowned() -> None:
    table = match_owners(RULES, [b"a.py", b"src/b.py", b"vendor/c.py", b"README"])
    assert owned(table) == {
        "@acme/core": {b"a.py", b"src/b.py"},
        "@bob": {b"src/b.py"},
        UNOWNED: {b"vendor/c.py", b"README"},
    }
    assert shown_owners(RULES) == {"@acme/core": "@Acme/Core", "@bob": "@Bob"}
    assert owned(match_owners(None, [b"a.py"])) == {UNOWNED: {b"a.py"}}


def test_kept_owners_match_only_new_files() -> None:
    known = match_owners(RULES, [b"a.py", b"gone.py"])
    head = pa.array([b"a.py", b"src/new.py"], pa.binary())
    # Matched with other rules, a kept row shows it was not matched again.
    again = update_owners(parse_codeowners(b"* @other\n"), head, known)
    assert owned(again) == {"@acme/core": {b"a.py"}, "@other": {b"src/new.py"}}
    assert owned(update_owners(RULES, head, None)) == {
        "@acme/core": {b"a.py", b"src/new.py"},
        "@bob": {b"src/new.py"},
    }


def test_stale_teams() -> None:
    before = match_owners(RULES, [b"a.py", b"src/b.py", b"README"])
    history = pa.array([b"a.py", b"src/b.py", b"README", b"old.py"], pa.binary())
    # A new file with no history: nothing stale. One with history (re-added): its teams.
    assert (
        stale_teams(
            match_owners(RULES, [b"a.py", b"src/b.py", b"README", b"c.py"]), before, history
        )
        == set()
    )
    assert stale_teams(
        match_owners(RULES, [b"a.py", b"src/b.py", b"README", b"old.py"]), before, history
    ) == {"@acme/core"}
    # A file gone: its teams; the unowned files' too.
    assert stale_teams(match_owners(RULES, [b"a.py", b"README"]), before, history) == {"@acme/core"}
    assert stale_teams(match_owners(RULES, [b"a.py", b"src/b.py"]), before, history) == set()
    assert stale_teams(before, None, history) is None


def test_kept_counts_plus_a_push_equal_a_count_from_scratch(tmp_path: Path) -> None:
    old = rows(("c1", "a.py"), ("c1", "src/b.py"), ("c2", "src/b.py"), ("c3", "README"))
    new = rows(("c4", "a.py"), ("c4", "c.py"), ("c5", "README"), ("c5", "src/b.py"))
    parts = []
    for n, table in enumerate((old, new)):
        parts.append(tmp_path / f"{n}.files.parquet")
        pq.write_table(table, parts[-1])
    before = match_owners(RULES, [b"a.py", b"src/b.py", b"README"])
    kept = commits_by_owner(old, before)
    assert kept == {"@acme/core": 2, "@bob": 2, UNOWNED: 1}
    owners = match_owners(RULES, [b"a.py", b"src/b.py", b"README", b"c.py"])
    history = pa.array([b"a.py", b"src/b.py", b"README"], pa.binary())
    stale = stale_teams(owners, before, history)
    scratch = commits_by_owner(pa.concat_tables([old, new]), owners)
    assert update_commits(owners, kept, stale, new, parts) == scratch
    # Counted again, stale or not, the same.
    assert update_commits(owners, kept, None, new, parts) == scratch
    # A kept count that is wrong stays wrong unless its team is stale: the kept counts are used.
    wrong = kept | {"@bob": 7}
    assert update_commits(owners, wrong, stale, new, parts)["@bob"] == 8
    assert update_commits(owners, wrong, {"@bob"}, new, parts)["@bob"] == scratch["@bob"]
