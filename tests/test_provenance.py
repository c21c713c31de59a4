"""Line provenance against git blame (DESIGN.md definition 16): every text file's lines per
author, as `git blame --line-porcelain` at the head counts them with the mailmap applied."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pygit2
import pytest

from contract import layout
from contract.documents import EmailMode, PathsDirectory, email_fields
from contract.paths import raw_path
from contract.storage.local import LocalStorage
from tests.support.blame import blame_files
from tests.support.documents import read_documents
from tests.support.gitrepos import GitRepo
from tests.support.jobs import write_every_phase
from worker.engine import pipeline
from worker.engine.aggregate import People
from worker.engine.mailmap import Mailmap
from worker.engine.paths import ROOT, TOP_CONTRIBUTORS, ancestors, bus_factor, leaders_of
from worker.engine.pipeline import analyze_codebase
from worker.engine.provenance import (
    CODE_AGE,
    DAY,
    PROVENANCE_SCHEMA,
    BlameError,
    Updated,
    reblamed,
    regular_files,
    update_provenance,
    write_commit_graph,
)
from worker.engine.provenance_state import ProvenanceState
from worker.engine.store import Manifest

ADA, BOB, CY = ("Ada", "ada@example.com"), ("Bob", "bob@example.com"), ("Cy", "cy@old.example")
LINES = [f"line {n}\n" for n in range(40)]


def history(repo: GitRepo) -> None:
    """Renames, lines moved between files, a merge bringing a side branch's lines, CRLF, a
    binary file, a non-UTF-8 name and a mailmap that maps an old address."""
    repo.commit({"src/a.py": "".join(LINES), "logo.png": bytes(range(256)) * 4}, author=ADA)
    repo.commit({"src/b.py": "b = 1\r\nb = 2\r\n"}, author=CY)
    repo.run("mv", "src/a.py", "src/renamed.py")
    repo.commit({"src/renamed.py": "".join(LINES[:30]) + "bob was here\n"}, author=BOB)
    # Ten lines cut from one file and pasted into another.
    repo.commit(
        {"src/renamed.py": "".join(LINES[:20]), "src/b.py": "b = 1\r\n" + "".join(LINES[20:30])},
        author=CY,
    )
    repo.branch("side")
    repo.checkout("side")
    repo.commit(
        {"src/side.py": "side\n" * 5, "src/renamed.py": "".join(LINES[:20]) + "from side\n"},
        author=BOB,
    )
    repo.checkout("main")
    repo.commit({"docs/n\xe9.md".encode("latin-1"): "# n\n"}, author=ADA)
    repo.merge("side", author=ADA)
    repo.commit({".mailmap": "Cy <cy@new.example> <cy@old.example>\n"}, author=ADA)


def blamed_by_git(repo: GitRepo, path: bytes) -> Counter[str]:
    out = subprocess.run(
        ["git", "-C", str(repo.path), "blame", "--line-porcelain", "HEAD", "--", path],
        capture_output=True,
        check=True,
    ).stdout
    return Counter(
        line.removeprefix(b"author-mail <").removesuffix(b">").decode()
        for line in out.splitlines()
        if line.startswith(b"author-mail ")
    )


def text_files(repo: GitRepo, head: str = "HEAD") -> list[bytes]:
    listed = subprocess.run(
        ["git", "-C", str(repo.path), "ls-tree", "-r", "-z", "--name-only", head],
        capture_output=True,
        check=True,
    ).stdout
    return [path for path in listed.split(b"\0") if path and not path.endswith(b".png")]


@pytest.mark.parametrize("graph", [False, True])
def test_every_files_lines_per_author_are_git_blames(git_repo: GitRepo, graph: bool) -> None:
    history(git_repo)
    if graph:
        write_commit_graph(git_repo.path)
    mailmap = Mailmap.from_buffer((git_repo.path / ".mailmap").read_bytes())
    paths = text_files(git_repo)
    rows = blame_files(git_repo.path, git_repo.head(), paths).to_pylist()
    ours: dict[bytes, Counter[str]] = {}
    for row in rows:
        name, email, at = git_repo.git("log", "-1", "--format=%an%x00%ae%x00%at", row["sha"]).split(
            "\0"
        )
        assert (row["author_name"], row["author_email"], row["author_time"]) == (
            name,
            email,
            int(at),
        )
        email = mailmap.resolve(name, email)[1]
        ours.setdefault(row["path"], Counter())[email] += row["lines"]
    assert {path: blamed_by_git(git_repo, path) for path in paths} == ours
    # Lines moved between files belong to the commit that moved them (blame's default), the
    # CRLF line to its author, both by the address the mailmap gives; the renamed file keeps
    # Ada's lines, and has the side branch's.
    assert ours[b"src/b.py"] == {"cy@new.example": 11}
    assert ours[b"src/renamed.py"] == {"ada@example.com": 20, "bob@example.com": 1}


def test_a_path_not_at_the_head_is_a_clear_error(git_repo: GitRepo) -> None:
    history(git_repo)
    with pytest.raises(BlameError, match=r"blame of b'gone\.py' failed"):
        blame_files(git_repo.path, git_repo.head(), [b"gone.py"])


def counted(
    state: ProvenanceState, people: People, owner: Callable[[bytes], str | None] = lambda _: None
) -> None:
    """Bring `state`'s counts up to date: keys from `people`, each file's owner by `owner`."""
    state.count(
        lambda name, email: people.keys[people.resolve(name, email)[2]],
        "owners",
        lambda paths: {path: (found,) for path in paths if (found := owner(path)) is not None},
    )


def test_each_path_and_person_survives_by_git_blames_lines(git_repo: GitRepo) -> None:
    """Per person and per path (files, their directories, the root) and per owner: the lines
    git blame gives them, summed; each one's top owners (most lines first, ties by key) and its
    bus factor over lines."""
    history(git_repo)
    paths = text_files(git_repo)
    state = ProvenanceState.from_table(
        git_repo.head(), blame_files(git_repo.path, git_repo.head(), paths)
    )
    people = People(Mailmap.from_buffer((git_repo.path / ".mailmap").read_bytes()), ())
    owners = {path: "@src" for path in paths if path.startswith(b"src/")}
    counted(state, people, owners.get)
    expected: dict[bytes, Counter[str]] = {}
    teams: dict[str, Counter[str]] = {}
    for path in paths:
        for at in [path, *ancestors(path)]:
            expected.setdefault(at, Counter()).update(blamed_by_git(git_repo, path))
        if path in owners:
            teams.setdefault(owners[path], Counter()).update(blamed_by_git(git_repo, path))
    assert set(expected[ROOT]) == {"ada@example.com", "bob@example.com", "cy@new.example"}

    assert state.by_person() == dict(expected[ROOT])
    surviving, top, bus = state.path_tables(people.keys)
    assert dict(zip(*surviving.to_pydict().values(), strict=True)) == {
        path: sum(counts.values()) for path, counts in expected.items()
    }
    leaders = leaders_of(top, bus)
    by_team = state.owner_tables(people.keys)
    assert set(by_team) == {"@src"}
    found = [(counts, leaders[path]) for path, counts in expected.items()]
    found += [(counts, by_team[team][1:]) for team, counts in teams.items()]
    for counts, (owned, factor) in found:
        order = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        assert [(people.keys[kid], n) for kid, n in owned] == order[:TOP_CONTRIBUTORS]
        assert factor == bus_factor([n for _, n in order])
    assert by_team["@src"][0] == sum(teams["@src"].values())


def test_code_age_buckets_lines_by_their_commits_age() -> None:
    """30-day months, 365-day years, each bucket up to its bound; a commit authored after the
    head's committer time is the youngest."""
    head = 1_000 * DAY
    ages = [
        -5,
        0,
        30 * DAY - 1,
        30 * DAY,
        180 * DAY,
        365 * DAY - 1,
        365 * DAY,
        730 * DAY,
        900 * DAY,
    ]
    lines = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    rows = pa.table(
        {
            "path": [f"f{n % 2}".encode() for n in range(len(ages))],
            "start": [n // 2 * 1000 + 1 for n in range(len(ages))],
            "lines": lines,
            "sha": [f"{n:040x}" for n in range(len(ages))],
            "author_name": ["A"] * len(ages),
            "author_email": ["a@example.com"] * len(ages),
            "author_time": [head - a for a in ages],
        },
        schema=PROVENANCE_SCHEMA,
    )
    state = ProvenanceState.from_table("head", rows)
    counted(state, People(Mailmap.from_buffer(b""), ()))
    assert state.code_age(head) == [
        ("<1m", 1 + 2 + 4),
        ("1-6m", 8),
        ("6-12m", 16 + 32),
        ("1-2y", 64),
        (">2y", 128 + 256),
    ]
    assert [bucket for bucket, _ in CODE_AGE] == [bucket for bucket, _ in state.code_age(head)]


def blames(repo: GitRepo, head: str) -> dict[bytes, dict[str, int]]:
    rows = blame_files(repo.path, head, text_files(repo, head)).to_pylist()
    found: dict[bytes, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["path"], {})[row["sha"]] = row["lines"]
    return found


def test_a_push_reblames_the_files_its_first_parent_chain_changes(git_repo: GitRepo) -> None:
    """Along the default head's first-parent chain, a file no commit of the push changes keeps
    its blame; anything else (a force-push, the head moved to a branch that merged it) blames
    every file again."""
    repo = pygit2.Repository(str(git_repo.path))
    history(git_repo)
    old = git_repo.head()
    assert reblamed(repo, old, old) == set()
    assert reblamed(repo, None, old) is None
    git_repo.commit({"src/b.py": "b = 2\r\n"}, author=BOB)
    git_repo.branch("topic")
    git_repo.checkout("topic")
    git_repo.commit({"src/side.py": "topic\n"}, author=CY)
    git_repo.checkout("main")
    git_repo.merge("topic", author=ADA)  # a pull request's merge: main is its first parent
    new = git_repo.head()
    changed = reblamed(repo, old, new)
    assert changed == {b"src/b.py", b"src/side.py"}
    before, after = blames(git_repo, old), blames(git_repo, new)
    assert {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)} == changed

    # main changes a file and reverts it; a branch forked before that merges main, and main is
    # moved to it: the file is as it was, yet its lines are blamed through the branch now.
    fork = git_repo.head()
    git_repo.commit({"src/side.py": "changed\n"}, author=BOB)
    git_repo.commit({"src/side.py": "topic\n"}, message="revert", author=BOB)
    reverted = git_repo.head()
    git_repo.branch("late", fork)
    git_repo.checkout("late")
    git_repo.commit({"late.txt": "late\n"}, author=CY)
    git_repo.merge("main", author=CY)
    git_repo.checkout("main")
    git_repo.reset_branch("main", git_repo.head("late"))
    moved = git_repo.head()
    assert blames(git_repo, moved)[b"src/side.py"] != blames(git_repo, reverted)[b"src/side.py"]
    assert reblamed(repo, reverted, moved) is None
    assert reblamed(repo, moved, old) is None  # back in time: a force-push
    assert reblamed(repo, "0" * 40, moved) is None  # force-pushed away and gone


