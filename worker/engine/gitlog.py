"""Phase 3 through git's own diff machinery: the same rows as `extract.extract_chunk`, read from
`git log -p -U0` over a list of commits.

git computes a commit's diff several times faster than libgit2 through pygit2, and the text it
writes is parsed here a hunk at a time with a few byte searches, never a line at a time. It is
the backfill's extraction: a pool of processes each runs one `git log` over its share of the
commits, so both cores diff and parse.

What git is asked for is what `git log --numstat --diff-merges=first-parent --no-renames` counts:
each commit against its first parent (a root against the empty tree), no rename or copy
detection, binary files as git decides (no line counts). Paths are unquoted from git's C-style
quoting back to their raw bytes. git runs with no system or user configuration and with every
option that changes this output given, so what a machine's git config says cannot change it.

Each commit's Co-authored-by trailers are git's too, read with its header: git's trailer rules
are subtle, and libgit2's differ. A push's commits, which libgit2 diffs, get theirs from
`read_co_authored_by`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Sequence

import pyarrow as pa

from worker.engine.errors import IncompleteRepositoryError
from worker.engine.extract import ChangeKind, Rows, identity_text

# Starts each commit's header line; no line of a diff can start with it (git quotes control
# characters in paths; patch lines start with "+", "-" or "\").
_MARK = b"\x01"
# How git names an object it cannot find.
_MISSING = re.compile(r"(?:bad object|unable to read|could not read|missing \w+) ([0-9a-f]{40,64})")
# The values of a commit's Co-authored-by trailers by git's rules (its message's last paragraph,
# the key in any case, folded values unfolded). Unfolded, a value holds no newline, and git stops
# reading a message at a NUL: NUL separates the values, which stay on their commit's header line
# whatever bytes they hold (a mark included).
_CO_AUTHORED_BY = "%(trailers:key=Co-authored-by,valueonly,unfold,separator=%x00)"
_FORMAT = f"%x01%H%x00%P%x00%an%x00%ae%x00%ad%x00%cn%x00%ce%x00%cd%x00{_CO_AUTHORED_BY}"
_DIFF = b"diff --git "
_SECTION = b"\n" + _DIFF

# Memory: git maps pack windows of up to 1 GiB and keeps 96 MiB of delta bases by default, so a
# `git log -p` over 1,000 commits of git/git peaks near 175 MiB of RSS, mostly mapped pack pages.
# Small windows under a 64 MiB cap and a 32 MiB delta-base cache bring it to about 70 MiB for the
# same CPU time (each chunk's process starts with a cold cache anyway).
_MEMORY = [
    "-c",
    "core.packedGitWindowSize=8m",
    "-c",
    "core.packedGitLimit=64m",
    "-c",
    "core.deltaBaseCacheLimit=32m",
]

_GIT_ARGS = [
    *_MEMORY,
    "-c",
    "core.quotePath=true",
    "-c",
    "diff.noprefix=false",
    "-c",
    "log.showRoot=true",
    "log",
    "--no-walk=unsorted",
    "--stdin",
    "-p",
    "-U1",
    "--diff-merges=first-parent",
    "--no-renames",
    "--no-ext-diff",
    "--no-textconv",
    "--no-color",
    "--no-relative",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--encoding=none",
    "--date=raw",
    f"--format={_FORMAT}",
]

# What extract.extract_chunk asks git: the trailers alone, no diff.
_TRAILER_ARGS = [
    *_MEMORY,
    "log",
    "--no-walk=unsorted",
    "--stdin",
    "--no-color",
    "--encoding=none",
    f"--format=%H%x00{_CO_AUTHORED_BY}",
]

_ESCAPES = {
    ord("a"): 7,
    ord("b"): 8,
    ord("t"): 9,
    ord("n"): 10,
    ord("v"): 11,
    ord("f"): 12,
    ord("r"): 13,
    ord('"'): ord('"'),
    ord("\\"): ord("\\"),
}
# A run of added (removed) lines; git's marker after a line that has no terminator.
# (Each starts with the newline before it: a literal prefix the regex engine searches for fast;
# a run of k lines then measures the bytes of its lines, terminators included, plus k.)
_ADDED_RUN = re.compile(rb"\n\+[^\n]*(?:\n\+[^\n]*)*")
_REMOVED_RUN = re.compile(rb"\n-[^\n]*(?:\n-[^\n]*)*")
_MARKER = b"\n\\ No newline at end of file\n"


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ATTR_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


def unquote(text: bytes) -> tuple[bytes, int]:
    """The bytes of the C-quoted string starting at text[0] == '"', and the index after its
    closing quote."""
    out = bytearray()
    i = 1
    while True:
        c = text[i]
        if c == 0x22:  # "
            return bytes(out), i + 1
        if c == 0x5C:  # \
            e = text[i + 1]
            if 0x30 <= e <= 0x37:
                out.append(int(text[i + 1 : i + 4], 8))
                i += 4
                continue
            out.append(_ESCAPES[e])
            i += 2
            continue
        out.append(c)
        i += 1


def _path(line: bytes) -> bytes:
    """The path of a `diff --git a/P b/P` line (its part after "diff --git "): both sides name
    the same path, renames being off."""
    if line[:1] == b'"':
        name, _ = unquote(line)
        return name[2:]
    # "a/P b/P": P takes (len - 5) / 2 bytes.
    return line[2 : 2 + (len(line) - 5) // 2]


def _hunks(text: bytes, start: int) -> tuple[int, int, int, int]:
    """Lines and bytes added and removed by the hunks of `text` from `start` (its first "@@"),
    terminators included.

    Every line from there that starts with "+" (or "-") is an added (removed) line: they are
    counted, and their runs measured, by C loops over the whole text; the lines the no-newline
    marker follows (rare) lose the terminator they do not have."""
    added = text.count(b"\n+", start - 1)
    removed = text.count(b"\n-", start - 1)
    add_bytes = sum(map(len, _ADDED_RUN.findall(text, start - 1))) - added if added else 0
    del_bytes = sum(map(len, _REMOVED_RUN.findall(text, start - 1))) - removed if removed else 0
    marker = text.find(_MARKER, start - 1)
    while marker >= 0:
        line = text.rfind(b"\n", 0, marker) + 1
        if text[line] == 0x2B:  # "+"
            add_bytes -= 1
        elif text[line] == 0x2D:  # "-"
            del_bytes -= 1
        marker = text.find(_MARKER, marker + 1)
    return added, removed, add_bytes, del_bytes


def _offset(raw: bytes) -> int:
    """Minutes east of UTC of git's "+hhmm"."""
    sign = -1 if raw[:1] == b"-" else 1
    return sign * (int(raw[1:3]) * 60 + int(raw[3:5]))


