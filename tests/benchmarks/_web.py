"""What the web benchmarks share: servers run as subprocesses on free loopback ports (the web app
as `python -m service`, and the bare aiohttp baseline of `bare_app.py`), the CPU time they spend,
and percentiles.

Every request goes to 127.0.0.1. `python -m service` itself listens on every interface (aiohttp's
`web.run_app` default, as the app has no HOST setting); the bare app listens on 127.0.0.1 only.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project checkout
LOOPBACK = "127.0.0.1"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port free on the loopback interface now (another process may take it before us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (/proc/<pid>/stat), its threads included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14, 15


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGINT (aiohttp's graceful exit, cleanup contexts run), then SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(
    name: str,
    argv: Sequence[str],
    port: int,
    log_path: Path,
    ready_path: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Server:
    """Start `argv` (stdout and stderr to `log_path`) and wait until GET `ready_path` is 200."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=ROOT,
        )
    server = Server(name, proc, port, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(
                f"{name} exited {proc.returncode} before answering:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(server.url(ready_path), timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise SystemExit(f"{name} did not answer within {timeout:g} s:\n{server.log_tail()}")
        time.sleep(0.1)


def service_argv() -> list[str]:
    """The Procfile's `web` line with this interpreter: one aiohttp process."""
    return [sys.executable, "-m", "service"]


def service_env(**settings: str) -> dict[str, str]:
    """This process's environment (PATH and the like) with the app's settings given, upper-cased;
    the settings the benchmarks do not give are removed, so that the caller's shell cannot
    change what is measured."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper()
        not in {
            "GITHUB_APP_ID",
            "GITHUB_PRIVATE_KEY",
            "GITHUB_PRIVATE_KEY_PATH",
            "GITHUB_WEBHOOK_SECRET",
            "GITHUB_API_URL",
            "REDIS_URL",
            "STORAGE_URL",
            "S3_ENDPOINT_URL",
            "ADMIN_TOKENS",
            "EMAIL_MODE",
            "PORT",
            "WORK_DIR",
            "API_MAX_DOCUMENT_BYTES",
        }
    }
    env.update({k.upper(): v for k, v in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def bare_argv(port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "tests.benchmarks.bare_app", "--port", str(port), *options]


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of values sorted ascending."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.2f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