def advanced(
    repo: GitRepo, head: str, text: set[bytes], state: ProvenanceState | None, **options: Any
) -> tuple[ProvenanceState, Updated]:
    """`state` (None: none yet) moved to `head` by update_provenance, and what it did."""
    updated = update_provenance(
        repo.path,
        head,
        text,
        None if state is None else state.runs,
        None if state is None else state.head,
        **options,
    )
    state = state or ProvenanceState(head, {}, {})
    state.update(head, updated.changed, updated.gone, updated.authors)
    assert state.table().to_pylist() == blame_files(repo.path, head, text).to_pylist()
    return state, updated


def test_updated_provenance_is_a_fresh_blame_having_blamed_only_what_changed(
    git_repo: GitRepo,
) -> None:
    """A push blames the files it changed and those new at the head, keeps the others' runs and
    drops the runs of files gone; a force-push blames everything. Each time the runs are what
    blaming every text file at the head gives. Symlinks and binary files are not blamed."""
    repo = pygit2.Repository(str(git_repo.path))
    history(git_repo)
    git_repo.symlink("link.py", "src/b.py")
    git_repo.commit(author=ADA)

    def text(head: str) -> set[bytes]:
        return regular_files(repo, head) - {b"logo.png"}

    first = git_repo.head()
    assert b"link.py" not in text(first) and b"src/b.py" in text(first)
    state, updated = advanced(git_repo, first, text(first), None)
    assert updated.blamed == len(text(first)) and not updated.gone

    git_repo.commit(
        {"src/b.py": "b = 3\n", "new.md": "new\n", "docs/n\xe9.md".encode("latin-1"): None},
        author=BOB,
    )
    second = git_repo.head()
    reports: list[tuple[int, int]] = []
    state, updated = advanced(
        git_repo, second, text(second), state, report=lambda *r: reports.append(r)
    )
    assert updated.blamed == 2 and reports[-1] == (2, 2)  # src/b.py changed, new.md new
    assert updated.gone == {"docs/n\xe9.md".encode("latin-1")}

    git_repo.reset_branch("main", first)  # force-pushed back
    state, updated = advanced(git_repo, first, text(first), state)
    assert updated.blamed == len(text(first)) and updated.whole == updated.blamed


