"""The whole service, running as deployed, for the end-to-end tests.

The web app served on a loopback port (`aiohttp_client`), arq worker *processes* (`python -m arq
worker.main.WorkerSettings`, configured through the environment), a real Redis, the fake GitHub
serving the REST calls and git over HTTP, and storage in a local folder. A test only talks to
the system the way GitHub and a frontend do: signed webhooks in, the read API (and the storage
folder) out. Outcomes are awaited by polling with a deadline; the system is "idle" once arq's
queue is empty (a job leaves the queue only when it is finished, and a job retried later stays
in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient

from contract import layout
from contract.settings import Settings, redis_settings
from contract.storage.local import LocalStorage
from service.app import create_app
from tests.support.deliveries import SECRET, deliver
from tests.support.fake_github import FakeGitHub
from tests.support.gitrepos import GitRepo
from tests.support.leaks import TOKEN_SHAPES, LeakScan, issued

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "end-to-end-admin-token"
ORG_LOGIN = "acme"
ORG_ID = 4_242_001
POLL_S = 0.05
DEADLINE_S = 60.0
ARQ_QUEUE = "arq:queue"  # arq's default queue: WorkerSettings does not name another
# What every setting of the service is called in the environment: none leaks in from outside.
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a probe: the awaited condition does not hold yet (the message says why)."""


