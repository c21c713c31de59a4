"""The snapshot at a tree (files, lines, bytes, languages), with git itself as the oracle."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pygit2
import pytest

from worker.engine.classes import PathClass, generated_at_head, path_class, update_classes
from worker.engine.languages import FileLanguage, classify
from worker.engine.snapshot import (
    SNAPSHOT_SCHEMA,
    LanguageShare,
    SnapshotSummary,
    snapshot_from_parquet,
    snapshot_to_parquet,
    summarize_snapshot,
    update_snapshot,
)

GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "LC_ALL": "C",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Ada Author",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Cy Committer",
    "GIT_COMMITTER_EMAIL": "cy@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}
GITLINK_MODE = b"160000"
SYMLINK_MODE = b"120000"
MINIFIED_JS = b"var a=1;function f(b){return b+a}" * 400 + b"\n"


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, input=stdin, capture_output=True, check=True
    ).stdout


@dataclass
class WorkRepo:
    """A non-bare repository the test changes through its work tree and git's index."""

    root: Path

    @classmethod
    def create(cls, root: Path) -> WorkRepo:
        root.mkdir()
        git(root, "-c", "init.defaultBranch=main", "init", "-q")
        return cls(root)

    def abs(self, path: str | bytes) -> bytes:
        return os.fsencode(self.root) + b"/" + os.fsencode(path)

    def write(self, path: str | bytes, data: bytes) -> None:
        full = self.abs(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(data)

    def remove(self, path: str | bytes) -> None:
        os.remove(self.abs(path))

    def symlink(self, path: str, target: str) -> None:
        os.symlink(target, self.abs(path))

    def add_gitlink(self, path: str) -> None:
        # An empty directory is what an uninitialised submodule looks like: `git add -A` keeps it.
        os.makedirs(self.abs(path), exist_ok=True)
        head = git(self.root, "rev-parse", "HEAD").decode().strip()
        git(self.root, "update-index", "--add", "--cacheinfo", f"160000,{head},{path}")

    def commit(self, message: str) -> str:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.root, "rev-parse", "HEAD").decode().strip()


@dataclass(frozen=True)
class GitBlobEntry:
    mode: bytes
    oid: str
    size: int
    path: bytes


def ls_tree_blobs(repo: WorkRepo, rev: str) -> list[GitBlobEntry]:
    """The blobs of `rev`'s tree as `git ls-tree` lists them, gitlinks left out."""
    entries = []
    for record in git(repo.root, "ls-tree", "-r", "-l", "-z", rev).split(b"\0")[:-1]:
        meta, path = record.split(b"\t", 1)
        mode, _type, oid, size = meta.split()
        if mode != GITLINK_MODE:
            entries.append(GitBlobEntry(mode, oid.decode(), int(size), path))
    return entries


def numstat_from_empty_tree(repo: WorkRepo, rev: str) -> dict[bytes, int | None]:
    """Lines git counts per path when adding `rev`'s whole tree; None for what git calls binary."""
    empty_tree = git(repo.root, "hash-object", "-t", "tree", "--stdin", stdin=b"").decode().strip()
    numstat = git(repo.root, "diff", "--numstat", "-z", "--no-renames", empty_tree, rev)
    lines: dict[bytes, int | None] = {}
    for record in numstat.split(b"\0")[:-1]:
        added, _deleted, path = record.split(b"\t", 2)
        lines[path] = None if added == b"-" else int(added)
    return lines


def count_text_lines(data: bytes) -> int:
    if b"\0" in data[:8000]:
        return 0
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def tree_of(repo: WorkRepo, rev: str) -> pygit2.Tree:
    return pygit2.Repository(str(repo.root)).revparse_single(rev).peel(pygit2.Tree)


def full_snapshot(repo: WorkRepo, rev: str) -> pa.Table:
    return update_snapshot(pygit2.Repository(str(repo.root)), None, None, tree_of(repo, rev))


def summary_of(repo: WorkRepo, rev: str | None, table: pa.Table) -> SnapshotSummary:
    """The summary of `table`, the snapshot at `rev`, with the path classes at `rev`."""
    git = pygit2.Repository(str(repo.root))
    head = None if rev is None else str(git.revparse_single(rev).id)
    classes, _ = update_classes(git, None, None, head, table.column("path").to_pylist(), table)
    return summarize_snapshot(table, classes)


# Every kind of change the snapshot must follow, one commit each, in order.
def initial(repo: WorkRepo) -> None:
    repo.write("src/app.py", b"def main():\n    return 1\n")
    repo.write("src/util.js", b"export const x = 1;\n")
    repo.write("README.md", b"# Project\n")
    repo.write("empty.txt", b"")
    repo.write("win.txt", b"a\r\nb\r\n")
    repo.write("notes.txt", b"one\ntwo")
    repo.write("mac.txt", b"a\rb\r")