async def test_ownership_and_code_age_are_git_blames(git_repo: GitRepo, tmp_path: Path) -> None:
    """A run's ownership gives each person the lines git blame gives their commits at the head
    (the mailmap applied), with their share; overview.code_age buckets those lines by their
    commit's author time against the head's committer time."""
    history(git_repo)
    storage = LocalStorage(tmp_path / "storage")
    await analyze_codebase(
        str(git_repo.path), storage, 1, tmp_path / "work", email_mode=EmailMode.PLAIN
    )
    documents = await read_documents(storage, 1, ["overview", "ownership"])
    expected: Counter[str] = Counter()
    ages: Counter[str] = Counter()
    head_time = int(git_repo.git("log", "-1", "--format=%ct"))
    for path in text_files(git_repo):
        expected.update(blamed_by_git(git_repo, path))
        out = subprocess.run(
            ["git", "-C", str(git_repo.path), "blame", "--line-porcelain", "HEAD", "--", path],
            capture_output=True,
            check=True,
        ).stdout
        for line in out.splitlines():
            if line.startswith(b"author-time "):
                age = head_time - int(line.split()[1])
                ages[next(b for b, bound in CODE_AGE if bound is None or age < bound)] += 1
    people = documents["ownership"]["contributors"]
    assert {p["email"]: p["surviving_lines"] for p in people if p["surviving_lines"]} == expected
    total = sum(expected.values())
    assert all(p["share_of_lines"] == round(p["surviving_lines"] / total, 6) for p in people)
    assert documents["overview"]["code_age"] == [
        {"bucket": bucket, "lines": ages[bucket]} for bucket, _ in CODE_AGE
    ]

    # Each path's entry: its surviving lines, top owners (most lines first, ties by key) and
    # bus factor over lines, from the same counts summed over the files under it.
    by_path: dict[bytes, Counter[str]] = {}
    for path in text_files(git_repo):
        for at in [path, *ancestors(path)]:
            by_path.setdefault(at, Counter()).update(blamed_by_git(git_repo, path))
    seen = {}
    for key in await storage.list(layout.paths_documents(1)):
        stored = await storage.get(key)
        assert stored is not None
        directory = PathsDirectory.model_validate_json(stored.data)
        for entry in [directory.entry, *directory.paths]:
            seen[raw_path(entry.path)] = entry
    for path, entry in seen.items():
        counts = by_path.get(path, Counter())
        order = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        assert entry.surviving_lines == sum(counts.values()), path
        assert [(o.email_sha256, o.surviving_lines) for o in entry.top_owners] == [
            (email_fields(email, EmailMode.PLAIN)[1], n) for email, n in order[:TOP_CONTRIBUTORS]
        ], path
        assert entry.bus_factor_lines == bus_factor([n for _, n in order]), path
    assert set(by_path) <= set(seen) and seen[ROOT].surviving_lines == total


