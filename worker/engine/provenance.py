"""Line provenance (DESIGN.md definition 16): for each text file at the default head, which commit
`git blame` names for each of its lines, counted per (file, commit).

git blame itself decides, with its default options, in parallel processes: its result is the
definition, and no re-implementation of its passing of blame to parents matches it on every
history (merges, whole-file renames, lines that move). What makes it affordable is git's
commit-graph with changed-path Bloom filters, which lets blame skip the commits that do not
touch a file without reading their trees: on git/git (82,000 commits), 24 files sampled at
random took 12.5 s to blame without it and 2.2 s with it (writing it took 26 s once; a later
write adds a layer for the new commits only).

Rows are kept per (path, commit), the commit's author beside it before the mailmap, so that a
change of the mailmap or of the bots is applied when the rows are aggregated, without blaming
again.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pygit2

from worker.engine.extract import clamp_time, identity_text
from worker.engine.gitlog import git_env
from worker.engine.paths import coded_ancestry, ranked_leaders

# Per (file at the head, commit): the lines of the file the commit holds, and the commit's author
# as extraction reads it (before the mailmap).
PROVENANCE_SCHEMA = pa.schema(
    [
        ("path", pa.binary()),
        ("sha", pa.string()),
        ("lines", pa.int64()),
        ("author_name", pa.string()),
        ("author_email", pa.string()),
        ("author_time", pa.int64()),
    ]
)
# A group of `git blame --incremental`: the commit, the line in it, the line in the file, and
# how many lines from there the commit holds.
_GROUP = re.compile(rb"^([0-9a-f]{40,64}) \d+ \d+ (\d+)$", re.MULTILINE)
# git blame's options that a machine's configuration could change, given as their defaults.
_BLAME = [
    "-c",
    "blame.ignoreRevsFile=",
    "-c",
    "blame.markIgnoredLines=false",
    "-c",
    "blame.markUnblamableLines=false",
    "blame",
    "--incremental",
    "--no-progress",
]


class BlameError(RuntimeError):
    pass


def write_commit_graph(repo_dir: Path) -> None:
    """Give the repository a commit-graph with changed-path Bloom filters (a new layer for the
    commits the last one lacks), which blame reads to skip the commits that leave a file alone."""
    args = ["commit-graph", "write", "--reachable", "--changed-paths", "--split"]
    _git(repo_dir, args, "writing the commit-graph")


def blame_file(repo_dir: Path, head: str, path: bytes) -> dict[str, int]:
    """How many of the lines of `path` at `head` each commit holds, as git blame names them."""
    out = _git(repo_dir, [*_BLAME, head, "--", path], f"blame of {path!r}")
    counts: dict[str, int] = {}
    for match in _GROUP.finditer(out):
        sha = match.group(1).decode()
        counts[sha] = counts.get(sha, 0) + int(match.group(2))
    return counts


def blame_files(
    repo_dir: Path,
    head: str,
    paths: Iterable[bytes],
    workers: int = 2,
    report: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """PROVENANCE_SCHEMA's rows for each of `paths` (text files at `head`), blamed `workers` at
    a time (each in its own git process); `report(done, total)` after each file."""
    listed = sorted(set(paths))
    done = 0
    lock = threading.Lock()

    def blamed(path: bytes) -> dict[str, int]:
        nonlocal done
        counts = blame_file(repo_dir, head, path)
        if report is not None:
            with lock:
                done += 1
                report(done, len(listed))
        return counts

    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        found = list(pool.map(blamed, listed))
    repo = pygit2.Repository(str(repo_dir))
    authors: dict[str, tuple[str, str, int]] = {}
    rows: dict[str, list[object]] = {name: [] for name in PROVENANCE_SCHEMA.names}
    for path, counts in zip(listed, found, strict=True):
        for sha, lines in sorted(counts.items()):
            if sha not in authors:
                authors[sha] = _author(repo, sha)
            for column, value in zip(
                PROVENANCE_SCHEMA.names, (path, sha, lines, *authors[sha]), strict=True
            ):
                rows[column].append(value)
    return pa.table(rows, schema=PROVENANCE_SCHEMA)


def _author(repo: pygit2.Repository, sha: str) -> tuple[str, str, int]:
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


def code_age(rows: pa.Table, head_time: int) -> list[tuple[str, int]]:
    """The lines at the head by the age of their commit (an author time after the head's
    counts as the youngest)."""
    age = pc.subtract(pa.scalar(head_time, pa.int64()), rows.column("author_time"))
    counted, result = pa.array([False] * rows.num_rows, pa.bool_()), []
    for bucket, bound in CODE_AGE:
        inside = pc.invert(counted) if bound is None else pc.less(age, bound)
        taken = pc.and_(inside, pc.invert(counted))
        result.append((bucket, pc.sum(pc.if_else(taken, rows.column("lines"), 0)).as_py() or 0))
        counted = pc.or_(counted, taken)
    return result


def surviving_by_person(rows: pa.Table, kids: pa.Array) -> dict[int, int]:
    """Each person's (kid's) lines at the head; `kids` is each row's."""
    if not rows.num_rows:
        return {}
    grouped = (
        pa.table({"kid": kids, "lines": rows.column("lines")})
        .group_by("kid", use_threads=False)
        .aggregate([("lines", "sum")])
    )
    return dict(
        zip(grouped.column("kid").to_pylist(), grouped.column("lines_sum").to_pylist(), strict=True)
    )