def modify(repo: WorkRepo) -> None:
    repo.write("src/app.py", b"def main():\n    return 2\n\n\nmain()\n")
    repo.write("win.txt", b"a\r\nb\r\nc")


def delete(repo: WorkRepo) -> None:
    repo.remove("src/util.js")


def chmod(repo: WorkRepo) -> None:
    os.chmod(repo.abs("src/app.py"), 0o755)


def file_to_symlink(repo: WorkRepo) -> None:
    repo.remove("notes.txt")
    repo.symlink("notes.txt", "src/app.py")


def add_gitlinks(repo: WorkRepo) -> None:
    repo.add_gitlink("sub")
    repo.add_gitlink("lib/dep")


def add_binaries(repo: WorkRepo) -> None:
    repo.write("image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)))
    # A NUL past the first 8000 bytes: git still diffs this file as text.
    repo.write("late_nul.txt", b"x\n" * 5000 + b"\0tail\n")


def add_excluded_paths(repo: WorkRepo) -> None:
    repo.write("node_modules/pkg/index.js", b"module.exports = function () {};\n")
    repo.write("vendor/lib.rb", b"puts 'vendored'\n")
    repo.write("docs/guide.md", b"# Guide\n\nSome prose.\n")
    repo.write("static/app.min.js", MINIFIED_JS)


def add_non_utf8_paths(repo: WorkRepo) -> None:
    repo.write(b"caf\xe9.py", b"print('latin-1 name')\n")
    repo.write(b"dir\xff/x.txt", b"x\n")


def gitlink_to_file(repo: WorkRepo) -> None:
    git(repo.root, "rm", "-q", "--cached", "sub")
    os.rmdir(repo.abs("sub"))
    repo.write("sub", b"now a file\n")


def file_to_gitlink(repo: WorkRepo) -> None:
    repo.remove("mac.txt")
    repo.add_gitlink("mac.txt")


def symlink_to_file_and_crlf_to_lf(repo: WorkRepo) -> None:
    repo.remove("notes.txt")
    repo.write("notes.txt", b"one\ntwo\nthree\n")
    repo.write("win.txt", b"a\nb\nc\n")


def move(repo: WorkRepo) -> None:
    os.rename(repo.abs("src/app.py"), repo.abs("src/main.py"))


def delete_everything(repo: WorkRepo) -> None:
    git(repo.root, "rm", "-r", "-q", ".")


STEPS: list[Callable[[WorkRepo], None]] = [
    initial,
    modify,
    delete,
    chmod,
    file_to_symlink,
    add_gitlinks,
    add_binaries,
    add_excluded_paths,
    add_non_utf8_paths,
    gitlink_to_file,
    file_to_gitlink,
    symlink_to_file_and_crlf_to_lf,
    move,
    delete_everything,
]
STEP_NAMES = [step.__name__ for step in STEPS]
EXCLUDED_PATHS = [
    b"README.md",
    b"node_modules/pkg/index.js",
    b"vendor/lib.rb",
    b"docs/guide.md",
    b"static/app.min.js",
]


@dataclass
class History:
    repo: WorkRepo
    commits: list[str]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    repo = WorkRepo.create(tmp_path_factory.mktemp("history") / "repo")
    commits = []
    for step in STEPS:
        step(repo)
        commits.append(repo.commit(step.__name__))
    return History(repo, commits)


@pytest.mark.parametrize("step", range(len(STEPS)), ids=STEP_NAMES)
def test_snapshot_matches_git(history: History, step: int) -> None:
    repo, rev = history.repo, history.commits[step]
    entries = ls_tree_blobs(repo, rev)
    numstat = numstat_from_empty_tree(repo, rev)
    table = full_snapshot(repo, rev)
    summary = summary_of(repo, rev, table)

    assert table.schema == SNAPSHOT_SCHEMA
    assert table.column("path").to_pylist() == sorted(entry.path for entry in entries)
    assert summary.total_files == len(entries)
    assert summary.total_bytes == sum(entry.size for entry in entries)
    expected_lines = sum(
        count_text_lines(git(repo.root, "cat-file", "blob", entry.oid)) for entry in entries
    )
    assert summary.total_lines == expected_lines
    rows = {row["path"]: row for row in table.to_pylist()}
    for entry in entries:
        row = rows[entry.path]
        assert row["size"] == entry.size
        assert row["binary"] == (numstat[entry.path] is None)
        assert row["lines"] == (numstat[entry.path] or 0)
        if entry.mode == SYMLINK_MODE:
            assert row["language"] is None
    for path in EXCLUDED_PATHS:
        if path in rows:
            assert rows[path]["language"] is not None
            assert path_class(path, rows[path]["generated"]) is not PathClass.SOURCE


def test_history_covers_every_kind_of_entry(history: History) -> None:
    """Guards the oracle test above against a history that lost its interesting cases."""
    seen_modes = set()
    seen_paths = set()
    for rev in history.commits:
        listing = git(history.repo.root, "ls-tree", "-r", "-z", rev).split(b"\0")[:-1]
        seen_modes |= {record.split(b" ", 1)[0] for record in listing}
        seen_paths |= {entry.path for entry in ls_tree_blobs(history.repo, rev)}
    assert {b"100644", b"100755", SYMLINK_MODE, GITLINK_MODE} <= seen_modes
    assert {b"caf\xe9.py", b"dir\xff/x.txt", *EXCLUDED_PATHS} <= seen_paths
    assert ls_tree_blobs(history.repo, history.commits[-1]) == []


@pytest.mark.parametrize(
    ("old", "new"),
    list(itertools.product(range(len(STEPS)), repeat=2)),
    ids=[f"{a}->{b}" for a, b in itertools.product(STEP_NAMES, repeat=2)],
)
def test_incremental_equals_full_rebuild(history: History, old: int, new: int) -> None:
    repo = pygit2.Repository(str(history.repo.root))
    old_rev, new_rev = history.commits[old], history.commits[new]
    old_table = full_snapshot(history.repo, old_rev)

    updated = update_snapshot(
        repo, old_table, tree_of(history.repo, old_rev), tree_of(history.repo, new_rev)
    )

    assert updated.equals(full_snapshot(history.repo, new_rev))


def test_update_reads_only_changed_blobs(tmp_path: Path) -> None:
    repo = WorkRepo.create(tmp_path / "repo")
    repo.write("big.txt", b"unchanged\n" * 1000)
    repo.write("a.py", b"x = 1\n")
    first = repo.commit("first")
    before = full_snapshot(repo, first)
    new_content = b"x = 2\ny = 3\n"
    repo.write("a.py", new_content)
    second = repo.commit("second")
    unchanged_oid = git(repo.root, "rev-parse", f"{first}:big.txt").decode().strip()
    # With the unchanged blob gone from the object store, only an update that never reads it works.
    os.remove(repo.root / ".git" / "objects" / unchanged_oid[:2] / unchanged_oid[2:])

    after = update_snapshot(
        pygit2.Repository(str(repo.root)), before, tree_of(repo, first), tree_of(repo, second)
    )

    assert unchanged_oid not in pygit2.Repository(str(repo.root))
    rows_before = {row["path"]: row for row in before.to_pylist()}
    rows_after = {row["path"]: row for row in after.to_pylist()}
    assert rows_after[b"big.txt"] == rows_before[b"big.txt"]
    assert (rows_after[b"a.py"]["size"], rows_after[b"a.py"]["lines"]) == (len(new_content), 2)


def test_no_tree_gives_an_empty_snapshot(history: History) -> None:
    repo = pygit2.Repository(str(history.repo.root))
    old_rev = history.commits[0]
    table = update_snapshot(
        repo, full_snapshot(history.repo, old_rev), tree_of(history.repo, old_rev), None
    )
    assert table.num_rows == 0
    assert table.schema == SNAPSHOT_SCHEMA
    summary = summary_of(history.repo, None, table)
    assert (summary.total_files, summary.total_lines, summary.total_bytes) == (0, 0, 0)
    assert (summary.languages, summary.primary_language) == ([], None)


def test_missing_table_rebuilds_from_the_empty_tree(history: History) -> None:
    repo = pygit2.Repository(str(history.repo.root))
    old_rev = history.commits[0]
    new_rev = history.commits[STEP_NAMES.index("add_non_utf8_paths")]
    table = update_snapshot(
        repo, None, tree_of(history.repo, old_rev), tree_of(history.repo, new_rev)
    )
    assert table.equals(full_snapshot(history.repo, new_rev))


@pytest.mark.parametrize("step", [STEP_NAMES.index("add_non_utf8_paths"), len(STEPS) - 1])
def test_parquet_round_trip(history: History, step: int) -> None:
    table = full_snapshot(history.repo, history.commits[step])
    restored = snapshot_from_parquet(snapshot_to_parquet(table))
    assert restored.schema == SNAPSHOT_SCHEMA
    assert restored.equals(table)


PY_MAIN = b"import sys\n\n\ndef main() -> int:\n    return len(sys.argv)\n"
PY_HELPER = b"def helper(x):\n    return x * 2\n"
JS_APP = b"const express = require('express');\nconst app = express();\napp.listen(3000);\n"
JS_SMALL = b"export default 1;\n"
# Excluded files big enough to change the answer if they were counted.
EXCLUDED_FILES = {
    "node_modules/left-pad/index.js": b"module.exports = function leftPad() {};\n" * 50,
    "vendor/jquery.js": b"(function ($) { $.fn.x = 1; })(jQuery);\n" * 50,
    "dist/bundle.min.js": MINIFIED_JS,
    "docs/example.py": b"print('documentation example')\n" * 50,
}


@dataclass(frozen=True)
class LanguageCase:
    counted: dict[str, tuple[str, bytes]]  # path -> (language, content)
    primary: str | None


LANGUAGE_CASES = {
    "python-wins": LanguageCase(
        {
            "app/main.py": ("Python", PY_MAIN),
            "app/helper.py": ("Python", PY_HELPER),
            "web/small.js": ("JavaScript", JS_SMALL),
        },
        primary="Python",
    ),
    "javascript-wins": LanguageCase(
        {"app/helper.py": ("Python", PY_HELPER), "web/app.js": ("JavaScript", JS_APP)},
        primary="JavaScript",
    ),
    "tie-goes-to-the-name": LanguageCase(
        # Python comes first by path, JavaScript by name.
        {"a.py": ("Python", b"x = 1\n"), "b.js": ("JavaScript", b"x = 1\n")},
        primary="JavaScript",
    ),
    "markdown-and-json-only": LanguageCase(
        {"notes.md": ("Markdown", b"# Notes\n\nText.\n"), "data.json": ("JSON", b'{"a": 1}\n')},
        primary=None,
    ),
}
LINGUIST_TYPES = {
    "Python": "programming",
    "JavaScript": "programming",
    "Markdown": "prose",
    "JSON": "data",
}


@pytest.mark.parametrize("case", LANGUAGE_CASES.values(), ids=LANGUAGE_CASES.keys())
def test_languages(tmp_path: Path, case: LanguageCase) -> None:
    repo = WorkRepo.create(tmp_path / "repo")
    for path, (_language, content) in case.counted.items():
        repo.write(path, content)
    for path, content in EXCLUDED_FILES.items():
        repo.write(path, content)
    repo.write("README.md", b"# Readme\n" * 100)
    repo.write("logo.png", b"\x89PNG\r\n\x1a\n\0\0" * 100)
    rev = repo.commit("languages")
    summary = summary_of(repo, rev, full_snapshot(repo, rev))

    totals: dict[str, list[int]] = {}
    for language, content in case.counted.values():
        share = totals.setdefault(language, [0, 0])
        share[0] += len(content)
        share[1] += 1
    expected = sorted(
        (
            LanguageShare(language, LINGUIST_TYPES[language], size, files)
            for language, (size, files) in totals.items()
        ),
        key=lambda share: (-share.bytes, share.language),
    )
    assert summary.languages == expected
    assert summary.primary_language == case.primary


@pytest.mark.parametrize(
    ("path", "data", "expected", "counted"),
    [
        ("a.py", b"print(1)\n", FileLanguage("Python", "programming"), True),
        ("src/app.min.js", MINIFIED_JS, FileLanguage("JavaScript", "programming"), False),
        # Minified content is generated whatever the name says.
        ("src/bundle.js", MINIFIED_JS, FileLanguage("JavaScript", "programming"), False),
        (
            "node_modules/x/index.js",
            b"module.exports = 1;\n",
            FileLanguage("JavaScript", "programming"),
            False,
        ),
        ("docs/guide.md", b"# Guide\n", FileLanguage("Markdown", "prose"), False),
        ("README.md", b"# Hi\n", FileLanguage("Markdown", "prose"), False),
        ("notes.md", b"# Hi\n", FileLanguage("Markdown", "prose"), True),
        ("Makefile", b"all:\n\techo hi\n", FileLanguage("Makefile", "programming"), True),
        ("data.json", b'{"a": 1}\n', FileLanguage("JSON", "data"), True),
        (
            "bin/run",
            b"#!/usr/bin/env python3\nprint(1)\n",
            FileLanguage("Python", "programming"),
            True,
        ),
        ("caf\ufffd.py", b"x = 1\n", FileLanguage("Python", "programming"), True),
        ("empty.py", b"", FileLanguage(None, None), False),
        ("mystery", b"hello\n", FileLanguage(None, None), False),
    ],
)
def test_classify(path: str, data: bytes, expected: FileLanguage, counted: bool) -> None:
    """The language, and whether it counts: only a file of class source does."""
    assert classify(path, data) == expected
    source = path_class(path.encode(), generated_at_head(path.encode(), data, True))
    assert (expected.language is not None and source is PathClass.SOURCE) == counted