def numbered(prefix: str, count: int, eol: str = "\n") -> list[str]:
    return [f"{prefix} {n}{eol}" for n in range(count)]


def test_a_push_carries_blame_forward_and_blames_whole_only_what_it_must(
    git_repo: GitRepo,
) -> None:
    """Push after push, the rows update_provenance keeps are those of blaming every text file
    at the head afresh. Line edits, renames, lines moved between files, CRLF files, an empty file
    filled, a file turned binary and a pull request's merge are carried from the old head's rows
    (no file blamed whole); a merge that keeps a side branch's line from before the old head
    blames that file whole, and so does a force-push every file."""
    repo = pygit2.Repository(str(git_repo.path))
    core = numbered("core", 60)
    crlf = numbered("crlf", 12, "\r\n")
    git_repo.commit(
        {
            "core.py": "".join(core),
            "win.txt": "".join(crlf),
            "pkg/__init__.py": "",
            "data.bin": b"\x00\x01" * 64,
        },
        author=ADA,
    )
    people = People(Mailmap.from_buffer(b""), ())
    pushed: list[ProvenanceState | None] = [None]

    def team(path: bytes) -> str | None:
        return None if path.startswith(b"pkg/") else f"@{path[:1].decode()}"

    def text(head: str) -> set[bytes]:
        tree = repo.revparse_single(head).peel(pygit2.Tree)
        blobs = {path: tree[path.decode()] for path in regular_files(repo, head)}
        return {
            p for p, blob in blobs.items() if isinstance(blob, pygit2.Blob) and not blob.is_binary
        }

    def push() -> int:
        """Update from the last pushed head to main's; the files blamed whole. The counts
        brought up to date are those of counting every run afresh."""
        head = git_repo.head("main")
        state, updated = advanced(git_repo, head, text(head), pushed[0])
        counted(state, people, team)
        fresh = ProvenanceState.from_table(head, state.table())
        counted(fresh, people, team)
        assert state.by_person() == fresh.by_person()
        assert state.code_age(2_000_000_000) == fresh.code_age(2_000_000_000)
        assert state.path_ranked == fresh.path_ranked
        assert state.owner_ranked == fresh.owner_ranked
        for mine, theirs in zip(
            state.path_tables(people.keys), fresh.path_tables(people.keys), strict=True
        ):
            assert sorted(mine.to_pylist(), key=repr) == sorted(theirs.to_pylist(), key=repr)
        pushed[0] = state
        return updated.whole

    assert push() == len(text(git_repo.head()))  # the backfill: everything blamed whole

    # Lines replaced, inserted and deleted in the middle, in two commits by two people.
    core[10:12] = ["replaced a\n", "replaced b\n"]
    git_repo.commit({"core.py": "".join(core)}, author=BOB)
    core[30:31] = ["inserted 1\n", "inserted 2\n", "inserted 3\n"]
    del core[50]
    git_repo.commit({"core.py": "".join(core), "pkg/__init__.py": "x = 1\n"}, author=CY)
    assert push() == 0

    # A whole-file rename with an edit, ten lines cut from one file and pasted into the CRLF
    # file, and a binary file becoming text while a text file becomes binary.
    git_repo.run("mv", "core.py", "src_core.py")
    core[0] = "renamed and edited\n"
    git_repo.commit({"src_core.py": "".join(core)}, author=BOB)
    moved, core = core[20:30], core[:20] + core[30:]
    crlf[5:5] = [line.replace("\n", "\r\n") for line in moved]
    git_repo.commit(
        {
            "src_core.py": "".join(core),
            "win.txt": "".join(crlf),
            "data.bin": "now text\n",
            "pkg/__init__.py": b"\x00binary now",
        },
        author=ADA,
    )
    assert push() == 0

    # A pull request: a topic branch forked at the pushed head, main moving meanwhile, then
    # merged into main (main its first parent).
    git_repo.branch("topic")
    git_repo.checkout("topic")
    topic_core = [*core[:3], "topic line\n", *core[3:]]
    git_repo.commit({"src_core.py": "".join(topic_core), "side.py": "side\n" * 4}, author=CY)
    git_repo.checkout("main")
    crlf[0] = "main moved\r\n"
    git_repo.commit({"win.txt": "".join(crlf)}, author=BOB)
    git_repo.merge("topic", author=ADA)
    core = topic_core
    assert push() == 0

    # A branch forked here keeps a line main then changes; the merge takes the branch's line:
    # blame passes that line down the branch to a commit before the pushed head.
    git_repo.branch("old")
    core[40] = "main's version\n"
    git_repo.commit({"src_core.py": "".join(core)}, author=BOB)
    assert push() == 0
    git_repo.checkout("old")
    git_repo.commit({"other.txt": "other\n"}, author=CY)
    git_repo.checkout("main")
    git_repo.run("merge", "-q", "--no-ff", "--no-commit", "old")
    core[40] = git_repo.git("show", "old:src_core.py").splitlines(keepends=True)[40]
    git_repo.commit({"src_core.py": "".join(core)}, message="merge old", author=ADA)
    assert len(repo.revparse_single(git_repo.head()).peel(pygit2.Commit).parents) == 2
    assert push() == 1

    # Force-pushed back: every file blamed whole.
    first = git_repo.head("main~3")
    git_repo.reset_branch("main", first)
    assert push() == len(text(first))