# --- worker processes -------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One `python -m worker` process, its stdout and stderr captured to files."""

    name: str
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    files: list[IO[bytes]]

    def output(self) -> str:
        parts = []
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = path.read_text("utf-8", "replace") if path.exists() else ""
            parts.append(f"--- {self.name} {label} ---\n{text}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM (arq shuts down cleanly), SIGKILL if it has not exited in 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        for file in self.files:
            file.close()

    def jobs_started(self, function: str) -> int:
        """How many jobs of `function` this worker started (arq logs `→ <job id>:<function>(`)."""
        text = self.stderr_path.read_text("utf-8", "replace")
        return sum(1 for line in text.splitlines() if "→" in line and f":{function}(" in line)


# --- the system under test --------------------------------------------------------------------


@dataclass
class Snapshot:
    """The stored documents of an org at one moment."""

    statuses: dict[int, dict[str, Any]]
    overviews: dict[int, dict[str, Any]]
    summary: dict[str, Any]
    listing: dict[str, Any]


@dataclass
class Stack:
    """The running system, and what GitHub and a frontend can do with it."""

    fake: FakeGitHub
    redis_url: str
    redis: aioredis.Redis
    root: Path
    storage_dir: Path
    work_dir: Path
    storage: LocalStorage
    client: TestClient[web.Request, web.Application]
    caplog: pytest.LogCaptureFixture
    workers: list[WorkerProcess] = field(default_factory=list)
    gone: list[WorkerProcess] = field(default_factory=list)  # killed or stopped

    # -- workers ----------------------------------------------------------------------------

    def worker_env(self, concurrency: int, **settings: str) -> dict[str, str]:
        home = self.root / "worker-home"
        home.mkdir(exist_ok=True)
        env = {
            key: value
            for key, value in os.environ.items()
            if key.upper() not in SETTINGS_VARIABLES
            and key.lower() not in PROXY_VARIABLES
            and not key.startswith("GIT_")
        }
        env.update(
            REDIS_URL=self.redis_url,
            STORAGE_URL=self.storage_dir.as_uri(),
            WORK_DIR=str(self.work_dir),
            GITHUB_APP_ID=self.fake.app_id,
            GITHUB_PRIVATE_KEY=self.fake.private_key_pem,
            GITHUB_API_URL=self.fake.base_url,
            EMAIL_MODE="hash",
            WORKER_CONCURRENCY=str(concurrency),
            # No user or system git configuration reaches libgit2.
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            NO_PROXY="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
            # Several workers on one host: none serves metrics (the tests read none).
            WORKER_METRICS_PORT="0",
        )
        env.update({name.upper(): value for name, value in settings.items()})
        return env

    async def start_workers(
        self,
        count: int,
        concurrency: int = 2,
        module: str = "worker",
        env: dict[str, str] | None = None,
        **settings: str,
    ) -> list[WorkerProcess]:
        """Start `count` worker processes (`python -m <module>`, with `settings` and `env` added
        to their environment) and wait until each has connected to Redis."""
        env = {**self.worker_env(concurrency, **settings), **(env or {})}
        logs = self.root / "worker-logs"
        logs.mkdir(exist_ok=True)
        started = []
        for _ in range(count):
            name = f"worker{len(self.workers)}"
            stdout_path, stderr_path = logs / f"{name}.stdout", logs / f"{name}.stderr"
            stdout, stderr = stdout_path.open("wb"), stderr_path.open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
            worker = WorkerProcess(name, proc, stdout_path, stderr_path, [stdout, stderr])
            self.workers.append(worker)
            started.append(worker)
        for worker in started:

            async def connected(worker: WorkerProcess = worker) -> None:
                # arq logs the Redis it reached right before running on_startup.
                if "redis_version=" not in worker.stderr_path.read_text("utf-8", "replace"):
                    raise NotYet("no 'redis_version=' line in its log yet")

            await self.wait_for(f"{worker.name} to connect to Redis", connected)
        return started

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL `worker`, as a lost machine or the OOM killer would; it is no longer checked."""
        worker.proc.kill()
        worker.proc.wait(timeout=15)
        for file in worker.files:
            file.close()
        self.workers.remove(worker)
        self.gone.append(worker)

    def stop(self, worker: WorkerProcess) -> None:
        """Stop `worker` as a deployment does (SIGTERM); it is no longer checked."""
        worker.stop()
        self.workers.remove(worker)
        self.gone.append(worker)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    def worker_output(self) -> str:
        return "\n".join(worker.output() for worker in [*self.gone, *self.workers])

    def check_workers_alive(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is not None:
                raise AssertionError(
                    f"{worker.name} exited with {worker.proc.returncode}\n{self.worker_output()}"
                )

    @contextlib.contextmanager
    def worker_logs_on_failure(self) -> Iterator[None]:
        """Attach the workers' stdout and stderr to any failure inside the block."""
        try:
            yield
        except BaseException as exc:
            exc.add_note(self.worker_output())
            raise

    # -- waiting ----------------------------------------------------------------------------

    async def wait_for(
        self,
        what: str,
        probe: Callable[[], Awaitable[T]],
        timeout: float = DEADLINE_S,
        interval: float = POLL_S,
    ) -> T:
        """Poll `probe` until it returns instead of raising NotYet; fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_workers_alive()
            try:
                return await probe()
            except NotYet as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {last}")
            await asyncio.sleep(interval)

    async def wait_idle(self, codebase_ids: list[int]) -> None:
        """Until every job is done (arq's queue empty) and each codebase's status is final."""

        async def idle() -> None:
            queued = await self.redis.zcard(ARQ_QUEUE)
            if queued:
                raise NotYet(f"{queued} job(s) in arq's queue")
            for cid in codebase_ids:
                status = await self.document(cid, "status")
                if status is None or status["state"] not in ("succeeded", "failed"):
                    state = None if status is None else (status["state"], status["phase"])
                    raise NotYet(f"codebase {cid} status is {state}")

        await self.wait_for(f"codebases {codebase_ids} to be synced", idle)

    async def settle(self, repos: dict[int, GitRepo]) -> Snapshot:
        """Wait until idle, then read the org's documents: each codebase synced to git's refs."""
        await self.wait_idle(list(repos))
        statuses, overviews = {}, {}
        for cid, repo in repos.items():
            status = await self.document(cid, "status")
            assert status is not None
            assert status["state"] == "succeeded", status
            assert status["refs"] == branch_refs(repo), (cid, status["refs"])
            overview = await self.document(cid, "overview")
            assert overview is not None, f"codebase {cid} has no overview"
            statuses[cid], overviews[cid] = status, overview
        summary = await self.org_document("org_summary")
        listing = await self.org_document("codebases_list")
        assert summary is not None and listing is not None, "the org files are missing"
        return Snapshot(statuses, overviews, summary, listing)

    # -- storage ----------------------------------------------------------------------------

    async def document(self, codebase_id: int, name: str) -> dict[str, Any] | None:
        stored = await self.storage.get(layout.codebase_document(codebase_id, name))
        return None if stored is None else dict(json.loads(stored.data))

    async def org_document(self, name: str) -> dict[str, Any] | None:
        stored = await self.storage.get(layout.org_document(ORG_ID, name))
        return None if stored is None else dict(json.loads(stored.data))

    # -- GitHub's side: webhooks ------------------------------------------------------------

    async def deliver(self, event: str, payload: dict[str, Any], expect: int = 202) -> Any:
        """POST a delivery as GitHub does: signed, with a fresh X-GitHub-Delivery."""
        response = await deliver(self.client, event, payload)
        answer = await response.json()
        assert response.status == expect, (event, response.status, answer)
        return answer

    async def install(self, installation_id: int, repo_ids: list[int], selection: str) -> None:
        repos = [self.fake.repository(rid) for rid in repo_ids]
        await self.deliver(
            "installation",
            {
                "action": "created",
                "installation": {
                    "id": installation_id,
                    "account": account_json(),
                    "repository_selection": selection,
                    "app_id": int(self.fake.app_id),
                    "target_type": "Organization",
                },
                "repositories": [
                    {k: repo[k] for k in ("id", "node_id", "name", "full_name", "private")}
                    for repo in repos
                ],
                "sender": account_json(),
            },
        )

    async def repositories_changed(
        self,
        installation_id: int,
        added: Sequence[dict[str, Any]] = (),
        removed: Sequence[dict[str, Any]] = (),
    ) -> None:
        """`installation_repositories`: repositories (as `fake.repository()` gives them) added
        to or removed from a selected installation."""
        keys = ("id", "node_id", "name", "full_name", "private")
        await self.deliver(
            "installation_repositories",
            {
                "action": "added" if added else "removed",
                "installation": {"id": installation_id, "account": account_json()},
                "repository_selection": "selected",
                "repositories_added": [{k: repo[k] for k in keys} for repo in added],
                "repositories_removed": [{k: repo[k] for k in keys} for repo in removed],
                "sender": account_json(),
            },
        )

    async def push(
        self,
        installation_id: int,
        repo_id: int,
        branch: str,
        before: str,
        after: str,
        **flags: bool,
    ) -> None:
        await self.deliver(
            "push",
            {
                "ref": f"refs/heads/{branch}",
                "before": before,
                "after": after,
                "created": flags.get("created", False),
                "deleted": flags.get("deleted", False),
                "forced": flags.get("forced", False),
                "base_ref": None,
                "commits": [],
                "head_commit": None,
                "repository": self.fake.repository(repo_id),
                "pusher": {"name": "alice", "email": "alice@example.com"},
                "installation": {"id": installation_id},
                "sender": account_json(),
            },
        )

    async def branch_deleted(self, installation_id: int, repo_id: int, branch: str) -> None:
        await self.deliver(
            "delete",
            {
                "ref": branch,
                "ref_type": "branch",
                "pusher_type": "user",
                "repository": self.fake.repository(repo_id),
                "installation": {"id": installation_id},
                "sender": account_json(),
            },
        )

    # -- the frontend's side: the read API --------------------------------------------------

    async def api(
        self, path: str, etag: str | None = None
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        if etag is not None:
            headers["If-None-Match"] = etag
        response = await self.client.get(path, headers=headers)
        body = None if response.status == 304 else await response.json()
        return response.status, body, response.headers

    async def api_until(self, path: str, field_name: str, expected: int) -> dict[str, Any]:
        """Poll the read API (which may serve a document for a second) until it shows `expected`."""

        async def probe() -> dict[str, Any]:
            status, body, _ = await self.api(path)
            if status != 200 or body.get(field_name) != expected:
                seen = body.get(field_name) if isinstance(body, dict) else body
                raise NotYet(f"GET {path} answers {status} with {field_name}={seen}")
            return dict(body)

        return await self.wait_for(f"{path} to show {field_name}={expected}", probe)

    # -- the token must never leak ----------------------------------------------------------

    async def assert_no_token_leak(self) -> None:
        """No installation token the fake issued, nor anything shaped like a token or a JWT, is
        in storage, WORK_DIR (mirror configs included), the workers' stdout/stderr, the web
        app's log or Redis."""
        tokens = self.fake.issued_tokens()
        assert tokens, "the fake GitHub issued no installation token: nothing was fetched"
        scan = LeakScan([*issued(tokens), *TOKEN_SHAPES])
        scan.folders(self.storage_dir, self.work_dir, self.root / "worker-logs")
        mirror_configs = [p for p in scan.files if p.name == "config" and p.parent.suffix == ".git"]
        assert mirror_configs, f"no mirror config under {self.work_dir}: was anything fetched?"
        scan.data("web app log", self.caplog.text)
        await scan.redis(self.redis)
        assert not scan.hits, "credentials leaked:\n" + "\n".join(scan.hits)


def account_json() -> dict[str, Any]:
    return {"login": ORG_LOGIN, "id": ORG_ID, "type": "Organization", "site_admin": False}


def branch_refs(repo: GitRepo) -> dict[str, str]:
    """Branch name → sha, as the status document's `refs` holds them."""
    out = repo.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
    pairs = (line.split(" ", 1) for line in out.splitlines())
    return {ref.removeprefix("refs/heads/"): sha for ref, sha in pairs}


def add_repo(fake: FakeGitHub, installation_id: int, name: str, repo: GitRepo) -> int:
    return int(fake.add_repository(installation_id, ORG_LOGIN, name, repo.path)["id"])


@pytest.fixture
def stack_redis_url(redis_flushed: str) -> str:
    """The Redis the stack runs on: the session's (a test module may override this fixture)."""
    return redis_flushed


@pytest.fixture
async def stack(
    fake_github: FakeGitHub,
    stack_redis_url: str,
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Stack]:
    """The web app on loopback, Redis, storage and WORK_DIR in tmp_path; workers on demand."""
    caplog.set_level(logging.INFO)
    storage_dir, work_dir = tmp_path / "storage", tmp_path / "work"
    settings = Settings(
        github_app_id=fake_github.app_id,
        github_private_key=SecretStr(fake_github.private_key_pem),
        github_api_url=fake_github.base_url,
        github_webhook_secret=SecretStr(SECRET),
        redis_url=SecretStr(stack_redis_url),
        storage_url=storage_dir.as_uri(),
        admin_tokens=[SecretStr(ADMIN_TOKEN)],
        work_dir=tmp_path / "web-work",
    )
    client = await aiohttp_client(create_app(settings))
    # The service's own reconnection (a test may restart Redis under it).
    connection = redis_settings(settings)
    redis = aioredis.Redis.from_url(
        stack_redis_url, retry=connection.retry, retry_on_error=connection.retry_on_error
    )
    system = Stack(
        fake=fake_github,
        redis_url=stack_redis_url,
        redis=redis,
        root=tmp_path,
        storage_dir=storage_dir,
        work_dir=work_dir,
        storage=LocalStorage(storage_dir),
        client=client,
        caplog=caplog,
    )
    try:
        yield system
    finally:
        system.stop_workers()
        # Shown with -s / -rA; a failure inside a test carries it (worker_logs_on_failure).
        print(system.worker_output())
        await redis.aclose()
