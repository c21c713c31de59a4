"""Property: whatever happens to a repository's branches, an incremental run ends exactly where a
run from scratch ends, and its commit delta is the one git computes.

A hypothesis state machine owns one real repository and one persistent ("incremental") storage
and work dir. Each step changes the repository the way pushes do: commits on any branch, new
branches, merges (octopus too), deleted branches, force-moved branches, new root commits; one
more step has the sync run without the incremental work dir (a new machine). After
every step the engine runs into the incremental storage and, separately, into a brand-new storage
and work dir: the five documents must be equal but for the run timestamps, and the incremental
run's added/removed counts must equal git's `rev-list` answers against the previous sync's heads.

More examples: GITSTATS_HYPOTHESIS_EXAMPLES=200 GITSTATS_HYPOTHESIS_STEPS=20 pytest this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from contract import layout
from contract.documents import CODEBASE_DOCUMENTS
from contract.storage.local import LocalStorage
from tests.support.gitrepos import GitError, GitRepo
from worker.engine.pipeline import RunResult, analyze_codebase, state_cache_dir
from worker.engine.sha_index import ShaIndex
from worker.engine.tally import read_cells

EXAMPLES = int(os.environ.get("GITSTATS_HYPOTHESIS_EXAMPLES", "8"))
STEPS = int(os.environ.get("GITSTATS_HYPOTHESIS_STEPS", "8"))

CODEBASE_ID = 3
DEFAULT = "main"

# Left out of the comparison: when a document was generated, and the status's run bookkeeping.
RUN_TIMESTAMPS = {
    "overview": {"generated_at"},
    "branches": {"generated_at"},
    "activity": {"generated_at"},
    "ownership": {"generated_at"},
    "contributor_activity": {"generated_at"},
    "status": {"updated_at", "last_run", "last_success_at"},
}

# (name, email, UTC offset in minutes); Alice's two addresses differ only in case.
AUTHORS = (
    ("Alice", "alice@example.com", 0),
    ("Bob", "bob@example.org", -8 * 60),
    ("Zoë", "zoe@example.net", 5 * 60 + 30),
    ("alice", "Alice@Example.COM", 13 * 60 + 45),
    ("Carl", "carl@example.com", -(3 * 60 + 30)),
)
MAILMAPS = (
    "Alice Smith <alice@example.com> <Alice@Example.COM>\n",
    "Bob Builder <bob@example.org>\n",
    "Alice Smith <alice@example.com>\nZed <zoe@example.net> Zoë <zoe@example.net>\n",
)
# No path is a directory of another, so any mix of them fits in one tree.
PATHS = (
    "README.md",
    "notes.txt",
    "src/app.py",
    "src/util.py",
    "web/index.js",
    "docs/guide.md",
    "data/table.csv",
    "deep/a/b/c.txt",
)
# Long enough ago that every branch is stale at any run, so `stale` cannot flip between runs.
START = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)


class Link(NamedTuple):
    """A symbolic link to `target` (relative to the link's directory, possibly dangling)."""

    target: str


Content = str | bytes | Link | None


def _text(lines: list[tuple[str, str]], final_newline: bool) -> str:
    text = "".join(line + eol for line, eol in lines)
    if lines and not final_newline:
        text = text.removesuffix(lines[-1][1])  # the last line without its terminator
    return text


LINE = st.sampled_from(["alpha", "beta", "", "x = 1", "\tindented", "déjà vu", "a\rb", "--"])
# Mixed LF and CRLF lines, with or without a final newline.
TEXT = st.builds(
    _text, st.lists(st.tuples(LINE, st.sampled_from(["\n", "\r\n"])), max_size=6), st.booleans()
)
BINARY = st.binary(max_size=24).map(lambda data: b"\x00" + data)
# A path may turn from a file into a symlink and back (a type change).
CONTENT = st.one_of(TEXT, TEXT, TEXT, BINARY, st.builds(Link, st.sampled_from(PATHS)))
PICK = st.integers(min_value=0, max_value=63)  # an index into whatever list a rule needs


class Commit(NamedTuple):
    """One commit to make: changes[path] = content, None deletes (when the path exists)."""

    changes: list[tuple[str, Content]]
    mailmap: str | None  # None leaves .mailmap alone, "" deletes it
    empty: bool  # commit nothing at all (--allow-empty)
    author: int  # an index into AUTHORS
    minutes: int  # how long after the previous commit of the repository


COMMIT = st.builds(
    Commit,
    changes=st.lists(
        st.tuples(st.sampled_from(PATHS), st.none() | CONTENT), min_size=1, max_size=3
    ),
    mailmap=st.sampled_from([None, None, None, None, *MAILMAPS, ""]),
    empty=st.sampled_from([False, False, False, False, True]),
    author=st.integers(min_value=0, max_value=len(AUTHORS) - 1),
    minutes=st.integers(min_value=1, max_value=4 * 24 * 60),
)
PUSH = st.lists(COMMIT, min_size=1, max_size=3)


def _without_run_timestamps(name: str, document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in RUN_TIMESTAMPS[name]}


async def _sync_and_read(
    source: str, storage_root: Path, work_dir: Path
) -> tuple[RunResult, dict[str, dict[str, Any]]]:
    storage = LocalStorage(storage_root)
    try:
        result = await analyze_codebase(
            source, storage, CODEBASE_ID, work_dir, default_branch=DEFAULT, workers=1
        )
        documents = {}
        for name in CODEBASE_DOCUMENTS:
            stored = await storage.get(layout.codebase_document(CODEBASE_ID, name))
            assert stored is not None, f"{name} was not written"
            documents[name] = json.loads(stored.data)
        # The aggregates' state itself, not only what the documents show of it.
        manifest = await storage.get(layout.manifest(CODEBASE_ID))
        assert manifest is not None
        state = json.loads(manifest.data)
        cells = await storage.get(state["tally_key"])
        assert cells is not None
        rows = read_cells(cells.data).to_pylist()
        documents["tally"] = {
            "cells": sorted(rows, key=lambda row: json.dumps(row, default=str)),
            "punch_card": state["punch_card"],
        }
        documents["parts"] = [part["name"] for part in state["parts"]]
    finally:
        await storage.close()
    return result, documents


class IncrementalEqualsScratch(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="gitstats-incremental-property-"))
        self.repo = GitRepo.init(self.root / "repo")
        # What the engine fetches from: a bare repository every step's result is force-pushed to,
        # as to a hosting service, which can forget unreachable commits (see the new machine).
        self.server = GitRepo(self.root / "server.git")
        self.repo.run("init", "-q", "--bare", "--template=", str(self.server.path))
        self.clock = START
        self.created: list[str] = []  # every commit ever made, reachable or not
        self.names = 0
        self.runs = 0
        self.old_heads: dict[str, str] = {}  # the branch heads at the previous sync
        self.old_count = 0  # git rev-list --count --branches at the previous sync
        self.lose: str | None = None  # what the next sync finds missing from the work dir

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    def _branches(self) -> list[str]:
        return self.repo.branches()

    def _heads(self) -> dict[str, str]:
        return {name: self.repo.head(name) for name in self._branches()}

    @staticmethod
    def _pick(items: list[str], index: int) -> str:
        return items[index % len(items)]

    def _new_name(self, nested: bool) -> str:
        self.names += 1
        return f"topic/b{self.names}" if nested else f"b{self.names}"

    def _when(self, author: int, minutes: int) -> tuple[tuple[str, str], datetime]:
        name, email, offset = AUTHORS[author]
        self.clock += timedelta(minutes=minutes)
        return (name, email), self.clock.astimezone(timezone(timedelta(minutes=offset)))

    def _count(self, *revisions: str) -> int:
        return int(self.repo.git("rev-list", "--count", *revisions))

    def _ancestor(self, branch: str, back: int) -> str:
        """The commit `back` first-parent steps below `branch`'s head (its root at most)."""
        depth = self._count("--first-parent", branch)
        return self.repo.head(f"{branch}~{min(back, depth - 1)}")

    def _commit(self, commit: Commit) -> None:
        """Commit on the checked-out branch (or unborn orphan branch)."""
        if not commit.empty:
            changes = list(commit.changes)
            if commit.mailmap is not None:
                changes.append((".mailmap", commit.mailmap or None))
            for path, content in changes:
                if isinstance(content, Link):
                    self.repo.symlink(path, content.target)
                elif content is not None or os.path.lexists(self.repo.path / path):
                    self.repo.write(path, content)
        who, when = self._when(commit.author, commit.minutes)
        # Changes that leave the tree as it was make an empty commit too.
        sha = self.repo.commit(None, f"commit {len(self.created)}", who, when, allow_empty=True)
        self.created.append(sha)
        event("commit: empty" if commit.empty else "commit: with changes")

    def _push(self, branch: str, commits: list[Commit]) -> None:
        self.repo.checkout(branch)
        for commit in commits:
            self._commit(commit)
        self.repo.checkout(DEFAULT)

    # -- rules --------------------------------------------------------------------------------

    @initialize(main=PUSH, sides=st.lists(st.tuples(st.integers(0, 2), PUSH), max_size=2))
    def start(self, main: list[Commit], sides: list[tuple[int, list[Commit]]]) -> None:
        """Some history on main, and up to two branches forked from it with their own commits."""
        for commit in main:
            self._commit(commit)
        for back, commits in sides:
            name = self._new_name(nested=False)
            self.repo.branch(name, self._ancestor(DEFAULT, back))
            self._push(name, commits)

    @rule(branch=PICK, commits=PUSH)
    def push_commits(self, branch: int, commits: list[Commit]) -> None:
        self._push(self._pick(self._branches(), branch), commits)

    @rule(commits=PUSH)
    def push_commits_to_default(self, commits: list[Commit]) -> None:
        self._push(DEFAULT, commits)

    @rule(
        start=st.sampled_from(["branch", "any commit"]),
        source=PICK,
        back=st.integers(0, 3),
        nested=st.booleans(),
    )
    def create_branch(self, start: str, source: int, back: int, nested: bool) -> None:
        if start == "any commit":
            # Possibly a commit no branch reaches any more: pushing it brings it back.
            sha = self._pick(self.created, source)
        else:
            sha = self._ancestor(self._pick(self._branches(), source), back)
        self.repo.branch(self._new_name(nested), sha)
        event(f"branch: from {start}")

    @rule(commits=PUSH, nested=st.booleans())
    def new_root(self, commits: list[Commit], nested: bool) -> None:
        self.repo.orphan(self._new_name(nested))
        for commit in commits:
            self._commit(commit)
        self.repo.checkout(DEFAULT)

    @rule(
        branch=PICK,
        sources=st.lists(PICK, min_size=1, max_size=2),
        author=st.integers(0, len(AUTHORS) - 1),
        minutes=st.integers(1, 24 * 60),
    )
    def merge(self, branch: int, sources: list[int], author: int, minutes: int) -> None:
        """Merge one branch (or two: octopus) into another, unless that conflicts."""
        names = self._branches()
        into = self._pick(names, branch)
        others = [name for name in names if name != into]
        if not others:
            event("merge: a single branch")
            return
        merged = list(dict.fromkeys(self._pick(others, s) for s in sources))
        self.repo.checkout(into)
        before = self.repo.head()
        who, when = self._when(author, minutes)
        try:
            after = self.repo.merge(*merged, author=who, date=when, allow_unrelated=True)
        except GitError:
            # A conflict: undo the attempt entirely, as if nobody had tried.
            with contextlib.suppress(GitError):
                self.repo.run("merge", "--abort")
            self.repo.run("reset", "-q", "--hard", before)
            self.repo.run("clean", "-ffdxq")
            if self.repo.head() != before or not self.repo.is_clean():
                raise RuntimeError("could not undo a conflicting merge") from None
            event("merge: conflict, skipped")
        else:
            if after != before:
                self.created.append(after)
            event(f"merge: {len(merged) + 1} parents" if after != before else "merge: up to date")
        self.repo.checkout(DEFAULT)

    @rule(branch=PICK)
    def delete_branch(self, branch: int) -> None:
        others = [name for name in self._branches() if name != DEFAULT]
        if not others:
            event("delete: only the default branch")
            return
        self.repo.delete_branch(self._pick(others, branch))
        event("delete: done")

    @rule(
        branch=PICK,
        to=st.sampled_from(["ancestor", "other branch", "any commit"]),
        back=st.integers(1, 4),
        other=PICK,
    )
    def force_move(self, branch: int, to: str, back: int, other: int) -> None:
        """Force-push: a branch (main too) to an older commit, another head, or any commit."""
        names = self._branches()
        name = self._pick(names, branch)
        if to == "ancestor":
            sha = self._ancestor(name, back)
        elif to == "other branch":
            sha = self.repo.head(self._pick([n for n in names if n != name] or names, other))
        else:
            sha = self._pick(self.created, other)
        event(f"force-move: to {to}" if sha != self.repo.head(name) else "force-move: no-op")
        self.repo.reset_branch(name, sha)

    @rule(
        lose=st.sampled_from(["everything", "mirror", "state"]),
        change=st.sampled_from(["none", "rewind a branch", "delete a branch"]),
        branch=PICK,
        back=st.integers(1, 4),
    )
    def sync_on_new_machine(self, lose: str, change: str, branch: int, back: int) -> None:
        """This step's sync runs without (part of) the incremental work dir, as on a new machine
        where only the storage is shared, after a force-push or a deletion, or nothing else."""
        self.lose = lose
        if change == "rewind a branch":
            self.force_move(branch, "ancestor", back, 0)
        elif change == "delete a branch":
            self.delete_branch(branch)

    # -- the property -------------------------------------------------------------------------

    @invariant()
    def incremental_equals_scratch(self) -> None:
        assert self.repo.current_branch() == DEFAULT and self.repo.is_clean()
        heads = self._heads()
        old = sorted(set(self.old_heads.values()))
        after = self._count("--branches")
        # Commits a force-move or a deletion left behind are still in the repository's objects.
        added = self._count("--branches", "--not", *old)
        removed = self._count(*old, "--not", "--branches") if old else 0

        self.repo.run(
            "push", "-q", "--force", "--prune", str(self.server.path), "refs/heads/*:refs/heads/*"
        )
        work = self.root / "incremental-work"
        if self.lose is not None:
            lost = {"everything": work, "mirror": work / "repos", "state": work / "state"}
            shutil.rmtree(lost[self.lose], ignore_errors=True)
            # A clone of a local repository takes every object, reachable or not: the server
            # forgets the unreachable ones, so that old heads may be missing from the new mirror.
            self.server.run("gc", "-q", "--prune=now")
            event(f"sync on a new machine: lost {self.lose}")
            self.lose = None

        source = str(self.server.path)
        result, incremental = asyncio.run(_sync_and_read(source, self.root / "incremental", work))
        self.runs += 1
        scratch_root = self.root / f"scratch-{self.runs}"
        fresh, scratch = asyncio.run(
            _sync_and_read(source, scratch_root / "storage", scratch_root / "work")
        )
        shutil.rmtree(scratch_root)

        assert (result.commits_added, result.commits_removed) == (added, removed)
        assert result.commits_added - result.commits_removed == after - self.old_count
        assert (fresh.commits_added, fresh.commits_removed) == (after, 0)
        for name in CODEBASE_DOCUMENTS:
            assert _without_run_timestamps(name, incremental[name]) == _without_run_timestamps(
                name, scratch[name]
            ), f"{name}: the incremental run differs from the run from scratch"
        assert incremental["tally"] == scratch["tally"], "the tally differs from a fresh count"
        # The local index of stored shas, when it is current (a run that lost it and did not
        # need it leaves it to the next that does).
        index = ShaIndex(state_cache_dir(work, CODEBASE_ID))
        if index.reflects(incremental["parts"]):
            stored = self.repo.git("rev-list", "--branches").split()
            assert index.path.read_bytes() == bytes.fromhex("".join(sorted(stored)))
        overview, status = incremental["overview"], incremental["status"]
        assert overview["total_commits"] == after
        assert overview["total_branches"] == len(heads)
        assert overview["head_sha"] == heads[DEFAULT]
        assert status["refs"] == heads
        assert status["state"] == "succeeded"
        last_run = status["last_run"]
        assert (last_run["commits_added"], last_run["commits_removed"]) == (added, removed)
        self.old_heads, self.old_count = heads, after


IncrementalEqualsScratch.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    database=None,  # write nothing into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestIncrementalEqualsScratch = IncrementalEqualsScratch.TestCase