class _Columns(Rows):
    """Rows parsed from `git log -p` output, a commit record at a time."""

    def add_record(self, record: bytes) -> None:
        newline = record.find(b"\n")
        header = record if newline < 0 else record[:newline]
        sha_b, parents_b, an, ae, ad, cn, ce, cd, *co_authored_by = header.split(b"\0")
        sha = sha_b.decode()
        files = adds = dels = add_bytes = del_bytes = 0
        first = -1 if newline < 0 else record.find(_DIFF, newline)
        if first >= 0:
            body = record[first + len(_DIFF) :]
            if not body.endswith(b"\n"):
                body += b"\n"
            for section in body.split(_SECTION):
                if not section.endswith(b"\n"):
                    section += b"\n"
                line_end = section.index(b"\n")
                path = _path(section[:line_end])
                kind = ChangeKind.MODIFIED
                binary = False
                hunks = section.find(b"\n@@", line_end - 1)
                head = section[line_end + 1 : len(section) if hunks < 0 else hunks + 1]
                if head.startswith(b"new file mode"):
                    kind = ChangeKind.ADDED
                elif head.startswith(b"deleted file mode"):
                    kind = ChangeKind.DELETED
                if hunks >= 0:
                    a, d, ab, db = _hunks(section, hunks + 1)
                else:
                    a = d = ab = db = 0
                    binary = b"\nBinary files " in b"\n" + head
                self.add_file(sha, path, kind, binary, (a, d, ab, db))
                files += 1
                adds += a
                dels += d
                add_bytes += ab
                del_bytes += db
        parents = parents_b.decode().split() if parents_b else []
        a_time, a_offset = ad.split(b" ")
        c_time, c_offset = cd.split(b" ")
        self.add_commit(
            sha,
            parents,
            (identity_text(an), identity_text(ae), int(a_time), _offset(a_offset)),
            (identity_text(cn), identity_text(ce), int(c_time), _offset(c_offset)),
            (files, adds, dels, add_bytes, del_bytes),
            co_authored_by,
        )


