"""Phase 3: per-commit and per-file facts of new commits, as Arrow tables.

Each commit is diffed against its first parent (a root commit against the empty tree), with no
rename or copy detection, as `git log --numstat --diff-merges=first-parent --no-renames` does.
Big batches run in a process pool, each process with its own Repository, so both cores work.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from enum import StrEnum

import pyarrow as pa
import pygit2
from pygit2.enums import DeltaStatus

from worker.engine.errors import missing_object

# Below this many commits a process pool costs more to start than it saves.
POOL_THRESHOLD = 400
CHUNK_SIZE = 200
# Commits per `git log` run of the git extraction: enough that starting git is a small cost.
GIT_CHUNK_SIZE = 1000

# Every document's dates are Python datetimes, which span the years 1 to 9999; git accepts
# dates beyond (`fsck --strict` too). Such a date is stored at the nearest end of that span, and
# the aggregates count the commits so clamped.
EARLIEST_TIME = int(datetime(1, 1, 1, tzinfo=UTC).timestamp())
LATEST_TIME = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


# Names and emails longer than this are shortened to it, the last character being SHORTENED.
MAX_IDENTITY_CHARS = 256
SHORTENED = "\u2026"


def clamp_time(seconds: int) -> int:
    """A git timestamp within the span every document can show."""
    return min(max(seconds, EARLIEST_TIME), LATEST_TIME)


COMMITS_SCHEMA = pa.schema(
    [
        ("sha", pa.string()),
        ("parents", pa.list_(pa.string())),
        ("is_merge", pa.bool_()),
        ("author_name", pa.string()),
        ("author_email", pa.string()),
        ("author_time", pa.int64()),  # seconds since the epoch, UTC
        ("author_offset", pa.int16()),  # minutes east of UTC
        ("committer_name", pa.string()),
        ("committer_email", pa.string()),
        ("committer_time", pa.int64()),
        ("committer_offset", pa.int16()),
        ("files_changed", pa.int32()),
        ("additions_lines", pa.int64()),
        ("deletions_lines", pa.int64()),
        ("addition_bytes", pa.int64()),
        ("deletion_bytes", pa.int64()),
        # The people of its Co-authored-by trailers, in their order, as written: neither mapped
        # nor deduplicated.
        ("co_authors", pa.list_(pa.struct([("name", pa.string()), ("email", pa.string())]))),
    ]
)

FILES_SCHEMA = pa.schema(
    [
        ("sha", pa.string()),
        ("path", pa.binary()),  # raw bytes: paths need not be UTF-8
        ("change", pa.string()),
        ("binary", pa.bool_()),
        ("additions_lines", pa.int64()),
        ("deletions_lines", pa.int64()),
        ("addition_bytes", pa.int64()),
        ("deletion_bytes", pa.int64()),
    ]
)


class ChangeKind(StrEnum):
    ADDED = "added"
    DELETED = "deleted"
    MODIFIED = "modified"
    TYPE_CHANGED = "type_changed"


_KINDS = {
    DeltaStatus.ADDED: ChangeKind.ADDED,
    DeltaStatus.DELETED: ChangeKind.DELETED,
    DeltaStatus.MODIFIED: ChangeKind.MODIFIED,
    DeltaStatus.TYPECHANGE: ChangeKind.TYPE_CHANGED,
}

# What the patch format puts after a last line that had no terminator: its own "\n", then a
# marker line.
_NO_EOL = b"\n\\ No newline at end of file\n"


def line_bytes(patch_text: bytes, added_lines: int, removed_lines: int) -> tuple[int, int]:
    """Bytes of the added and removed lines of one file's zero-context patch, terminators
    included, given how many lines it adds and removes.

    With no context, each hunk is its header, a block of "-" lines, then a block of "+" lines
    (each block perhaps closed by the no-newline marker). Content holds no "\n", so a block's
    boundaries are found with a few searches per hunk instead of a pass over every line; a
    block's size less one marker byte per line (and the marker's own bytes) is what its lines
    weigh.
    """
    start = patch_text.find(b"\n@@")
    if start < 0:
        return 0, 0
    size = len(patch_text)
    added = removed = 0
    header = start + 1
    while header < size:
        body = patch_text.find(b"\n", header) + 1
        following = patch_text.find(b"\n@@", body - 1)
        end = size if following < 0 else following + 1
        split = patch_text.find(b"\n+", body - 1, end)
        split = end if split < 0 else split + 1
        removed += split - body
        added += end - split
        if patch_text.find(_NO_EOL, body - 1, split) >= 0:
            removed -= len(_NO_EOL)
        if patch_text.find(_NO_EOL, split - 1, end) >= 0:
            added -= len(_NO_EOL)
        header = end
    return added - added_lines, removed - removed_lines


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def identity_text(raw: bytes, encoding: str | None = None) -> str:
    """An author's or committer's name or email as text, shortened past MAX_IDENTITY_CHARS (git
    takes any length: a 5 MB name would be copied into every document that names the person).

    `encoding` is the commit's `encoding` header: as `git log` does, the bytes are read in it
    when they can be, else as UTF-8."""
    text = None
    if encoding and encoding.lower().replace("-", "").replace("_", "") != "utf8":
        # When they cannot, git shows the bytes as they are.
        with contextlib.suppress(LookupError, UnicodeDecodeError):
            text = raw.decode(encoding)
    if text is None:
        # Enough bytes for one character more than the cap, whatever their width.
        text = _text(raw[: (MAX_IDENTITY_CHARS + 1) * 4])
    if len(text) <= MAX_IDENTITY_CHARS:
        return text
    return text[: MAX_IDENTITY_CHARS - 1] + SHORTENED


def co_authors(values: Iterable[bytes]) -> list[dict[str, str]]:
    r"""The people named by a commit's Co-authored-by trailer values, in their order: each value
    read as `Name <email>`; a value with no email (or an empty one) names nobody.

    This is `^\s*(.*?)\s*<([^<>]*)>\s*$` (ASCII blanks, as git's), name and email stripped,
    found by two searches: the regex backtracks quadratically over a long run of blanks, and a
    value is as long as its commit's message. (Values as git unfolds them hold no newline.)"""
    people = []
    for value in values:
        value = value.strip()
        start = value.rfind(b"<")
        if start < 0 or not value.endswith(b">"):
            continue
        email = value[start + 1 : -1].strip()
        if email and b">" not in email:
            name = value[:start].strip()
            people.append({"name": identity_text(name), "email": identity_text(email)})
    return people


class Rows:
    """Column buffers for one batch of commits, filled by either extractor (libgit2 here, git in
    gitlog.py) so that both write the same rows."""

    def __init__(self) -> None:
        self.commits: dict[str, list] = {name: [] for name in COMMITS_SCHEMA.names}
        self.files: dict[str, list] = {name: [] for name in FILES_SCHEMA.names}

    def tables(self) -> tuple[pa.Table, pa.Table]:
        return (
            pa.Table.from_pydict(self.commits, schema=COMMITS_SCHEMA),
            pa.Table.from_pydict(self.files, schema=FILES_SCHEMA),
        )

    def add_file(
        self, sha: str, path: bytes, kind: ChangeKind, binary: bool, counts: tuple[int, ...]
    ) -> None:
        """One changed file; `counts` are (additions, deletions, addition bytes, deletion
        bytes)."""
        f = self.files
        f["sha"].append(sha)
        f["path"].append(path)
        f["change"].append(kind.value)
        f["binary"].append(binary)
        a, d, ab, db = counts
        f["additions_lines"].append(a)
        f["deletions_lines"].append(d)
        f["addition_bytes"].append(ab)
        f["deletion_bytes"].append(db)

    def add_commit(
        self,
        sha: str,
        parents: list[str],
        author: tuple[str, str, int, int],
        committer: tuple[str, str, int, int],
        totals: tuple[int, int, int, int, int],
        co_authored_by: Iterable[bytes],
    ) -> None:
        """One commit: its people as (name, email, time, offset in minutes), the time not yet
        clamped; `totals` are (files, additions, deletions, addition bytes, deletion bytes);
        `co_authored_by` the values of its Co-authored-by trailers as git reads them (unfolded,
        in UTF-8 when the commit names another encoding)."""
        c = self.commits
        c["sha"].append(sha)
        c["parents"].append(parents)
        c["is_merge"].append(len(parents) > 1)
        for role, (name, email, time, offset) in (("author", author), ("committer", committer)):
            c[f"{role}_name"].append(name)
            c[f"{role}_email"].append(email)
            c[f"{role}_time"].append(clamp_time(time))
            c[f"{role}_offset"].append(offset)
        files, adds, dels, add_bytes, del_bytes = totals
        c["files_changed"].append(files)
        c["additions_lines"].append(adds)
        c["deletions_lines"].append(dels)
        c["addition_bytes"].append(add_bytes)
        c["deletion_bytes"].append(del_bytes)
        c["co_authors"].append(co_authors(co_authored_by))


def _extract_into(
    repo: pygit2.Repository, sha: str, batch: Rows, co_authored_by: list[bytes] | None
) -> None:
    commit = repo[sha]
    assert isinstance(commit, pygit2.Commit)
    parents = commit.parent_ids
    if parents:
        diff = repo.diff(repo[parents[0]].peel(pygit2.Tree), commit.tree, context_lines=0)
    else:
        diff = commit.tree.diff_to_tree(context_lines=0, swap=True)
    files = adds = dels = add_bytes = del_bytes = 0
    for patch in diff:
        if patch is None:
            continue
        delta = patch.delta
        kind = _KINDS.get(delta.status)
        if kind is None:
            continue
        binary = delta.is_binary
        if binary:
            a = d = ab = db = 0
        else:
            _, a, d = patch.line_stats
            ab, db = line_bytes(patch.data, a, d) if (a or d) else (0, 0)
        entry = delta.old_file if kind is ChangeKind.DELETED else delta.new_file
        batch.add_file(sha, entry.raw_path, kind, binary, (a, d, ab, db))
        files += 1
        adds += a
        dels += d
        add_bytes += ab
        del_bytes += db
    author, committer = commit.author, commit.committer
    encoding = commit.message_encoding
    batch.add_commit(
        sha,
        [str(p) for p in parents],
        (
            identity_text(author.raw_name, encoding),
            identity_text(author.raw_email, encoding),
            author.time,
            author.offset,
        ),
        (
            identity_text(committer.raw_name, encoding),
            identity_text(committer.raw_email, encoding),
            committer.time,
            committer.offset,
        ),
        (files, adds, dels, add_bytes, del_bytes),
        _libgit2_co_authored_by(commit) if co_authored_by is None else co_authored_by,
    )


def _libgit2_co_authored_by(commit: pygit2.Commit) -> list[bytes]:
    """The Co-authored-by values as libgit2 reads them, when git is not installed. Not git's:
    libgit2 gives a dict, keeping one value of the trailers whose keys are spelled alike, and
    its rules for what is a trailer differ in corner cases (a "---" line, folded values)."""
    trailers = commit.message_trailers
    return [value.encode() for key, value in trailers.items() if key.lower() == "co-authored-by"]


def extract_chunk(repo: pygit2.Repository, shas: Sequence[str]) -> tuple[pa.Table, pa.Table]:
    """(commits, files) tables for these commits; IncompleteRepositoryError if an object they
    need is missing.

    The diffs are libgit2's; the trailers are git's own (libgit2 knows other rules and keeps
    one value per key), read by one git process for the whole chunk when git is installed."""
    trailers: Sequence[list[bytes] | None] = [None] * len(shas)
    if git_available():
        from worker.engine.gitlog import read_co_authored_by  # gitlog.py builds on this module

        trailers = read_co_authored_by(repo.path, shas)
    batch = Rows()
    for sha, co_authored_by in zip(shas, trailers, strict=True):
        try:
            _extract_into(repo, sha, batch, co_authored_by)
        except KeyError as exc:
            if (missing := missing_object(exc)) is not None:
                raise missing from None
            raise
    return batch.tables()


def tune_libgit2() -> None:
    """Read objects the way git does, in bounded memory.

    The mirror's packs were verified when they were fetched; re-hashing every object on each read
    roughly doubles the cost of a tree diff. A small object cache (with libgit2's default
    per-type limits) measured as fast as large ones on git/git while keeping each extraction
    process near 225 MiB.
    """
    pygit2.settings.enable_strict_hash_verification(False)
    pygit2.settings.cache_max_size(32 * 1024 * 1024)


_worker_repo: pygit2.Repository | None = None
_worker_path: str | None = None


def _init_worker(path: str, with_git: bool) -> None:
    global _worker_repo, _worker_path
    if with_git:
        _worker_path = path
    else:
        tune_libgit2()
        _worker_repo = pygit2.Repository(path)


def _extract_in_worker(shas: Sequence[str]) -> tuple[pa.Table, pa.Table]:
    if _worker_path is not None:
        return _with_git(_worker_path, shas)
    assert _worker_repo is not None
    return extract_chunk(_worker_repo, shas)


def _with_git(path: str, shas: Sequence[str]) -> tuple[pa.Table, pa.Table]:
    from worker.engine.gitlog import extract_with_git

    (tables,) = extract_with_git(path, shas, batch=len(shas))
    return tables


def git_available() -> bool:
    return shutil.which("git") is not None


def extract_new_commits(
    repo_path: str,
    shas: Sequence[str],
    on_progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Yield (commits, files) tables chunk by chunk, so the caller can stream them to Parquet.

    A few commits (a push) are read in this process through libgit2. Many (a backfill) go through
    git's own diff machinery (worker/engine/gitlog.py), several times faster per commit, in a
    pool of processes so that every core works; libgit2 serves when git is not installed. Both
    write the same rows."""
    with_git = len(shas) >= POOL_THRESHOLD and git_available()
    size = GIT_CHUNK_SIZE if with_git else CHUNK_SIZE
    chunks = [shas[i : i + size] for i in range(0, len(shas), size)]
    workers = workers or os.cpu_count() or 1
    if len(shas) < POOL_THRESHOLD or workers < 2:
        if with_git:
            for chunk in chunks:
                yield _with_git(repo_path, chunk)
                if on_progress:
                    on_progress(len(chunk))
            return
        tune_libgit2()
        repo = pygit2.Repository(repo_path)
        for chunk in chunks:
            yield extract_chunk(repo, chunk)
            if on_progress:
                on_progress(len(chunk))
        return
    # spawn, not fork: the parent may hold threads (event loop executors, storage clients).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(repo_path, with_git),
    ) as pool:
        for chunk, tables in zip(chunks, pool.map(_extract_in_worker, chunks), strict=True):
            yield tables
            if on_progress:
                on_progress(len(chunk))
