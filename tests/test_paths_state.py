"""The per-path state (worker/engine/paths.py) against a count made by hand, row by row: each
file change counts for its file, every directory above it and the root, a commit once per path;
and cells counted a part at a time and merged equal cells counted at once."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import layout
from contract.documents import EmailMode
from worker.engine.classes import CLASSES_SCHEMA, PathClass
from worker.engine.export import export_paths, shown_people
from worker.engine.extract import COMMITS_SCHEMA, FILES_SCHEMA
from worker.engine.paths import (
    ROOT,
    TOP_CONTRIBUTORS,
    ancestors,
    bus_factor,
    leaders,
    merge_path_cells,
    path_cells,
    path_commits,
    path_figures,
    person_churn,
    ranked_leaders,
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


@settings(max_examples=60, deadline=None)
@given(st.lists(_COMMIT, min_size=1, max_size=12), st.booleans())
def test_figures_and_leaders_equal_a_count_by_hand(commits: list[Any], bob_is_a_bot: bool) -> None:
    """Per path: sums, distinct people, authored lines of people who are not bots in commits not
    ignored, and the people ranked by that churn with the bus factor."""
    commit_rows, file_rows, ignored = rows_of(commits)
    rules = Rules(CLASSES, frozenset(ignored))
    cells = path_cells(commit_rows, path_commits(file_rows, rules), rules)
    keys = sorted({email.lower() for email in cells.column("author_email").to_pylist()})
    kid_of = {key: kid for kid, key in enumerate(keys)}
    kids = pa.array(
        [kid_of[e.lower()] for e in cells.column("author_email").to_pylist()], pa.int32()
    )
    bot = [bob_is_a_bot and key == "bob@x.org" for key in keys]
    bots = pa.compute.take(pa.array(bot, pa.bool_()), kids)
    lines = pa.table({"path": [ROOT, b"a"], "lines": pa.array([10, 4], pa.int64())})
    recent = pa.table({"path": [b"a"], "recent_commits": pa.array([3], pa.int64())})

    figures = {
        row["path"]: row for row in path_figures(cells, kids, bots, lines, recent).to_pylist()
    }

    expected: dict[bytes, dict[str, Any]] = {}
    churn: dict[bytes, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for (path, _name, email, skip), cell in by_hand(commit_rows, file_rows, ignored).items():
        kid = kid_of[email.lower()]
        counts = expected.setdefault(
            path, defaultdict(int) | {"people": set(), "first": [], "last": []}
        )
        for column in ("commits", "additions_lines", "deletions_lines", "changes_under"):
            counts[column] += cell[column]
        mine = 0
        if not skip and not bot[kid]:
            mine = cell["authored_additions_lines"] + cell["authored_deletions_lines"]
            counts["authored_additions_lines"] += cell["authored_additions_lines"]
            counts["authored_deletions_lines"] += cell["authored_deletions_lines"]
        churn[path][kid] += mine
        counts["people"].add(kid)
        counts["first"].append(cell["first_time"])
        counts["last"].append(cell["last_time"])
    assert set(figures) == set(expected)
    for path, counts in expected.items():
        row = figures[path]
        assert row["is_dir"] == (counts["changes_under"] > 0)
        for column in ("commits", "additions_lines", "deletions_lines"):
            assert row[column] == counts[column]
        for column in ("authored_additions_lines", "authored_deletions_lines"):
            assert row[column] == counts.get(column, 0)
        assert row["contributors"] == len(counts["people"])
        assert (row["first_time"], row["last_time"]) == (min(counts["first"]), max(counts["last"]))
        line_count = {ROOT: 10, b"a": 4}.get(path)
        assert row["lines"] == line_count
        assert row["recent_commits"] == (3 if path == b"a" else 0)
        assert row["hotspot"] == row["recent_commits"] * (line_count or 0)

    empty_moves = pa.table(
        {
            "path": pa.array([], pa.binary()),
            "kid": pa.array([], pa.int32()),
            "churn": pa.array([], pa.int64()),
        }
    )
    authored = pa.compute.and_(pa.compute.invert(cells.column("ignored")), pa.compute.invert(bots))
    ranked = leaders(person_churn(cells, kids, authored, empty_moves), keys)
    for path in expected:
        people = sorted(
            ((kid, c) for kid, c in churn[path].items() if c > 0),
            key=lambda item: (-item[1], keys[item[0]]),
        )
        if not people:
            assert path not in ranked
            continue
        top, factor = ranked[path]
        assert top == people[:TOP_CONTRIBUTORS]
        held, total, k = 0, sum(c for _, c in people), 0
        while 2 * held <= total:
            held += people[k][1]
            k += 1
        assert factor == k


def test_bus_factor() -> None:
    assert bus_factor([]) == 0
    assert bus_factor([5]) == 1
    assert bus_factor([5, 5]) == 2  # half is not more than half
    assert bus_factor([6, 5]) == 1
    assert bus_factor([3, 3, 3]) == 2


def test_each_directory_lists_its_direct_children() -> None:
    """export_paths: one object per directory (the root too), each with its own entry and its
    direct children's, files with their class, paths written as text; then only the directories
    whose entry or children's entries changed."""
    commit_rows, file_rows, ignored = rows_of(
        [(("Ann", "ann@x.org"), 10, [(p, 1, 0) for p in PATHS], False)]
    )
    rules = Rules(CLASSES, frozenset(ignored))
    cells = path_cells(commit_rows, path_commits(file_rows, rules), rules)
    kids = pa.array([0] * cells.num_rows, pa.int32())
    bots = pa.array([False] * cells.num_rows, pa.bool_())
    lines = pa.table({"path": pa.array([], pa.binary()), "lines": pa.array([], pa.int64())})
    recent = pa.table(
        {"path": pa.array([], pa.binary()), "recent_commits": pa.array([], pa.int64())}
    )
    figures = path_figures(cells, kids, bots, lines, recent)
    authored = pa.compute.invert(cells.column("ignored"))
    moves = pa.table(
        {
            "path": pa.array([], pa.binary()),
            "kid": pa.array([], pa.int32()),
            "churn": pa.array([], pa.int64()),
        }
    )
    ranked = ranked_leaders(person_churn(cells, kids, authored, moves), ["ann@x.org"])
    people = shown_people([("Ann", "ann@x.org")], EmailMode.PLAIN)
    now = datetime.now(UTC)
    exported = export_paths(7, figures, ranked, CLASSES, people, now, None)
    assert exported.gone == []
    documents = {doc.path: doc for doc in exported.documents.values()}
    assert exported.documents == {layout.paths_document(p): d for p, d in documents.items()}

    listed = {path: [e.path for e in doc.paths] for path, doc in documents.items()}
    # `a` and `a/b` were files once and directories since: directories.
    assert listed == {
        "": ["a", "vendor", "x"],
        "a": ["a/b", "a/e"],
        "a/b": ["a/b/c.py", "a/b/d.md"],
        "vendor": ["vendor/v.js"],
        "x": ["x/\\xff"],
        "x/\\xff": ["x/\\xff/y.js"],
    }
    entries = {e.path: e for doc in documents.values() for e in doc.paths}
    assert entries["a/b/d.md"].class_ == "documentation"
    assert entries["vendor/v.js"].class_ == "vendored"
    assert entries["a/e"].class_ == "source"
    assert entries["a/b"].kind == "dir" and entries["a/b"].class_ is None
    root = documents[""].entry
    assert (root.path, root.kind, root.commits) == ("", "dir", 1)
    assert root.additions_lines == len(PATHS)
    assert [p.name for p in root.top_contributors] == ["Ann"]
    assert '"class":' in documents["a/b"].paths[0].model_dump_json()

    # Nothing changed: nothing to write. One file's figure changed: its directory and the
    # directories whose entries change with it (each ancestor's own figures, listed in its
    # parent's document) are written again.
    again = export_paths(7, figures, ranked, CLASSES, people, now, exported.entries)
    assert (again.documents, again.gone) == ({}, [])
    assert again.entries.equals(exported.entries)
    bumped = figures.set_column(
        figures.column_names.index("commits"),
        "commits",
        pa.array(
            [
                n + (path in (b"a/b/c.py", b"a/b", b"a", ROOT))
                for path, n in zip(
                    figures.column("path").to_pylist(),
                    figures.column("commits").to_pylist(),
                    strict=True,
                )
            ],
            pa.int64(),
        ),
    )
    changed = export_paths(7, bumped, ranked, CLASSES, people, now, exported.entries)
    assert sorted(doc.path for doc in changed.documents.values()) == ["", "a", "a/b"]
    assert changed.documents[layout.paths_document("a/b")].paths[0].commits == 2

    # What the entries show of their people changed (Ann's name): the documents that list an
    # entry showing her are written again, and only those (vendor's are not authored work).
    renamed = shown_people([("Ann B.", "ann@x.org")], EmailMode.PLAIN)
    again = export_paths(7, figures, ranked, CLASSES, renamed, now, exported.entries)
    showing = {
        name
        for name, doc in exported.documents.items()
        if any(e.top_contributors for e in [doc.entry, *doc.paths])
    }
    assert again.documents.keys() == showing != exported.documents.keys()
    assert again.documents[layout.paths_document("")].entry.top_contributors[0].name == "Ann B."

    # A directory no longer there (its changes removed): its document is deleted, its parent's
    # written again without it.
    kept = pa.compute.invert(
        pa.compute.starts_with(figures.column("path").cast(pa.string(), safe=False), "vendor")
    )
    fewer = export_paths(7, figures.filter(kept), ranked, CLASSES, people, now, exported.entries)
    assert fewer.gone == [layout.paths_document("vendor")]
    assert [doc.path for doc in fewer.documents.values()] == [""]
