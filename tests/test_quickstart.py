"""README's first command: `gitstats serve --demo PATH` starts the service and shows data."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.fake_github import FakeGitHub
from tests.support.gitrepos import GitRepo, git_commit_count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_serve_with_demo_data(git_repo: GitRepo, tmp_path: Path, fake_github: FakeGitHub) -> None:
    git_repo.commit({"a.py": "print(1)\n"})
    git_repo.commit({"b.py": "print(2)\nprint(3)\n"})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "ADMIN_TOKENS", "PORT"}}
    env.update(
        STORAGE_URL=str(tmp_path / "data"),
        WORK_DIR=str(tmp_path / "work"),
        # Bearer tokens that are not admin tokens are asked of GitHub: the fake one, never the
        # real one.
        GITHUB_API_URL=fake_github.base_url,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "serve", "--demo", str(git_repo.path),
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        token = link = None
        for line in process.stdout:
            if line.strip().startswith("dashboard:"):
                link = line.split("dashboard:", 1)[1].strip()
            if "Authorization: Bearer" in line and token is None:
                token = line.split("Bearer ", 1)[1].split("'", 1)[0]
            if "analytics/" in line and "documents are also plain files" in line:
                break
        assert token, "serve printed no admin token"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = 0
        while status != 200 and time.monotonic() < deadline:
            try:
                status, _ = get(f"{base}/healthz")
            except (urllib.error.URLError, ConnectionError):
                status = 0
                time.sleep(0.05)  # polling pace, not synchronisation: the loop checks again
        assert status == 200
        status, body = get(f"{base}/api/v1/codebases/1/analytics/overview", token)
        assert status == 200, body
        assert json.loads(body)["total_commits"] == git_commit_count(git_repo.path)
        status, body = get(f"{base}/api/v1/orgs/local/analytics/summary", token)
        assert status == 200, body
        assert json.loads(body)["total_codebases"] == 1
        assert get(f"{base}/api/v1/codebases/1/analytics/overview", "wrong")[0] == 401
        # The dashboard: a link that signs in with the printed token, to the demo's org.
        assert link == f"http://localhost:{port}/ui/#token={token}&org=local"
        status, body = get(f"{base}/ui/")
        assert status == 200
        assert b'src="/ui/assets/app.js"' in body
    finally:
        process.send_signal(signal.SIGTERM)
        with process.stdout:  # closed however the wait ends
            assert process.wait(timeout=30) == 0