def surviving_by_path(
    rows: pa.Table, kids: pa.Array, keys: list[str]
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Per path (each file at the head, its directories, the root ""): its surviving lines
    (path, surviving_lines); its top owners by lines (paths.ranked_leaders' tables: kid,
    churn being their lines, rank) and its bus factor over lines."""
    files = pc.unique(rows.column("path")).to_pylist() if rows.num_rows else []
    chains, names = coded_ancestry(files)
    index = pc.index_in(rows.column("path"), value_set=pa.array(files, pa.binary()))
    per_file = pa.table(
        {"file": index.cast(pa.int32()), "kid": kids, "lines": rows.column("lines")}
    )
    grouped = (
        per_file.join(chains.select(["file", "at"]), "file", use_threads=False)
        .group_by(["at", "kid"], use_threads=False)
        .aggregate([("lines", "sum")])
    )
    paths = pc.take(pa.array(names, pa.binary()), grouped.column("at"))
    owned = pa.table(
        {"path": paths, "kid": grouped.column("kid"), "churn": grouped.column("lines_sum")}
    )
    totals = owned.group_by("path", use_threads=False).aggregate([("churn", "sum")])
    surviving = pa.table(
        {"path": totals.column("path"), "surviving_lines": totals.column("churn_sum")}
    )
    owners = owned.filter(pc.greater(owned.column("churn"), 0))
    return (surviving, *ranked_leaders(owners, keys))


def reblamed(repo: pygit2.Repository, old_head: str | None, new_head: str) -> set[bytes] | None:
    """The files whose blame at `new_head` may differ from theirs at `old_head`: those that a
    commit on new_head's first-parent chain down to old_head changes (against its first parent,
    as git blame follows an unchanged file down the first parent); None (every file) when
    old_head is not on that chain (a force-push, a default branch moved to a branch that merged
    it, no earlier head). Files at new_head that have no rows yet are the caller's to add."""
    if old_head is None or not isinstance(repo.get(old_head), pygit2.Commit):
        return None  # none, or force-pushed away and gone from the repository
    if old_head == new_head:
        return set()
    walker = repo.walk(new_head, pygit2.enums.SortMode.NONE)
    walker.hide(old_head)
    newer = {str(commit.id) for commit in walker}
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


def update_provenance(
    repo_dir: Path,
    head: str,
    text_files: set[bytes],
    rows: pa.Table | None,
    old_head: str | None,
    workers: int = 2,
    report: Callable[[int, int], None] | None = None,
) -> tuple[pa.Table, int]:
    """The provenance rows at `head` of `text_files` (the text files at the head), from `rows`,
    git blame's at `old_head` (None: none): only the files the move from old_head changes, or
    that have no rows, are blamed (every file when old_head is not on head's first-parent
    chain). The rows, by path then commit, and how many files were blamed."""
    repo = pygit2.Repository(str(repo_dir))
    changed = None if rows is None else reblamed(repo, old_head, head)
    if rows is None or changed is None:
        kept = PROVENANCE_SCHEMA.empty_table()
    else:
        stale = pa.array(sorted(changed), pa.binary())
        present = pa.array(sorted(text_files), pa.binary())
        kept = rows.filter(
            pc.and_(
                pc.is_in(rows.column("path"), value_set=present),
                pc.invert(pc.is_in(rows.column("path"), value_set=stale)),
            )
        )
    todo = text_files - set(pc.unique(kept.column("path")).to_pylist())
    if not todo:
        return kept, 0
    write_commit_graph(repo_dir)
    blamed = blame_files(repo_dir, head, todo, workers, report)
    both = pa.concat_tables([kept, blamed]).sort_by([("path", "ascending"), ("sha", "ascending")])
    return both, len(todo)
