"""Line provenance against git blame (DESIGN.md definition 16): every text file's lines per
author, as `git blame --line-porcelain` at the head counts them with the mailmap applied."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from tests.support.gitrepos import GitRepo
from worker.engine.mailmap import Mailmap
from worker.engine.provenance import BlameError, blame_files, write_commit_graph

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


def text_files(repo: GitRepo) -> list[bytes]:
    listed = subprocess.run(
        ["git", "-C", str(repo.path), "ls-files", "-z"], capture_output=True, check=True
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
