"""The aggregates' additive state (worker/engine/tally.py): a run updates it by what it adds and
removes, reading no other commit rows, and the result is the tally a fresh count makes."""

from __future__ import annotations

import json
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
from worker.engine.extract import COMMITS_SCHEMA, EARLIEST_TIME, LATEST_TIME
from worker.engine.pipeline import analyze_codebase, state_cache_dir
from worker.engine.store import KINDS
from worker.engine.tally import Tally, read_cells, tally_commits


def sorted_cells(cells: pa.Table) -> list[dict[str, Any]]:
    rows = cells.to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in tallies.KEY))


async def stored_tally(storage: LocalStorage, work: Path) -> Tally:
    manifest = json.loads((await storage.get(layout.manifest(1))).data)  # type: ignore[union-attr]
    path = state_cache_dir(work, 1) / "tally" / manifest["tally_key"].rsplit("/", 1)[-1]
    return Tally.from_stored(read_cells(path), manifest["punch_card"])


def stored_parts(work: Path) -> list[Path]:
    return sorted((state_cache_dir(work, 1) / "parts").glob(f"*.{KINDS[0]}.parquet"))


class Reads:
    """The commit rows each count of the tally reads: which parts, or how many given rows."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inputs: list[Any] = []
        # Rows are read by DuckDB, or in Python when they are few (tallies.SMALL_TALLY).
        for name in ("_connect", "_small_tally"):
            monkeypatch.setattr(tallies, name, self._spy(getattr(tallies, name)))

    def _spy(self, read: Any) -> Any:
        def spy(commits: Any) -> Any:
            self.inputs.append(commits if isinstance(commits, pa.Table) else list(commits))
            return read(commits)

        return spy


async def test_a_push_reads_only_the_commits_it_adds(
    git_repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(40):
        git_repo.commit({f"f{n % 6}.txt": f"{n}\n" * (n % 5 + 1)}, message=f"c{n}")
    storage, work = LocalStorage(tmp_path / "storage"), tmp_path / "work"
    await analyze_codebase(str(git_repo.path), storage, 1, work)
    before = set(stored_parts(work))
    git_repo.commit({"new.txt": "new\n"}, message="pushed")

    reads = Reads(monkeypatch)
    await analyze_codebase(str(git_repo.path), storage, 1, work)

    (added,) = set(stored_parts(work)) - before
    assert reads.inputs == [[added]]
    tally = await stored_tally(storage, work)
    fresh = tally_commits(stored_parts(work))
    assert sorted_cells(tally.cells) == sorted_cells(fresh.cells)
    assert tally.punch == fresh.punch


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
    tally = await stored_tally(storage, work)
    fresh = tally_commits(stored_parts(work))
    assert sorted_cells(tally.cells) == sorted_cells(fresh.cells)
    assert tally.punch == fresh.punch


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


def test_threads_counting_at_once_keep_their_own_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of one worker process share one DuckDB: what each registers stays its own."""
    monkeypatch.setattr(tallies, "SMALL_TALLY", 0)  # every count through DuckDB
    tables = []
    for i in range(4):
        rows = [
            {
                "sha": f"{i:02d}{n:038d}",
                "is_merge": False,
                "author_name": f"Dev {i}",
                "author_email": f"dev{i}@example.com",
                "author_time": 1_600_000_000 + n * 3600,
                "author_offset": 0,
                "additions_lines": n,
                "deletions_lines": 1,
                "addition_bytes": n * 10,
                "deletion_bytes": 10,
            }
            for n in range(200 * (i + 1))
        ]
        tables.append(pa.Table.from_pylist(rows))
    alone = [sorted_cells(tally_commits(table).cells) for table in tables]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda t: sorted_cells(tally_commits(t).cells), tables * 3))
    assert together == alone * 3


_SECONDS = st.integers(min_value=EARLIEST_TIME, max_value=LATEST_TIME)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Ann", "Bob", "Ann B."]),
            st.sampled_from(["ann@example.com", "bob@example.com"]),
            st.one_of(_SECONDS, st.integers(-(10**9), 4 * 10**9), st.just(EARLIEST_TIME)),
            st.integers(min_value=-720, max_value=840),  # offsets in minutes, as git records
            st.booleans(),
            st.integers(0, 50),
            st.integers(0, 50),
        ),
        max_size=40,
    )
)
def test_a_few_commits_are_counted_in_python_as_duckdb_counts_them(rows: list[Any]) -> None:
    """A push's few rows are counted in Python: the same cells and punch card as DuckDB gives,
    the clamped extremes of the years 1 and 9999 and local times beyond them included."""
    table = pa.Table.from_pylist(
        [
            {
                "sha": f"{n:040x}",
                "is_merge": merge,
                "author_name": name,
                "author_email": email,
                "author_time": time,
                "author_offset": offset,
                "additions_lines": adds,
                "deletions_lines": dels,
                "addition_bytes": adds * 7,
                "deletion_bytes": dels * 5,
            }
            for n, (name, email, time, offset, merge, adds, dels) in enumerate(rows)
        ],
        schema=pa.schema([COMMITS_SCHEMA.field(name) for name in tallies.COMMIT_COLUMNS]),
    )
    assert table.num_rows <= tallies.SMALL_TALLY
    in_python = tally_commits(table)
    con = tallies._connect(table)
    try:
        in_duckdb = Tally(tallies._cells(con), tallies._punch(con))
    finally:
        con.close()
    assert sorted_cells(in_python.cells) == sorted_cells(in_duckdb.cells)
    assert in_python.punch == in_duckdb.punch
