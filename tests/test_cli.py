"""`gitstats analyze`: clear one-line errors, zeros for an empty repository, incremental reruns."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from contract.settings import Settings
from tests.support.gitrepos import GitRepo
from worker.cli import _parser
from worker.engine.pipeline import mirror_dir


def gitstats(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def analyze(source: str | Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return gitstats(
        "analyze", source, "--storage", tmp_path / "storage", "--codebase-id", "3",
        "--work-dir", tmp_path / "work", *extra,
    )  # fmt: skip


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gitstats: error: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_a_path_that_is_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert_one_line_error(analyze(plain, tmp_path), str(plain), "not a git repository")
    assert_one_line_error(analyze(tmp_path / "missing", tmp_path), "no such file")


def test_an_unreachable_url_names_no_secret(tmp_path: Path) -> None:
    url = f"http://user:s3cr3t@127.0.0.1:{closed_port()}/org/repo.git"
    result = analyze(url, tmp_path)
    assert_one_line_error(result, "cannot fetch")
    assert "s3cr3t" not in result.stderr + result.stdout


def test_storage_that_cannot_be_written(git_repo: GitRepo, tmp_path: Path) -> None:
    git_repo.commit({"a": "1\n"})
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = gitstats(
        "analyze", git_repo.path, "--storage", blocker / "storage", "--codebase-id", "1",
        "--work-dir", tmp_path / "work",
    )  # fmt: skip
    assert_one_line_error(result, str(blocker))


def test_an_empty_repository_succeeds_with_zeros(git_repo: GitRepo, tmp_path: Path) -> None:
    result = analyze(git_repo.path, tmp_path)
    assert result.returncode == 0, result.stderr
    overview = json.loads((tmp_path / "storage/analytics/3/overview.json").read_text())
    numbers = [v for k, v in overview.items() if isinstance(v, int) and k != "schema_version"]
    assert overview["codebase_id"] == 3
    assert all(v == 0 for v in numbers if v != 3)
    assert overview["total_commits"] == overview["total_files"] == 0
    assert overview["languages"] == [] and overview["primary_language"] is None
    status = json.loads((tmp_path / "storage/analytics/3/status.json").read_text())
    assert status["state"] == "succeeded"


def test_second_run_is_incremental_and_prints_the_documents(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.txt": "1\n2\n"})
    git_repo.commit({"b.txt": "3\n"})
    first = analyze(git_repo.path, tmp_path, "--name", "acme/widgets")
    assert first.returncode == 0, first.stderr
    assert "2 commits added" in first.stdout
    for name in ("overview", "branches", "activity", "ownership", "status"):
        assert str(tmp_path / f"storage/analytics/3/{name}.json") in first.stdout
    git_repo.commit({"c.txt": "4\n"})
    second = analyze(git_repo.path, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "1 commits added, 0 removed" in second.stdout
    overview = json.loads((tmp_path / "storage/analytics/3/overview.json").read_text())
    assert (overview["full_name"], overview["total_commits"]) == ("acme/widgets", 3)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_progress_bar_only_on_a_terminal(git_repo: GitRepo, tmp_path: Path) -> None:
    for i in range(5):
        git_repo.commit({f"f{i}": f"{i}\n"})
    primary, secondary = pty.openpty()
    # A terminal of 0 columns gets an empty bar: give it a real size.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "analyze", str(git_repo.path), "--storage",
         str(tmp_path / "storage"), "--codebase-id", "4", "--work-dir", str(tmp_path / "work")],
        stdin=secondary, stdout=subprocess.PIPE, stderr=secondary,
    ) as process:  # fmt: skip
        os.close(secondary)
        terminal = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            terminal += chunk
        assert process.wait(timeout=120) == 0
    os.close(primary)
    assert b"extract" in terminal and b"commits" in terminal


@pytest.mark.parametrize("codebase_id", ["0", "-4", "seven"])
def test_a_codebase_id_must_be_a_positive_number(
    git_repo: GitRepo, tmp_path: Path, codebase_id: str
) -> None:
    git_repo.commit({"a.py": "a = 1\n"})
    result = gitstats(
        "analyze", git_repo.path, "--storage", tmp_path / "storage", "--codebase-id", codebase_id
    )
    assert result.returncode == 2
    assert "--codebase-id" in result.stderr
    assert not (tmp_path / "storage").exists()


@pytest.mark.parametrize(
    ("environment", "option", "globs"),
    [
        (None, [], []),
        (" dependabot*, ,*@ci.example.com ,", [], ["dependabot*", "*@ci.example.com"]),
        ("renovate*", ["--bot-authors", "a*, b*"], ["a*", "b*"]),
        ("renovate*", ["--bot-authors", ""], []),
    ],
)
def test_bot_authors_come_from_the_environment_unless_given(
    monkeypatch: pytest.MonkeyPatch, environment: str | None, option: list[str], globs: list[str]
) -> None:
    if environment is None:
        monkeypatch.delenv("BOT_AUTHORS", raising=False)
    else:
        monkeypatch.setenv("BOT_AUTHORS", environment)
    command = ["analyze", "repo", "--storage", "out", "--codebase-id", "1", *option]
    assert _parser(Settings()).parse_args(command).bot_authors == globs


def test_a_failed_run_on_a_bad_path_leaves_the_codebase_as_it_was(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit({"a.py": "a = 1\n"})
    assert analyze(git_repo.path, tmp_path).returncode == 0
    stored = {p: p.read_bytes() for p in (tmp_path / "storage").rglob("*") if p.is_file()}

    assert_one_line_error(analyze(tmp_path / "missing", tmp_path), "no such file")
    assert {p: p.read_bytes() for p in (tmp_path / "storage").rglob("*") if p.is_file()} == stored


def stored_files(root: Path) -> dict[str, bytes]:
    """Every stored object but the status and the lock files, by path."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "status.json" and ".locks" not in path.parts
    }


@pytest.mark.parametrize("added", [3, 450], ids=["in-process", "extraction-processes"])
def test_a_missing_object_is_one_line_and_stores_nothing(
    git_repo: GitRepo, tmp_path: Path, added: int
) -> None:
    """A blob of a new commit is missing from the source: one line naming it, a non-zero exit,
    the status saying so, and nothing else in storage changed. 450 new commits go through the
    extraction processes, whose own errors must cross back to the parent."""
    git_repo.git("config", "gc.auto", "0")  # every object stays a loose file
    for n in range(5):
        git_repo.commit({f"f{n}.txt": f"{n}\n"}, message=f"c{n}")
    assert analyze(git_repo.path, tmp_path).returncode == 0
    storage = tmp_path / "storage"
    before = stored_files(storage)
    status_before = json.loads((storage / "analytics/3/status.json").read_text())
    for n in range(added):
        git_repo.commit({f"new{n % 9}.txt": f"{n}\n" * (n % 4 + 1)}, message=f"new {n}")
    lost = git_repo.git("rev-parse", f"HEAD~{added // 2}:new{(added - 1 - added // 2) % 9}.txt")
    (git_repo.path / ".git/objects" / lost[:2] / lost[2:]).unlink()

    result = analyze(git_repo.path, tmp_path)

    assert_one_line_error(result, f"object {lost} is missing: the repository is incomplete")
    assert stored_files(storage) == before
    status = json.loads((storage / "analytics/3/status.json").read_text())
    assert status["state"] == "failed"
    assert status["last_error"]["message"] == result.stderr.strip().removeprefix(
        "gitstats: error: "
    )
    assert status["refs"] == status_before["refs"]
    # The mirror may be what lost the object: the next run fetches a new one.
    assert not mirror_dir(tmp_path / "work", 3).exists()