async def test_a_long_backfill_publishes_the_other_figures_before_provenance(
    git_repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every file is to be blamed whole over a long history, the documents are published
    first with provenance null, the status then shows the provenance phase with its progress over
    the files, and the documents are published again with it."""
    history(git_repo)
    monkeypatch.setattr(pipeline, "PUBLISH_FIRST_WORK", 1)
    monkeypatch.setattr(pipeline, "STATUS_INTERVAL_S", 0.01)
    write_every_phase(monkeypatch)
    progress = threading.Event()
    total = len(text_files(git_repo))

    class Watched(LocalStorage):
        async def put(self, key: str, data: bytes, content_type: str = "application/json") -> str:
            written = await super().put(key, data, content_type)
            if key == layout.codebase_document(1, "status"):
                status = json.loads(data)
                if status["phase"] == "provenance" and status["progress"] == {
                    "done": total,
                    "total": total,
                }:
                    progress.set()
            return written

    storage = Watched(tmp_path / "storage")
    names = ["overview", "ownership"]
    early: dict[str, dict[str, Any]] = {}
    real = pipeline.update_provenance

    def blamed(*args: Any, **kwargs: Any) -> Any:
        early.update(asyncio.run(read_documents(LocalStorage(tmp_path / "storage"), 1, names)))
        updated = real(*args, **kwargs)
        assert progress.wait(30), "the status never showed provenance's progress"
        return updated

    monkeypatch.setattr(pipeline, "update_provenance", blamed)
    await analyze_codebase(
        str(git_repo.path), storage, 1, tmp_path / "work", email_mode=EmailMode.PLAIN
    )
    final = await read_documents(storage, 1, names)
    assert early["overview"]["code_age"] is None and final["overview"]["code_age"]
    for document in early, final:
        document["overview"].pop("generated_at")
        document["ownership"].pop("generated_at")
    assert {**early["overview"], "code_age": None} == {**final["overview"], "code_age": None}
    people = early["ownership"]["contributors"]
    assert people and all(p["surviving_lines"] is None is p["share_of_lines"] for p in people)
    assert sum(p["surviving_lines"] for p in final["ownership"]["contributors"]) == sum(
        sum(blamed_by_git(git_repo, path).values()) for path in text_files(git_repo)
    )
    blank = {"surviving_lines": None, "share_of_lines": None}
    assert [{**p, **blank} for p in final["ownership"]["contributors"]] == people
    # The state holds what the manifest names, nothing of the first export left behind.
    stored = await storage.get(layout.manifest(1))
    assert stored is not None
    manifest = Manifest.model_validate_json(stored.data)
    assert manifest.provenance_key and manifest.paths_key
    assert set(await storage.list(layout.state_prefix(1))) == manifest.objects()


async def test_each_teams_surviving_lines_are_git_blames_over_its_files(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    """teams: each CODEOWNERS owner's files (and those nobody owns) have the lines git blame
    gives at the head, their top owners by those lines and the bus factor over them."""
    history(git_repo)
    git_repo.commit({"CODEOWNERS": "/src/ @org/src\n*.md @org/docs\n"}, author=BOB)
    storage = LocalStorage(tmp_path / "storage")
    await analyze_codebase(
        str(git_repo.path), storage, 1, tmp_path / "work", email_mode=EmailMode.PLAIN
    )
    document = (await read_documents(storage, 1, ["teams"]))["teams"]

    def team_of(path: bytes) -> str | None:
        if path.startswith(b"src/"):
            return "@org/src"
        return "@org/docs" if path.endswith(b".md") else None

    expected: dict[str | None, Counter[str]] = {}
    for path in text_files(git_repo):
        expected.setdefault(team_of(path), Counter()).update(blamed_by_git(git_repo, path))
    assert set(expected) == {"@org/src", "@org/docs", None}
    listed = {team["owner"]: team for team in document["teams"]} | {None: document["unowned"]}
    for owner, counts in expected.items():
        order = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        team = listed[owner]
        assert team["surviving_lines"] == sum(counts.values()), owner
        assert [(o["email_sha256"], o["surviving_lines"]) for o in team["top_owners"]] == [
            (email_fields(email, EmailMode.PLAIN)[1], n) for email, n in order[:TOP_CONTRIBUTORS]
        ], owner
        assert team["bus_factor_lines"] == bus_factor([n for _, n in order]), owner
