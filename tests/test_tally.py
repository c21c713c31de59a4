"""The aggregates' additive state (worker/engine/tally.py): a run updates it by what it adds and
removes, reading no other commit rows, and the result is the tally a fresh count makes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import layout
from contract.storage.local import LocalStorage
from tests.support.gitrepos import GitRepo
from worker.engine import tally as tallies
from worker.engine.classes import CLASSES_SCHEMA, PathClass
from worker.engine.extract import COMMITS_SCHEMA, EARLIEST_TIME, FILES_SCHEMA, LATEST_TIME
from worker.engine.pipeline import analyze_codebase, state_cache_dir
from worker.engine.store import CodebaseState, Manifest
from worker.engine.tally import Rows, Rules, Tally, tally_rows


def sorted_cells(cells: pa.Table) -> list[dict[str, Any]]:
    rows = cells.to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in tallies.KEY))


def sorted_coauthored(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: r["sha"])


async def stored(storage: LocalStorage, work: Path) -> tuple[Tally, Rules, Rows]:
    """The codebase's stored tally, the rules it was counted with, and its stored rows."""
    state = CodebaseState(storage, 1, state_cache_dir(work, 1))
    manifest = await state.load_manifest()
    tally, classes = await state.load_tally(manifest), await state.load_classes(manifest)
    assert tally is not None and classes is not None
    parts = await state.local_parts(manifest.parts)
    rows = Rows.of_parts([(p.commits, p.files) for p in parts])
    return tally, Rules(classes, frozenset(manifest.ignored_revisions)), rows


def assert_same_tally(ours: Tally, theirs: Tally) -> None:
    assert sorted_cells(ours.cells) == sorted_cells(theirs.cells)
    assert ours.punch == theirs.punch
    assert sorted_coauthored(ours.coauthored) == sorted_coauthored(theirs.coauthored)


async def stored_parts(storage: LocalStorage) -> set[str]:
    stored_manifest = await storage.get(layout.manifest(1))
    assert stored_manifest is not None
    return {ref.name for ref in Manifest.model_validate_json(stored_manifest.data).parts}


class Reads:
    """The commit rows each count of the tally reads: which parts, or how many given rows."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inputs: list[Any] = []
        # Rows are read by DuckDB, or in Python when they are few (tallies.SMALL_TALLY).
        for name in ("_connect", "_small_tally"):
            monkeypatch.setattr(tallies, name, self._spy(getattr(tallies, name)))

    def _spy(self, read: Any) -> Any:
        def spy(rows: Rows, rules: Rules) -> Any:
            given = rows.commits
            self.inputs.append(given if isinstance(given, pa.Table) else list(given))
            return read(rows, rules)

        return spy


async def test_a_push_reads_only_the_commits_it_adds(
    git_repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(40):
        git_repo.commit({f"f{n % 6}.txt": f"{n}\n" * (n % 5 + 1)}, message=f"c{n}")
    storage, work = LocalStorage(tmp_path / "storage"), tmp_path / "work"
    await analyze_codebase(str(git_repo.path), storage, 1, work)
    before = await stored_parts(storage)
    git_repo.commit({"new.txt": "new\n"}, message="pushed")

    reads = Reads(monkeypatch)
    await analyze_codebase(str(git_repo.path), storage, 1, work)

    (added,) = await stored_parts(storage) - before
    assert reads.inputs == [[state_cache_dir(work, 1) / "parts" / f"{added}.commits.parquet"]]
    monkeypatch.undo()
    tally, rules, rows = await stored(storage, work)
    assert_same_tally(tally, tally_rows(rows, rules))


async def test_a_force_push_takes_off_what_it_removed(
    git_repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A force-push drops three commits and adds two: the three removed rows are read once,
    before they are dropped, and the tally ends as a fresh count of what is stored."""
    for n in range(30):
        author = ("Ann", "ann@example.com") if n % 3 else ("Bob", "bob@example.com")
        git_repo.commit({f"f{n % 4}.txt": f"{n}\n"}, message=f"c{n}", author=author)
    storage, work = LocalStorage(tmp_path / "storage"), tmp_path / "work"
    await analyze_codebase(str(git_repo.path), storage, 1, work)
    git_repo.reset_branch("main", git_repo.head("main~3"))
    for n in range(2):
        git_repo.commit({f"g{n}.txt": "g\n"}, message=f"g{n}", author=("Cy", "cy@example.com"))

    reads = Reads(monkeypatch)
    result = await analyze_codebase(str(git_repo.path), storage, 1, work)

    assert (result.commits_added, result.commits_removed) == (2, 3)
    removed = [given for given in reads.inputs if isinstance(given, pa.Table)]
    assert [table.num_rows for table in removed] == [3]
    monkeypatch.undo()
    tally, rules, rows = await stored(storage, work)
    assert_same_tally(tally, tally_rows(rows, rules))


