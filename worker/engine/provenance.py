"""Line provenance (DESIGN.md definition 16): for each text file at the default head, which commit
`git blame` names for each of its lines.

git blame itself decides, with its default options: its result is the definition, and no
re-implementation of its passing of blame to parents matches it on every history (merges,
whole-file renames, lines that move). Two things make it affordable:

- A push does not blame a file's whole history again. `git blame OLD..NEW -- FILE` walks only
  the push's commits: it names the push's commits for the lines they wrote and leaves the others
  to OLD, the old head, as boundary lines (with their line numbers in OLD's file). Those lines
  are what the stored rows say of OLD's file: blame passes each line to a parent by a diff of
  the two files alone, so a line's commit does not depend on which other lines were asked
  about. A line blame leaves to any other commit outside the push (a side branch forked before
  OLD, a line the merge took from it) makes that file blamed whole, as it is when OLD is not on
  the new head's first-parent chain (a force-push).
- A whole blame (the backfill, those files) reads git's commit-graph with changed-path Bloom
  filters, which lets blame skip the commits that do not touch a file without reading their
  trees: on git/git (82,000 commits), 24 files sampled at random took 12.5 s to blame without it
  and 2.2 s with it (writing it took 26 s once; a later write adds a layer for the new commits).

Rows are runs of lines (a file's lines from `start`, `lines` of them, that one commit holds;
adjacent runs name different commits), the commit's author beside it before the mailmap, so that
a change of the mailmap or of the bots is applied when the rows are aggregated, without blaming
again.
"""

from __future__ import annotations

import bisect
import re
import subprocess
import threading
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import pyarrow as pa
import pygit2

from worker.engine.extract import clamp_time, identity_text
from worker.engine.gitlog import git_env, missing_object, unquote

# Per run of lines of a file at the head that one commit holds (`start` is 1-based): the
# commit's author as extraction reads it (before the mailmap).
PROVENANCE_SCHEMA = pa.schema(
    [
        ("path", pa.binary()),
        ("start", pa.int64()),
        ("lines", pa.int64()),
        ("sha", pa.string()),
        ("author_name", pa.string()),
        ("author_email", pa.string()),
        ("author_time", pa.int64()),
    ]
)
# The first line of a group of `git blame --incremental`: the commit, the group's first line in
# the commit's file, its first line in the blamed file, and how many lines it has. Its last line
# names the commit's file: "filename PATH".
_GROUP = re.compile(rb"([0-9a-f]{40,64}) (\d+) (\d+) (\d+)")
_FILENAME = b"filename "
# git blame's options that a machine's configuration could change, given as their defaults.
_BLAME = [
    "-c",
    "blame.ignoreRevsFile=",
    "-c",
    "blame.markIgnoredLines=false",
    "-c",
    "blame.markUnblamableLines=false",
    "-c",
    "core.quotePath=true",
    "blame",
    "--incremental",
    "--no-progress",
]

T = TypeVar("T")
Run = tuple[int, int, str]  # (start, lines, sha): the lines start.. of a file that sha holds
Author = tuple[str, str, int]  # name, email (before the mailmap), time: extraction's


class BlameError(RuntimeError):
    pass


@dataclass(frozen=True)
class Group:
    """A group of lines `git blame --incremental` names one commit for."""

    sha: str
    source_start: int  # its first line in `source`, the file at `sha`
    start: int  # its first line in the blamed file
    lines: int
    source: bytes


def write_commit_graph(repo_dir: Path) -> None:
    """Give the repository a commit-graph with changed-path Bloom filters (a new layer for the
    commits the last one lacks), which blame reads to skip the commits that leave a file alone."""
    args = ["commit-graph", "write", "--reachable", "--changed-paths", "--split"]
    _git(repo_dir, args, "writing the commit-graph")


def blame_groups(repo_dir: Path, head: str, path: bytes, since: str | None = None) -> list[Group]:
    """git blame's groups for `path` at `head`: over the whole history, or (`since`) over the
    commits `head` has and `since` has not, the others' lines left to the commits at the edge."""
    revision = head if since is None else f"{since}..{head}"
    out = _git(repo_dir, [*_BLAME, revision, "--", path], f"blame of {path!r}")
    groups, group = [], None
    for line in out.split(b"\n"):
        if group is None:
            group = _GROUP.fullmatch(line)
        elif line.startswith(_FILENAME):
            name = line[len(_FILENAME) :]
            source = unquote(name)[0] if name[:1] == b'"' else name
            sha, source_start, start, lines = group.groups()
            groups.append(Group(sha.decode(), int(source_start), int(start), int(lines), source))
            group = None
    if group is not None:
        raise BlameError(f"git: blame of {path!r} ended inside a group")
    return groups


