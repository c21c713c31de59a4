"""The backfill's extraction through git (worker/engine/gitlog.py) writes exactly the rows of the
libgit2 extraction, which tests/test_engine_exact.py checks against git's own numstat and patch
text, on the edge-case repository and on a history built to break a parser of git's output."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pygit2
import pytest

from tests.support.gitrepos import GitRepo
from worker.engine import extract
from worker.engine.errors import IncompleteRepositoryError
from worker.engine.extract import extract_chunk, extract_new_commits, tune_libgit2
from worker.engine.gitlog import extract_with_git


def all_commits(repo: GitRepo) -> list[str]:
    return repo.git("rev-list", "--branches").split()


def libgit2_rows(path: Path, shas: list[str]) -> tuple[pa.Table, pa.Table]:
    tune_libgit2()
    return extract_chunk(pygit2.Repository(str(path)), shas)


def git_rows(path: Path, shas: list[str], batch: int = 1000) -> tuple[pa.Table, pa.Table]:
    tables = list(extract_with_git(str(path), shas, batch=batch))
    assert all(c.num_rows <= batch for c, _ in tables)
    return (
        pa.concat_tables([c for c, _ in tables]) if tables else libgit2_rows(path, [])[0],
        pa.concat_tables([f for _, f in tables]) if tables else libgit2_rows(path, [])[1],
    )


def assert_same_rows(path: Path, shas: list[str], batch: int = 1000) -> None:
    commits, files = git_rows(path, shas, batch)
    expected_commits, expected_files = libgit2_rows(path, shas)
    assert commits.to_pylist() == expected_commits.to_pylist()
    assert files.to_pylist() == expected_files.to_pylist()


def test_the_edge_case_repository(edge_repo: GitRepo) -> None:
    shas = all_commits(edge_repo)
    assert_same_rows(edge_repo.path, shas)
    assert_same_rows(edge_repo.path, shas, batch=3)  # batches cut anywhere
    assert_same_rows(edge_repo.path, shas[::-1][:7])  # any order, any subset


def fast_import(repo: GitRepo, commits: list[tuple[str, list[bytes]]]) -> None:
    """Commits on main, each (message, file commands of git fast-import)."""
    stream = []
    for n, (message, commands) in enumerate(commits):
        when = 1_700_000_000 + n * 60
        stream.append(
            b"commit refs/heads/main\nmark :%d\n"
            b"author A U Thor <author@example.com> %d +0130\n"
            b"committer C O Mitter <committer@example.com> %d -0700\n" % (n + 1, when, when)
        )
        stream.append(b"data %d\n%s\n" % (len(message), message.encode()))
        if n:
            stream.append(b"from :%d\n" % n)
        stream += [command + b"\n" for command in commands]
        stream.append(b"\n")
    repo.run("fast-import", "--quiet", input=b"".join(stream))


def blob(mode: str, path: bytes, content: bytes) -> bytes:
    quoted = (
        b'"'
        + path.replace(b"\\", b"\\\\")
        .replace(b'"', b'\\"')
        .replace(b"\n", b"\\n")
        .replace(b"\t", b"\\t")
        + b'"'
    )
    return b"M %s inline %s\ndata %d\n%s" % (mode.encode(), quoted, len(content), content)


# Paths git must quote, or that look like the parts of its output.
ODD_PATHS = [
    b"plain.txt",
    b"with space.txt",
    b'quote".txt',
    b"back\\slash.txt",
    b"tab\there.txt",
    b"new\nline.txt",
    b"caf\xc3\xa9.txt",
    b"latin1-\xe9.txt",
    b"x b/y.txt",
    b"a/b b/a b.txt",
    b"diff --git a/z b/z",
    b"\x01mark.txt",
]
# Contents whose lines look like the parts of git's output, and line-ending cases.
TRICKY = (
    b"+++ b/not-a-header\n--- a/not-a-header\n@@ -1 +1 @@ not a hunk\n"
    b"diff --git a/x b/x\n\x01not a commit\n\\ not a marker\n+plus\n-minus\n"
)


def test_a_history_built_to_break_the_parser(git_repo: GitRepo) -> None:
    big_line = b"y" * (3 << 20) + b"\n"  # one line longer than git's output chunks
    late_nul = b"t\n" * 4100 + b"\0 after the first 8000 bytes: still text\n"
    commits: list[tuple[str, list[bytes]]] = [
        (
            "odd paths\n\nCo-authored-by: \x01Mark\x1f <\x01mark@example.com>\n"
            "co-authored-by: Folded\n \x01<folded@example.com>\n",
            [blob("100644", path, b"one\ntwo\n") for path in ODD_PATHS],
        ),
        ("odd paths change", [blob("100644", path, b"one\n2\nthree") for path in ODD_PATHS]),
        ("tricky lines", [blob("100644", b"tricky.txt", TRICKY * 3)]),
        ("tricky lines move", [blob("100644", b"tricky.txt", TRICKY[40:] + TRICKY * 2 + b"end")]),
        (
            "line endings",
            [
                blob("100644", b"crlf.txt", b"a\r\nb\r\nc"),
                blob("100644", b"eol-none.txt", b"last line has none"),
                blob("100644", b"empty.txt", b""),
            ],
        ),
        (
            "endings change",
            [
                blob("100644", b"crlf.txt", b"a\nb\r\nc\r\n"),
                blob("100644", b"eol-none.txt", b"last line has none\nnow it has\n"),
                blob("100644", b"empty.txt", b"\n"),
            ],
        ),
        ("only the end", [blob("100644", b"eol-none.txt", b"last line has none\nnow it has")]),
        ("mode", [blob("100755", b"plain.txt", b"one\n2\nthree")]),
        (
            "binary and nul",
            [
                blob("100644", b"bin.dat", b"\0\1\2" * 100),
                blob("100644", b"late-nul.txt", late_nul),
            ],
        ),
        (
            "binary and nul change",
            [
                blob("100644", b"bin.dat", b"\0\3" * 90),
                blob("100644", b"late-nul.txt", late_nul.replace(b"t\n", b"u\n", 5)),
            ],
        ),
        ("symlink", [b"M 120000 inline plain.txt\ndata 9\nelsewhere"]),
        (
            f"big\n\nCo-authored-by: {'n' * (3 << 20)} <big@example.com>\n",  # a long header line
            [blob("100644", b"big.txt", big_line + b"small\n")],
        ),
        ("big change", [blob("100644", b"big.txt", b"small\n" + big_line)]),
        ("empty commit \x01\n\nCo-authored-by: A <a@example.com>\nCo-authored-by: \x01", []),
        (
            "deletions",
            [b'D "' + path.replace(b"\n", b"\\n") + b'"' for path in ODD_PATHS[5:7]]
            + [b"D crlf.txt", b"D big.txt"],
        ),
    ]
    fast_import(git_repo, commits)
    shas = all_commits(git_repo)
    assert len(shas) == len(commits)
    assert_same_rows(git_repo.path, shas)
    assert_same_rows(git_repo.path, shas, batch=1)
    extracted, _ = git_rows(git_repo.path, shas)
    assert sum(map(len, extracted.column("co_authors").to_pylist())) == 4


@pytest.mark.parametrize("lost", ["HEAD:a.txt", "HEAD"], ids=["blob", "commit"])
@pytest.mark.parametrize("extractor", ["git", "libgit2", "libgit2 without git"])
def test_a_missing_object_is_named(
    git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch, lost: str, extractor: str
) -> None:
    """Whichever reads it first (libgit2, or git for the diffs or the trailers)."""
    git_repo.git("config", "gc.auto", "0")
    git_repo.commit({"a.txt": "a\n"}, message="one")
    git_repo.commit({"a.txt": "a\nb\n"}, message="two\n\nCo-authored-by: A <a@example.com>")
    shas = all_commits(git_repo)
    sha = git_repo.git("rev-parse", lost)
    (git_repo.path / ".git/objects" / sha[:2] / sha[2:]).unlink()
    monkeypatch.setattr(extract, "git_available", lambda: extractor != "libgit2 without git")
    rows = git_rows if extractor == "git" else libgit2_rows
    with pytest.raises(IncompleteRepositoryError, match=f"object {sha} is missing"):
        rows(git_repo.path, shas)


@pytest.mark.parametrize("with_git", [True, False], ids=["git", "libgit2"])
def test_a_backfill_goes_through_git_when_it_can(
    edge_repo: GitRepo, monkeypatch: pytest.MonkeyPatch, with_git: bool
) -> None:
    """Many commits go through git (in a pool when there are cores for it); without git
    installed, through libgit2: the same rows either way."""
    monkeypatch.setattr(extract, "POOL_THRESHOLD", 2)
    monkeypatch.setattr(extract, "GIT_CHUNK_SIZE", 4)
    monkeypatch.setattr(extract, "git_available", lambda: with_git)
    used: list[int] = []
    original = extract._with_git

    def counted(path: str, shas: list[str]) -> tuple[pa.Table, pa.Table]:
        used.append(len(shas))
        return original(path, shas)

    monkeypatch.setattr(extract, "_with_git", counted)
    shas = all_commits(edge_repo)
    tables = list(extract_new_commits(str(edge_repo.path), shas, workers=1))
    assert bool(used) is with_git
    expected_commits, expected_files = libgit2_rows(edge_repo.path, shas)
    assert pa.concat_tables([c for c, _ in tables]).to_pylist() == expected_commits.to_pylist()
    assert pa.concat_tables([f for _, f in tables]).to_pylist() == expected_files.to_pylist()


def test_identities_and_dates_as_recorded(git_repo: GitRepo) -> None:
    git_repo.commit({"a.txt": "a\n"}, message="first")
    authors = [
        b"N" * (5 << 20) + b" <long@example.com> 1700000000 +0000",
        b"Bad \xff\xfe UTF-8 <x\xff@example.com> 1700000000 +0000",
        b"Ren\xe9 Latin <rene@example.com> 1700000000 +0200",
        b"Future <f@example.com> 253402300800 +0000",
        b"Far <f@example.com> 99999999999999 -1230",
        b"Epoch <e@example.com> 0 -0000",
        b"East <e@example.com> 1700000000 +1400",
        b" <> 1700000000 +0000",
    ]
    parent = git_repo.head()
    for n, author in enumerate(authors):
        headers = b"encoding ISO-8859-1\n" if n == 2 else b""
        parent = git_repo.write_commit(parent, author=author, headers=headers)
    git_repo.run("update-ref", "HEAD", parent)
    assert_same_rows(git_repo.path, all_commits(git_repo))
    # Both read the names as git log shows them: in the commit's encoding when it has one.
    commits, _ = git_rows(git_repo.path, all_commits(git_repo))
    shown = git_repo.run("log", "--format=%an%x00", "--branches").split(b"\0\n")
    for name, as_git_shows in zip(commits.column("author_name").to_pylist(), shown, strict=False):
        if len(as_git_shows) < 1000:
            assert name == as_git_shows.decode("utf-8", "replace")
    assert "Ren\u00e9 Latin" in commits.column("author_name").to_pylist()