def extract_with_git(
    repo_path: str, shas: Sequence[str], batch: int = 1000
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """(commits, files) tables for `shas`, in their order, `batch` commits at a time, from one
    `git log` over them. IncompleteRepositoryError if git cannot read an object they need."""
    if not shas:
        return  # git log given no revision would show HEAD's history
    proc = subprocess.Popen(
        ["git", "-C", repo_path, *_GIT_ARGS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=git_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        # git reads all of its revisions before it writes anything: no deadlock on the pipes.
        proc.stdin.write("".join(f"{sha}\n" for sha in shas).encode())
        proc.stdin.close()
        columns, count, pending = _Columns(), 0, bytearray()
        while chunk := proc.stdout.read(1 << 20):
            # Only whole commits are parsed: up to the last mark, which may straddle the chunks.
            searched = max(len(pending) - 1, 0)
            pending += chunk
            cut = pending.rfind(b"\n" + _MARK, searched)
            if cut < 0:
                continue
            records = bytes(pending[:cut]).split(b"\n" + _MARK)
            del pending[: cut + 1]
            for record in records:
                if record:
                    columns.add_record(record.removeprefix(_MARK))
                    count += 1
                    if count % batch == 0:
                        yield columns.tables()
                        columns = _Columns()
        if pending.strip():
            columns.add_record(bytes(pending).removeprefix(_MARK).rstrip(b"\n"))
            count += 1
        errors = proc.stderr.read()
        if proc.wait() != 0:
            raise _failure(errors)
        if count != len(shas):
            raise ValueError(f"git log wrote {count} commits of the {len(shas)} asked for")
        if columns.commits["sha"]:
            yield columns.tables()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def read_co_authored_by(git_dir: str, shas: Sequence[str]) -> list[list[bytes]]:
    """The values of the Co-authored-by trailers of each of `shas` (distinct), in their order,
    from one `git log` that reads their messages and nothing else; IncompleteRepositoryError if
    a commit is missing."""
    if not shas:
        return []  # git log given no revision would show HEAD's history
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", *_TRAILER_ARGS],
        input="".join(f"{sha}\n" for sha in shas).encode(),
        capture_output=True,
        env=git_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise _failure(proc.stderr)
    rows = [line.split(b"\0") for line in proc.stdout.split(b"\n")[:-1]]
    if [row[0].decode() for row in rows] != list(shas):
        raise ValueError(f"git log did not write the {len(shas)} commits asked for in order")
    return [values for _, *values in rows]


def missing_object(errors: bytes) -> IncompleteRepositoryError | None:
    """IncompleteRepositoryError if git's `errors` say it could not read an object."""
    match = _MISSING.search(errors.decode("utf-8", "replace"))
    if match is None:
        return None
    return IncompleteRepositoryError(
        f"object {match.group(1)} is missing: the repository is incomplete"
    )


def _failure(errors: bytes) -> Exception:
    text = errors.decode("utf-8", "replace").strip()
    missing = missing_object(errors)
    if missing is not None:
        return missing
    return RuntimeError(f"git log failed: {text.splitlines()[-1] if text else 'no message'}")