def blame_file(repo_dir: Path, head: str, path: bytes) -> list[Run]:
    """The runs of lines of `path` at `head` and the commit git blame names for each."""
    return _runs(
        (group.start, group.lines, group.sha) for group in blame_groups(repo_dir, head, path)
    )


def carried(
    groups: Iterable[Group], old_head: str, newer: set[str], old_runs: Mapping[bytes, list[Run]]
) -> list[Run] | None:
    """A file's runs at a new head from its blame over the commits since `old_head` (`newer`,
    blame_groups with since=old_head): the push's commits keep their lines, the lines left to
    old_head take the commits `old_runs` (the runs of old_head's files) name for them. None when
    a line is left to another commit, or to a file of old_head without runs."""
    runs: list[Run] = []
    for group in groups:
        if group.sha in newer:
            runs.append((group.start, group.lines, group.sha))
            continue
        source = old_runs.get(group.source) if group.sha == old_head else None
        if source is None:
            return None
        first, end = group.source_start, group.source_start + group.lines
        at = max(bisect.bisect_right(source, (first, float("inf"))) - 1, 0)
        covered = 0
        for start, lines, sha in source[at:]:
            if start >= end:
                break
            low, high = max(start, first), min(start + lines, end)
            if low < high:
                runs.append((group.start + low - first, high - low, sha))
                covered += high - low
        if covered != group.lines:
            return None  # the stored runs do not cover the lines: not the file blame read
    return _runs(runs)


def _runs(runs: Iterable[Run]) -> list[Run]:
    """`runs` in order of their lines, adjacent runs of one commit joined."""
    joined: list[Run] = []
    for start, lines, sha in sorted(runs):
        if joined and joined[-1][2] == sha and joined[-1][0] + joined[-1][1] == start:
            joined[-1] = (joined[-1][0], joined[-1][1] + lines, sha)
        else:
            joined.append((start, lines, sha))
    return joined


def _in_parallel(paths: Sequence[bytes], work: Callable[[bytes], T], workers: int) -> list[T]:
    """`work` for each of `paths`, `workers` at a time (threads: the work is git's)."""
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        return list(pool.map(work, paths))


def author_of(repo: pygit2.Repository, sha: str) -> Author:
    """A commit's author as extraction reads it (extract.py: its name and email as text, its
    time within the span documents show)."""
    commit = repo.get(sha)
    assert isinstance(commit, pygit2.Commit), f"blame named {sha}, not a commit"
    author, encoding = commit.author, commit.message_encoding
    return (
        identity_text(author.raw_name, encoding),
        identity_text(author.raw_email, encoding),
        clamp_time(author.time),
    )


def _git(repo_dir: Path, args: Sequence[str | bytes], what: str) -> bytes:
    proc = subprocess.run(
        ["git", "-C", str(repo_dir), *args],
        capture_output=True,
        env=git_env(),
        check=False,
    )
    if proc.returncode != 0:
        missing = missing_object(proc.stderr)
        if missing is not None:
            raise missing
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise BlameError(f"git: {what} failed: {message[-1] if message else proc.returncode}")
    return proc.stdout


# code_age's buckets (definition 16): by how long before the head commit's committer time a
# line's commit was authored, each up to (not including) its bound in seconds.
DAY = 86_400
CODE_AGE = (
    ("<1m", 30 * DAY),
    ("1-6m", 180 * DAY),
    ("6-12m", 365 * DAY),
    ("1-2y", 730 * DAY),
    (">2y", None),
)