@pytest.mark.parametrize("small", [tallies.SMALL_TALLY, 0], ids=["in Python", "in DuckDB"])
def test_merging_cells_keeps_the_latest_commit_of_each(
    small: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cells of one key: counts add up, the first is the earlier, the last the later, and
    equal last times are told apart by the sha; the same whether merged in Python (a push's few
    cells) or in DuckDB."""
    monkeypatch.setattr(tallies, "SMALL_TALLY", small)

    def cell(commits: int, first: int, last: int, sha: str) -> pa.Table:
        row = dict.fromkeys(tallies.CELLS_SCHEMA.names, 0)
        row.update(
            author_name="Ann",
            author_email="ann@example.com",
            week=pa.scalar(19_000, pa.date32()).as_py(),
            month=pa.scalar(18_993, pa.date32()).as_py(),
            ignored=False,
            commits=commits,
            first_time=first,
            last_time=last,
            last_sha=sha,
        )
        return pa.Table.from_pylist([row], tallies.CELLS_SCHEMA)

    (merged,) = tallies.merge_cells(
        cell(2, 100, 500, "b" * 40), cell(3, 50, 500, "c" * 40)
    ).to_pylist()
    assert (merged["commits"], merged["first_time"], merged["last_time"]) == (5, 50, 500)
    assert merged["last_sha"] == "c" * 40
    (merged,) = tallies.merge_cells(
        cell(3, 50, 500, "c" * 40), cell(2, 100, 400, "d" * 40)
    ).to_pylist()
    assert (merged["commits"], merged["last_time"], merged["last_sha"]) == (5, 500, "c" * 40)


COMMITS = pa.schema([COMMITS_SCHEMA.field(name) for name in tallies.COMMIT_COLUMNS])
FILES = pa.schema([FILES_SCHEMA.field(name) for name in tallies.FILE_COLUMNS])
# One path of each class, and one the classes do not know (counted as source).
PATHS = {b"src/a.py": PathClass.SOURCE, b"docs/a.md": PathClass.DOCUMENTATION}
PATHS |= {b"vendor/x.js": PathClass.VENDORED, b"package-lock.json": PathClass.GENERATED}
CLASSES = pa.table(
    {"path": list(PATHS), "class": [int(c) for c in PATHS.values()]}, schema=CLASSES_SCHEMA
)
UNKNOWN_PATH = b"unknown.c"


def commit_rows(commits: list[dict[str, Any]], files: list[dict[str, Any]]) -> Rows:
    """Rows of these commits, each commit's totals summed from its files."""
    for commit in commits:
        own = [f for f in files if f["sha"] == commit["sha"]]
        commit["files_changed"] = len(own)
        for column in tallies.FILE_COLUMNS[2:]:
            commit[column] = sum(f[column] for f in own)
    return Rows(pa.Table.from_pylist(commits, COMMITS), pa.Table.from_pylist(files, FILES))


def test_threads_counting_at_once_keep_their_own_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of one worker process share one DuckDB: what each registers stays its own."""
    monkeypatch.setattr(tallies, "SMALL_TALLY", 0)  # every count through DuckDB
    given = []
    for i in range(4):
        commits, files = [], []
        for n in range(200 * (i + 1)):
            sha = f"{i:02d}{n:038d}"
            commits.append(
                {
                    "sha": sha,
                    "is_merge": False,
                    "author_name": f"Dev {i}",
                    "author_email": f"dev{i}@example.com",
                    "author_time": 1_600_000_000 + n * 3600,
                    "author_offset": 0,
                    "co_authors": [{"name": "Co", "email": f"co{i}@example.com"}] * (n % 2),
                }
            )
            path = list(PATHS)[n % len(PATHS)]
            files.append(
                {
                    "sha": sha,
                    "path": path,
                    "additions_lines": n,
                    "deletions_lines": 1,
                    "addition_bytes": n * 10,
                    "deletion_bytes": 10,
                }
            )
        given.append(commit_rows(commits, files))
    rules = Rules(CLASSES, frozenset({f"{1:02d}{5:038d}"}))

    def count(rows: Rows) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        tally = tally_rows(rows, rules)
        return sorted_cells(tally.cells), sorted_coauthored(tally.coauthored)

    alone = [count(rows) for rows in given]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(count, given * 3))
    assert together == alone * 3


_SECONDS = st.integers(min_value=EARLIEST_TIME, max_value=LATEST_TIME)
_FILE = st.tuples(st.sampled_from([*PATHS, UNKNOWN_PATH]), st.integers(0, 50), st.integers(0, 50))
_PERSON = st.fixed_dictionaries(
    {"name": st.sampled_from(["Cy", "Di"]), "email": st.sampled_from(["cy@x.org", "di@x.org"])}
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Ann", "Bob", "Ann B."]),
            st.sampled_from(["ann@example.com", "bob@example.com"]),
            st.one_of(_SECONDS, st.integers(-(10**9), 4 * 10**9), st.just(EARLIEST_TIME)),
            st.integers(min_value=-720, max_value=840),  # offsets in minutes, as git records
            st.booleans(),
            st.lists(_FILE, max_size=4, unique_by=lambda f: f[0]),
            st.lists(_PERSON, max_size=3),
            st.booleans(),  # ignored
        ),
        max_size=40,
    )
)
def test_a_few_commits_are_counted_in_python_as_duckdb_counts_them(rows: list[Any]) -> None:
    """A push's few rows are counted in Python: the same cells, punch card and co-authored
    commits as DuckDB gives, the clamped extremes of the years 1 and 9999 and local times beyond
    them included, each file under its class, ignored commits apart."""
    commits, files, ignored = [], [], set()
    for n, (name, email, time, offset, merge, changes, co_authors, skip) in enumerate(rows):
        sha = f"{n:040x}"
        commits.append(
            {
                "sha": sha,
                "is_merge": merge,
                "author_name": name,
                "author_email": email,
                "author_time": time,
                "author_offset": offset,
                "co_authors": co_authors,
            }
        )
        for path, adds, dels in changes:
            files.append(
                {
                    "sha": sha,
                    "path": path,
                    "additions_lines": adds,
                    "deletions_lines": dels,
                    "addition_bytes": adds * 7,
                    "deletion_bytes": dels * 5,
                }
            )
        if skip:
            ignored.add(sha)
    given = commit_rows(commits, files)
    rules = Rules(CLASSES, frozenset(ignored))
    assert given.count() <= tallies.SMALL_TALLY
    in_python = tally_rows(given, rules)
    con = tallies._connect(given, rules)
    try:
        tallies._facts(con)
        in_duckdb = Tally(tallies._cells(con), tallies._punch(con), tallies._coauthored(con))
    finally:
        con.close()
    assert_same_tally(in_python, in_duckdb)
