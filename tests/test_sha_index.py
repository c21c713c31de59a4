"""The local index of stored shas (worker/engine/sha_index.py): it answers as the parts do, after
every advance, and rebuilds itself when it reflects other parts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contract.storage.local import LocalStorage
from tests.support.gitrepos import GitRepo
from worker.engine import sha_index
from worker.engine.pipeline import analyze_codebase, state_cache_dir
from worker.engine.sha_index import ShaIndex
from worker.engine.store import CodebaseState, stored_shas


def sha(n: int) -> str:
    return hashlib.sha1(str(n).encode()).hexdigest()


def part(tmp_path: Path, name: str, numbers: range) -> tuple[str, Path]:
    path = tmp_path / f"{name}.commits.parquet"
    pq.write_table(pa.table({"sha": [sha(n) for n in numbers]}), path)
    return name, path


def test_it_answers_as_the_parts_do_after_each_advance(tmp_path: Path) -> None:
    index = ShaIndex(tmp_path / "cache")
    parts = [part(tmp_path, "a", range(0, 50)), part(tmp_path, "b", range(50, 80))]
    asked = [sha(n) for n in (0, 49, 50, 79, 80, 1000)]
    assert index.among(parts, asked) == {sha(n) for n in (0, 49, 50, 79)}

    # A run adds 80..89 as part c and removes 3 and 60 (rewriting a and b as a2, b2).
    index.advance(["a", "b"], ["a2", "b2", "c"], [sha(n) for n in range(80, 90)], [sha(3), sha(60)])
    rebuilt = ShaIndex(tmp_path / "other")
    new_parts = [
        part(tmp_path, "a2", range(0, 50)),
        part(tmp_path, "b2", range(50, 80)),
        part(tmp_path, "c", range(80, 90)),
    ]
    everything = [sha(n) for n in range(0, 100)]
    expected = {sha(n) for n in range(0, 90)} - {sha(3), sha(60)}
    # The advanced index answers without reading the parts (these files do not say 3 is gone).
    assert index.among(new_parts, everything) == expected
    assert index.contents() == bytes.fromhex("".join(sorted(expected)))
    assert rebuilt.among(new_parts, everything) == {sha(n) for n in range(0, 90)}


def test_an_index_of_other_parts_is_rebuilt_and_not_advanced(tmp_path: Path) -> None:
    index = ShaIndex(tmp_path / "cache")
    first = [part(tmp_path, "a", range(10))]
    index.among(first, [sha(1)])
    index.advance(["x"], ["y"], [sha(99)], [])  # a run this cache did not see
    assert index.among(first, [sha(99), sha(1)]) == {sha(1)}
    assert index.among([part(tmp_path, "z", range(5, 7))], [sha(1), sha(6)]) == {sha(6)}


async def test_the_engine_keeps_it_equal_to_the_stored_commits(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    storage, work = LocalStorage(tmp_path / "storage"), tmp_path / "work"
    for n in range(12):
        git_repo.commit({f"f{n % 3}.txt": f"{n}\n"}, message=f"c{n}")
    await analyze_codebase(str(git_repo.path), storage, 1, work)
    git_repo.commit({"g.txt": "g\n"}, message="push")
    await analyze_codebase(str(git_repo.path), storage, 1, work)
    git_repo.reset_branch("main", git_repo.head("main~4"))
    git_repo.commit({"h.txt": "h\n"}, message="force-push")
    await analyze_codebase(str(git_repo.path), storage, 1, work)

    state = CodebaseState(storage, 1, state_cache_dir(work, 1))
    manifest = await state.load_manifest()
    parts = await state.local_parts(manifest.parts)
    stored = stored_shas(parts)
    assert stored == set(git_repo.git("rev-list", "--branches").split())
    assert state.sha_index.reflects(ref.name for ref in manifest.parts)
    assert state.sha_index.contents() == bytes.fromhex("".join(sorted(stored)))


def test_a_push_writes_the_journal_and_a_long_journal_goes_into_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Advancing writes only the small journal until it reaches a sixteenth of the base (at
    least MIN_JOURNAL shas); then the base is rewritten with it. Answers are the same either
    way, removals of journalled shas and re-additions of removed ones included."""
    monkeypatch.setattr(sha_index, "MIN_JOURNAL", 4)
    index = ShaIndex(tmp_path / "cache")
    parts = [part(tmp_path, "a", range(0, 64))]
    index.among(parts, [])
    base = index.path.read_bytes()
    held = set(range(64))
    steps = [([64], []), ([65], [0]), ([], [64]), ([0], []), ([66, 67], [1, 2])]
    names = ["a"]
    for n, (plus, minus) in enumerate(steps):
        index.advance(names, [f"p{n}"], [sha(i) for i in plus], [sha(i) for i in minus])
        names = [f"p{n}"]
        held = (held | set(plus)) - set(minus)
        assert index.contents() == bytes.fromhex("".join(sorted(sha(i) for i in held)))
        asked = [sha(i) for i in range(70)]
        assert index.among([(names[0], tmp_path / "unread")], asked) == {sha(i) for i in held}
        journal = len(index.added_path.read_bytes() + index.removed_path.read_bytes()) // 20
        if n < 4:
            assert index.path.read_bytes() == base, "the base is kept while the journal is short"
        else:
            assert journal == 0, "a journal of more than 4 shas goes into the base"
            assert index.path.read_bytes() == index.contents()