def reblamed(repo: pygit2.Repository, old_head: str | None, new_head: str) -> set[bytes] | None:
    """The files whose blame at `new_head` may differ from theirs at `old_head`: those that a
    commit on new_head's first-parent chain down to old_head changes (against its first parent,
    as git blame follows an unchanged file down the first parent); None (every file) when
    old_head is not on that chain (a force-push, a default branch moved to a branch that merged
    it, no earlier head)."""
    if old_head is None or not isinstance(repo.get(old_head), pygit2.Commit):
        return None  # none, or force-pushed away and gone from the repository
    if old_head == new_head:
        return set()
    newer = _newer(repo, old_head, new_head)
    changed: set[bytes] = set()
    at = repo.get(new_head)
    while isinstance(at, pygit2.Commit) and str(at.id) in newer:
        parent = at.parents[0] if at.parents else None
        if parent is None:
            return None
        diff = repo.diff(parent, at)
        for delta in diff.deltas:
            changed.add(delta.old_file.raw_path)
            changed.add(delta.new_file.raw_path)
        at = parent
    return changed if isinstance(at, pygit2.Commit) and str(at.id) == old_head else None


def _newer(repo: pygit2.Repository, old_head: str, new_head: str) -> set[str]:
    """The commits new_head has and old_head has not."""
    walker = repo.walk(new_head, pygit2.enums.SortMode.NONE)
    walker.hide(old_head)
    return {str(commit.id) for commit in walker}


_REGULAR = (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE)


def regular_files(repo: pygit2.Repository, head: str) -> set[bytes]:
    """The paths of the regular files (not symlinks, not submodules) of `head`'s tree."""
    commit = repo.get(head)
    assert isinstance(commit, pygit2.Commit), f"{head} is not a commit"
    found: set[bytes] = set()
    pending: list[tuple[bytes, pygit2.Tree]] = [(b"", commit.tree)]
    while pending:
        prefix, tree = pending.pop()
        for entry in tree:
            path = prefix + entry.raw_name
            if entry.filemode in _REGULAR:
                found.add(path)
            elif isinstance(entry, pygit2.Tree):
                pending.append((path + b"/", entry))
    return found


class Updated(NamedTuple):
    changed: dict[bytes, list[Run]]  # the runs of the files blamed
    gone: set[bytes]  # files that had runs and are no text file at the head
    authors: dict[str, Author]  # the authors of the commits `changed` names, but the known
    blamed: int  # files blamed (over the new commits or whole)
    whole: int  # of which blamed whole


def update_provenance(
    repo_dir: Path,
    head: str,
    text_files: set[bytes],
    old: Mapping[bytes, list[Run]] | None,
    old_head: str | None,
    workers: int = 2,
    report: Callable[[int, int], None] | None = None,
    known: Container[str] = frozenset(),
) -> Updated:
    """What changes from `old`, the runs git blame gives each text file at `old_head` (None:
    none), to the runs of `text_files` (the text files at `head`). When old_head is on head's
    first-parent chain, the files the chain changes are blamed over the new commits and carried
    from old_head's runs (`carried`), or else blamed whole; otherwise every file is blamed
    whole. `report(done, total)` as files are done; the authors of the `known` commits are not
    read again."""
    repo = pygit2.Repository(str(repo_dir))
    changed = None if old is None else reblamed(repo, old_head, head)
    gone = set(old or ()) - text_files
    if old is None or changed is None or old_head is None:
        todo = sorted(text_files)
    else:
        todo = sorted(text_files & changed)
    found: dict[bytes, list[Run]] = {}
    if todo and old is not None and changed is not None and old_head is not None:
        since = old_head
        groups = _in_parallel(todo, lambda path: blame_groups(repo_dir, head, path, since), workers)
        newer = _newer(repo, since, head)
        for path, each in zip(todo, groups, strict=True):
            runs = carried(each, since, newer, old)
            if runs is not None:
                found[path] = runs
        if report is not None:
            report(len(found), len(todo))
    whole = [path for path in todo if path not in found]
    if whole:
        write_commit_graph(repo_dir)
        done = len(found)
        lock = threading.Lock()

        def blamed(path: bytes) -> list[Run]:
            nonlocal done
            runs = blame_file(repo_dir, head, path)
            if report is not None:
                with lock:
                    done += 1
                    report(done, len(todo))
            return runs

        found.update(zip(whole, _in_parallel(whole, blamed, workers), strict=True))
    shas = {sha for runs in found.values() for _, _, sha in runs if sha not in known}
    authors = {sha: author_of(repo, sha) for sha in sorted(shas)}
    return Updated(found, gone, authors, len(todo), len(whole))
