"""The per-path state (worker/engine/paths.py) against a count made by hand, row by row: each
file change counts for its file, every directory above it and the root, a commit once per path;
and cells counted a part at a time and merged equal cells counted at once."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.engine.classes import CLASSES_SCHEMA, PathClass
from worker.engine.extract import COMMITS_SCHEMA, FILES_SCHEMA
from worker.engine.paths import (
    ROOT,
    ancestors,
    merge_path_cells,
    path_cells,
    path_commits,
)
from worker.engine.tally import Rules

# Nested paths, a non-UTF-8 one, and a name that is a file in some commits and a directory in
# others.
PATHS = [b"a", b"a/b/c.py", b"a/b/d.md", b"a/e", b"x/\xff/y.js", b"vendor/v.js", b"a/b"]
CLASSES = pa.table(
    {
        "path": [b"a/b/d.md", b"vendor/v.js"],
        "class": [int(PathClass.DOCUMENTATION), int(PathClass.VENDORED)],
    },
    schema=CLASSES_SCHEMA,
)


def test_ancestors() -> None:
    assert ancestors(b"a/b/c.py") == [b"a/b", b"a", ROOT]
    assert ancestors(b"top") == [ROOT]
    assert ancestors(b"x/\xff/y") == [b"x/\xff", b"x", ROOT]


_COMMIT = st.tuples(
    st.sampled_from([("Ann", "ann@x.org"), ("Bob", "bob@x.org"), ("ann", "ANN@x.org")]),
    st.integers(0, 10**9),
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.integers(0, 9), st.integers(0, 9)),
        max_size=4,
        unique_by=lambda change: change[0],
    ),
    st.booleans(),
)


def rows_of(commits: list[Any]) -> tuple[pa.Table, pa.Table, set[str]]:
    commit_rows, file_rows, ignored = [], [], set()
    for n, ((name, email), time, changes, skip) in enumerate(commits):
        sha = f"{n:040x}"
        commit_rows.append(
            {"sha": sha, "author_name": name, "author_email": email, "author_time": time}
        )
        for path, adds, dels in changes:
            file_rows.append(
                {"sha": sha, "path": path, "additions_lines": adds, "deletions_lines": dels}
            )
        if skip:
            ignored.add(sha)
    commits_schema = pa.schema(
        [COMMITS_SCHEMA.field(n) for n in commit_rows[0]] if commit_rows else []
    )
    files_schema = pa.schema(
        [FILES_SCHEMA.field(n) for n in ("sha", "path", "additions_lines", "deletions_lines")]
    )
    return (
        pa.Table.from_pylist(commit_rows, commits_schema),
        pa.Table.from_pylist(file_rows, files_schema),
        ignored,
    )


def by_hand(commits: pa.Table, files: pa.Table, ignored: set[str]) -> dict[tuple, dict]:
    """Cells counted row by row."""
    authored_classes = {int(PathClass.SOURCE), int(PathClass.DOCUMENTATION)}
    classes = dict(zip(*CLASSES.to_pydict().values(), strict=True))
    people = {row["sha"]: row for row in commits.to_pylist()}
    per_commit: dict[tuple[bytes, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in files.to_pylist():
        authored = classes.get(row["path"], 0) in authored_classes
        for at in [row["path"], *ancestors(row["path"])]:
            sums = per_commit[(at, row["sha"])]
            sums["changes_under"] += int(at != row["path"])
            sums["additions_lines"] += row["additions_lines"]
            sums["deletions_lines"] += row["deletions_lines"]
            sums["authored_additions_lines"] += row["additions_lines"] if authored else 0
            sums["authored_deletions_lines"] += row["deletions_lines"] if authored else 0
    cells: dict[tuple, dict] = {}
    for (at, sha), sums in per_commit.items():
        person = people[sha]
        key = (at, person["author_name"], person["author_email"], sha in ignored)
        cell = cells.setdefault(
            key,
            {"commits": 0, "first_time": person["author_time"], "last_time": 0}
            | dict.fromkeys(sums, 0),
        )
        cell["commits"] += 1
        for column, value in sums.items():
            cell[column] += value
        cell["first_time"] = min(cell["first_time"], person["author_time"])
        cell["last_time"] = max(cell["last_time"], person["author_time"])
    return cells


def keyed(cells: pa.Table) -> dict[tuple, dict]:
    result = {}
    for row in cells.to_pylist():
        key = (row.pop("path"), row.pop("author_name"), row.pop("author_email"), row.pop("ignored"))
        result[key] = row
    return result


@settings(max_examples=80, deadline=None)
@given(st.lists(_COMMIT, min_size=1, max_size=12), st.integers(1, 4))
def test_cells_equal_a_count_by_hand_and_merge_by_part(commits: list[Any], parts: int) -> None:
    commit_rows, file_rows, ignored = rows_of(commits)
    rules = Rules(CLASSES, frozenset(ignored))
    expected = by_hand(commit_rows, file_rows, ignored)

    whole = path_cells(commit_rows, path_commits(file_rows, rules), rules)
    assert keyed(whole) == {k: dict(v) for k, v in expected.items()}

    # The same rows a part at a time (a part holds whole commits), merged.
    shas = commit_rows.column("sha").to_pylist()
    pieces = []
    for i in range(parts):
        own = pa.array(shas[i::parts], pa.string())
        part_commits = commit_rows.filter(pa.compute.is_in(commit_rows.column("sha"), own))
        part_files = file_rows.filter(pa.compute.is_in(file_rows.column("sha"), own))
        pieces.append(path_cells(part_commits, path_commits(part_files, rules), rules))
    assert keyed(merge_path_cells(*pieces)) == keyed(whole)
