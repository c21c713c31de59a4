"""The service's acceptance scenarios, end to end and for real.

Everything runs as deployed: the web app served on a loopback port (`aiohttp_client`), arq worker
*processes* (`python -m arq worker.main.WorkerSettings`, configured through the environment), a
real Redis, the fake GitHub serving the REST calls and git over HTTP, and storage in a local
folder. A test only talks to the system the way GitHub and a frontend do: signed webhooks in, the
read API (and the storage folder) out. Outcomes are awaited by polling with a deadline; the
system is "idle" once arq's queue is empty (a job leaves the queue only when it is finished, and
a job retried later stays in it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
from contract.documents import EmailMode
from contract.settings import Settings
from contract.storage.local import LocalStorage
from service.app import create_app
from tests.support.documents import read_documents, without_run_timestamps
from tests.support.fake_github import INSTALLATION_TOKEN, FakeGitHub
from tests.support.gitrepos import (
    Author,
    GitRepo,
    git_branch_count,
    git_commit_count,
    git_contributors,
    git_line_totals,
    git_merge_count,
)
from worker.engine import pipeline

ROOT = Path(__file__).resolve().parent.parent
SECRET = "end-to-end-webhook-secret"
ADMIN_TOKEN = "end-to-end-admin-token"
ORG_LOGIN = "acme"
ORG_ID = 4_242_001
POLL_S = 0.05
DEADLINE_S = 60.0
LONG_HISTORY = 8000  # commits: the backfill stays ~0.5-1 s past its fetch (the window)
ARQ_QUEUE = "arq:queue"  # arq's default queue: WorkerSettings does not name another
# What every setting of the service is called in the environment: none leaks in from outside.
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}

T = TypeVar("T")

ALICE: Author = ("Alice", "alice@example.com")
BOB: Author = ("Bob", "bob@example.com")
CAROL: Author = ("Carol", "carol@example.org")
ALICE_UPPER: Author = ("Alice A.", "ALICE@Example.com")  # Alice again: emails compare lower-cased


class NotYet(Exception):
    """Raised by a probe: the awaited condition does not hold yet (the message says why)."""


# --- worker processes -------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One `arq worker.main.WorkerSettings` process, its stdout and stderr captured to files."""

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

    # -- workers ----------------------------------------------------------------------------

    def worker_env(self, concurrency: int) -> dict[str, str]:
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
        )
        return env

    async def start_workers(self, count: int, concurrency: int = 2) -> list[WorkerProcess]:
        """Start `count` worker processes and wait until each has connected to Redis."""
        env = self.worker_env(concurrency)
        logs = self.root / "worker-logs"
        logs.mkdir(exist_ok=True)
        started = []
        for _ in range(count):
            name = f"worker{len(self.workers)}"
            stdout_path, stderr_path = logs / f"{name}.stdout", logs / f"{name}.stderr"
            stdout, stderr = stdout_path.open("wb"), stderr_path.open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "arq", "worker.main.WorkerSettings"],
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

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    def worker_output(self) -> str:
        return "\n".join(worker.output() for worker in self.workers)

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
        body = json.dumps(payload).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/end-to-end",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": f"sha256={signature}",
        }
        response = await self.client.post("/webhooks/github", data=body, headers=headers)
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
        """No installation token the fake issued is in storage, WORK_DIR (mirror configs
        included), the workers' stdout/stderr, the web app's log or Redis."""
        tokens = self.fake.issued_tokens()
        assert tokens, "the fake GitHub issued no installation token: nothing was fetched"
        needles = {}
        for token in tokens:
            needles[token.encode()] = f"token {token[:8]}…"
            basic = base64.b64encode(f"x-access-token:{token}".encode())
            needles[basic] = f"Basic credential of token {token[:8]}…"
        hits: list[str] = []
        scanned: list[Path] = []
        for root in (self.storage_dir, self.work_dir, self.root / "worker-logs"):
            for path in files_under(root):
                scanned.append(path)
                data = path.read_bytes()
                hits += [f"{path}: {what}" for needle, what in needles.items() if needle in data]
        mirror_configs = [p for p in scanned if p.name == "config" and p.parent.suffix == ".git"]
        assert mirror_configs, f"no mirror config under {self.work_dir}: was anything fetched?"
        log_text = self.caplog.text.encode()
        hits += [f"web app log: {what}" for needle, what in needles.items() if needle in log_text]
        async for key in self.redis.scan_iter():
            for value in await redis_values(self.redis, key):
                hits += [f"Redis {key!r}: {what}" for n, what in needles.items() if n in value]
        assert not hits, "installation tokens leaked:\n" + "\n".join(hits)


def account_json() -> dict[str, Any]:
    return {"login": ORG_LOGIN, "id": ORG_ID, "type": "Organization", "site_admin": False}


def files_under(root: Path) -> Iterator[Path]:
    if root.exists():
        yield from (p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())


async def redis_values(client: aioredis.Redis, key: bytes) -> list[bytes]:
    """The key and every value stored under it, whatever its type."""
    kind = (await client.type(key)).decode()
    read = {
        "string": ("GET",),
        "list": ("LRANGE", 0, -1),
        "set": ("SMEMBERS",),
        "zset": ("ZRANGE", 0, -1),
        "hash": ("HGETALL",),
        "stream": ("XRANGE", "-", "+"),
    }.get(kind)
    if read is None:
        return [key]
    command, *args = read
    answer = await client.execute_command(command, key, *args)
    return [key, repr(answer).encode()]


@pytest.fixture
async def stack(
    fake_github: FakeGitHub,
    redis_flushed: str,
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
        redis_url=SecretStr(redis_flushed),
        storage_url=storage_dir.as_uri(),
        admin_tokens=[SecretStr(ADMIN_TOKEN)],
        work_dir=tmp_path / "web-work",
    )
    client = await aiohttp_client(create_app(settings))
    redis = aioredis.Redis.from_url(redis_flushed)
    system = Stack(
        fake=fake_github,
        redis_url=redis_flushed,
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


# --- repositories and git's own figures -----------------------------------------------------


def branch_refs(repo: GitRepo) -> dict[str, str]:
    """Branch name → sha, as the status document's `refs` holds them."""
    out = repo.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
    pairs = (line.split(" ", 1) for line in out.splitlines())
    return {ref.removeprefix("refs/heads/"): sha for ref, sha in pairs}


def add_repo(fake: FakeGitHub, installation_id: int, name: str, repo: GitRepo) -> int:
    return int(fake.add_repository(installation_id, ORG_LOGIN, name, repo.path)["id"])


def assert_overview_matches_git(overview: dict[str, Any], repo: GitRepo) -> None:
    """The overview's history figures are git's own."""
    additions, deletions = git_line_totals(repo.path)
    expected = {
        "head_sha": repo.head("main"),
        "total_commits": git_commit_count(repo.path),
        "merge_commits": git_merge_count(repo.path),
        "total_branches": git_branch_count(repo.path),
        "total_contributors": len(git_contributors(repo.path)),
        "additions_lines": additions,
        "deletions_lines": deletions,
        "total_churn": additions + deletions,
        "net_sloc": additions - deletions,
    }
    assert {key: overview[key] for key in expected} == expected, overview["full_name"]


def assert_org_files_sum_overviews(snapshot: Snapshot, repos: dict[int, GitRepo]) -> None:
    """org_summary and codebases_list list every codebase, their totals the overviews' sums."""
    overviews = snapshot.overviews
    listed = {row["codebase_id"]: row for row in snapshot.listing["codebases"]}
    assert sorted(listed) == sorted(repos)
    for cid, row in listed.items():
        overview = overviews[cid]
        for key in ("full_name", "total_commits", "total_contributors", "total_churn"):
            assert row[key] == overview[key], (cid, key, row, overview)
        assert row["total_lines"] == overview["total_lines"]
        assert row["state"] == "succeeded", row
    summary = snapshot.summary
    assert (summary["org_id"], summary["org_login"]) == (ORG_ID, ORG_LOGIN)
    assert summary["total_codebases"] == len(repos)
    for key in ("total_commits", "additions_lines", "deletions_lines", "total_churn"):
        assert summary[key] == sum(o[key] for o in overviews.values()), key
    assert summary["total_lines"] == sum(o["total_lines"] for o in overviews.values())
    everyone = set().union(*(git_contributors(repo.path) for repo in repos.values()))
    assert summary["total_contributors"] == len(everyone)


async def from_scratch(repo: GitRepo, codebase_id: int, full_name: str, where: Path) -> Any:
    """The documents a fresh run of the engine writes for `repo` as it is now."""
    storage = LocalStorage(where / "storage")
    await pipeline.analyze_codebase(
        str(repo.path),
        storage,
        codebase_id,
        where / "work",
        full_name=full_name,
        default_branch="main",
        email_mode=EmailMode.HASH,
        trigger="from-scratch",
    )
    return without_run_timestamps(await read_documents(storage, codebase_id))


def build_alpha(path: Path) -> GitRepo:
    """main with a merged topic (a merge commit), an unmerged `feature` branch, three authors."""
    repo = GitRepo.init(path)
    repo.commit({"README.md": "# alpha\n", "src/app.py": "print('hi')\n"}, "root", ALICE)
    repo.commit({"src/app.py": "print('hi')\nprint('there')\n"}, "two", BOB, "2024-01-02T09:00:00Z")
    repo.branch("topic")
    repo.checkout("topic")
    repo.commit({"src/topic.py": "x = 1\ny = 2\n"}, "topic", CAROL, "2024-01-03T09:00:00+02:00")
    repo.checkout("main")
    repo.commit({"docs/notes.md": "notes\n"}, "notes", ALICE_UPPER, "2024-01-04T10:00:00Z")
    repo.merge("topic", message="merge topic", author=ALICE, date="2024-01-05T10:00:00Z")
    repo.delete_branch("topic")
    repo.branch("feature")
    repo.checkout("feature")
    repo.commit({"src/feature.py": "f = 1\n"}, "feature 1", BOB, "2024-01-06T10:00:00Z")
    repo.commit({"src/feature.py": "f = 2\ng = 3\n"}, "feature 2", BOB, "2024-01-07T10:00:00Z")
    repo.checkout("main")
    return repo


def build_small(path: Path, name: str, authors: list[Author], commits: int) -> GitRepo:
    repo = GitRepo.init(path)
    for n in range(commits):
        lines = "".join(f"{name} line {i}\n" for i in range(n + 1))
        repo.commit(
            {f"{name}/mod{n % 2}.py": lines},
            f"{name} {n}",
            authors[n % len(authors)],
            f"2024-02-{n + 1:02d}T12:00:00+01:00",
        )
    return repo


def build_long_history(path: Path, commits: int) -> GitRepo:
    """A linear history of `commits` small commits, written by `git fast-import` in a second."""
    repo = GitRepo.init(path)
    authors = [ALICE, BOB, CAROL]
    files: dict[str, list[str]] = {}
    stream: list[bytes] = []
    for n in range(commits):
        name, email = authors[n % len(authors)]
        when = 1_700_000_000 + n * 600
        file = f"src/part{n % 40}.txt"
        lines = files.setdefault(file, [])
        lines.append(f"line {n}\n")
        if n % 3 == 0 and len(lines) > 1:
            lines[0] = f"rewritten by {n}\n"
        content = "".join(lines).encode()
        message = f"change {n}".encode()
        stream.append(
            f"commit refs/heads/main\nmark :{n + 1}\n"
            f"author {name} <{email}> {when} +0000\n"
            f"committer {name} <{email}> {when} +0000\n".encode()
        )
        stream.append(b"data %d\n%s\n" % (len(message), message))
        if n:
            stream.append(b"from :%d\n" % n)
        stream.append(f"M 100644 inline {file}\n".encode())
        stream.append(b"data %d\n%s\n\n" % (len(content), content))
    repo.run("fast-import", "--quiet", input=b"".join(stream))
    repo.run("reset", "-q", "--hard", "main")
    return repo


# --- 1. install, push, force-push, branch deletion ----------------------------------------


async def test_install_then_push_then_force_push_and_branch_deletion(
    stack: Stack, tmp_path: Path
) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    alpha = build_alpha(tmp_path / "repos" / "alpha")
    beta = build_small(tmp_path / "repos" / "beta", "beta", [BOB, CAROL], 3)
    gamma = build_small(tmp_path / "repos" / "gamma", "gamma", [ALICE_UPPER, ("Dan", "d@x.io")], 4)
    repos = {
        add_repo(fake, installation_id, "alpha", alpha): alpha,
        add_repo(fake, installation_id, "beta", beta): beta,
        add_repo(fake, installation_id, "gamma", gamma): gamma,
    }
    alpha_id, *others = list(repos)
    await stack.start_workers(1)

    with stack.worker_logs_on_failure():
        # Installed → every repository registered and backfilled.
        await stack.install(installation_id, list(repos), "all")
        first = await stack.settle(repos)
        for cid, repo in repos.items():
            documents = await read_documents(stack.storage, cid)  # all five, or it fails
            assert documents["overview"]["full_name"] == f"{ORG_LOGIN}/{repo.path.name}"
            assert first.statuses[cid]["last_run"]["trigger"] == "backfill"
            assert_overview_matches_git(first.overviews[cid], repo)
        assert_org_files_sum_overviews(first, repos)

        # A push to alpha re-syncs alpha alone.
        before = alpha.head("main")
        alpha.commit({"src/app.py": "print('hello')\n"}, "edit", CAROL, "2024-03-01T08:00:00Z")
        alpha.commit({"src/new.py": "a\nb\nc\n"}, "add", ("Eve", "eve@ex.net"), "2024-03-02T08:00Z")
        await stack.push(installation_id, alpha_id, "main", before, alpha.head("main"))
        second = await stack.settle(repos)
        last_run = second.statuses[alpha_id]["last_run"]
        assert (last_run["trigger"], last_run["commits_added"]) == ("push", 2)
        assert_overview_matches_git(second.overviews[alpha_id], alpha)
        for cid in others:
            assert second.statuses[cid]["last_run"] == first.statuses[cid]["last_run"]
            assert second.overviews[cid] == first.overviews[cid]
        assert_org_files_sum_overviews(second, repos)
        assert second.summary["total_commits"] == first.summary["total_commits"] + 2

        # The read API serves the new figures.
        path = f"/api/v1/codebases/{alpha_id}/analytics/overview"
        served = await stack.api_until(path, "total_commits", git_commit_count(alpha.path))
        assert served == second.overviews[alpha_id]
        summary_path = f"/api/v1/orgs/{ORG_LOGIN}/analytics/summary"
        summary = await stack.api_until(
            summary_path, "total_commits", second.summary["total_commits"]
        )
        assert summary["total_contributors"] == second.summary["total_contributors"]
        status, _, headers = await stack.api(summary_path)
        assert status == 200
        assert (await stack.api(summary_path, etag=headers["ETag"]))[0] == 304

        # A force-push drops commits: main back to three commits ago.
        before, count = alpha.head("main"), git_commit_count(alpha.path)
        older = alpha.git("rev-parse", "main~3")
        alpha.reset_branch("main", older)
        dropped = count - git_commit_count(alpha.path)
        assert dropped == 2  # the merge stays reachable from `feature`
        await stack.push(installation_id, alpha_id, "main", before, older, forced=True)
        third = await stack.settle(repos)
        last_run = third.statuses[alpha_id]["last_run"]
        assert (last_run["commits_added"], last_run["commits_removed"]) == (0, dropped)
        expected = await from_scratch(alpha, alpha_id, "acme/alpha", tmp_path / "scratch1")
        assert without_run_timestamps(await read_documents(stack.storage, alpha_id)) == expected

        # A branch deleted: GitHub sends a push (deleted) and a delete event.
        gone = alpha.head("feature")
        alpha.delete_branch("feature")
        await stack.push(installation_id, alpha_id, "feature", gone, "0" * 40, deleted=True)
        await stack.branch_deleted(installation_id, alpha_id, "feature")
        fourth = await stack.settle(repos)
        assert "feature" not in fourth.statuses[alpha_id]["refs"]
        assert_overview_matches_git(fourth.overviews[alpha_id], alpha)
        expected = await from_scratch(alpha, alpha_id, "acme/alpha", tmp_path / "scratch2")
        assert without_run_timestamps(await read_documents(stack.storage, alpha_id)) == expected
        assert_org_files_sum_overviews(fourth, repos)
        for cid in others:
            assert fourth.statuses[cid]["last_run"] == first.statuses[cid]["last_run"]
        await stack.assert_no_token_leak()


# --- 2. twenty codebases, two workers ----------------------------------------------------------


async def test_twenty_codebases_synced_by_two_workers(stack: Stack, tmp_path: Path) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID)
    people: list[Author] = [ALICE, BOB, CAROL, ALICE_UPPER, ("Bob B.", "BOB@example.com")]
    repos = {}
    for i in range(20):
        # Authors shared between repositories, plus one of its own for every third.
        authors = [people[i % len(people)], people[(i + 2) % len(people)]]
        if i % 3 == 0:
            authors.append((f"Dev {i}", f"dev{i}@example.net"))
        repo = build_small(tmp_path / "repos" / f"r{i:02d}", f"r{i:02d}", authors, 2 + i % 3)
        repos[add_repo(fake, installation_id, f"r{i:02d}", repo)] = repo
    workers = await stack.start_workers(2)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, list(repos), "selected")
        snapshot = await stack.settle(repos)
        for cid, repo in repos.items():
            assert_overview_matches_git(snapshot.overviews[cid], repo)
        assert len(snapshot.listing["codebases"]) == 20
        assert_org_files_sum_overviews(snapshot, repos)
        everyone = set().union(*(git_contributors(repo.path) for repo in repos.values()))
        assert snapshot.summary["total_contributors"] == len(everyone)
        per_worker = {worker.name: worker.jobs_started("sync_codebase") for worker in workers}
        assert all(per_worker.values()), f"one worker synced nothing: {per_worker}"
        assert sum(per_worker.values()) >= 20, per_worker
        await stack.assert_no_token_leak()


# --- 3. a push while its codebase is being synced -----------------------------------------


async def test_push_during_a_sync_ends_in_documents_that_include_it(
    stack: Stack, tmp_path: Path
) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    # Enough history that the backfill is observable past its fetch (~0.5-1 s here).
    repo = build_long_history(tmp_path / "repos" / "long", LONG_HISTORY)
    cid = add_repo(fake, installation_id, "long", repo)
    await stack.start_workers(1)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, [cid], "all")

        async def past_fetch() -> dict[str, Any]:
            status = await stack.document(cid, "status")
            if status is None or status["state"] == "queued":
                raise NotYet(f"status {status and status['state']}")
            if status["state"] != "running":
                raise AssertionError(f"the backfill ended before it was seen running: {status}")
            if status["phase"] in (None, "fetch"):
                raise NotYet(f"phase {status['phase']}")
            return status

        running = await stack.wait_for("the backfill past its fetch", past_fetch, interval=0.01)
        before = repo.head("main")
        repo.commit({"src/late.txt": "pushed during the sync\n"}, "late", BOB, "2024-05-01T00:00Z")
        await stack.push(installation_id, cid, "main", before, repo.head("main"))
        still = await stack.document(cid, "status")
        assert still is not None
        assert still["state"] == "running", f"the push came after the sync ended: {still}"
        assert still["last_run"]["started_at"] == running["last_run"]["started_at"]

        snapshot = await stack.settle({cid: repo})
        assert (
            snapshot.overviews[cid]["total_commits"]
            == git_commit_count(repo.path)
            == LONG_HISTORY + 1
        )
        assert snapshot.overviews[cid]["head_sha"] == repo.head("main")
        assert_overview_matches_git(snapshot.overviews[cid], repo)
        assert_org_files_sum_overviews(snapshot, {cid: repo})
        served = await stack.api_until(
            f"/api/v1/codebases/{cid}/analytics/overview", "total_commits", LONG_HISTORY + 1
        )
        assert served["head_sha"] == repo.head("main")
        await stack.assert_no_token_leak()


# --- 4. the token never leaks ------------------------------------------------------------------


async def test_installation_tokens_never_leak(stack: Stack, tmp_path: Path) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    alpha = build_alpha(tmp_path / "repos" / "alpha")
    beta = build_small(tmp_path / "repos" / "beta", "beta", [BOB], 2)
    repos = {
        add_repo(fake, installation_id, "alpha", alpha): alpha,
        add_repo(fake, installation_id, "beta", beta): beta,
    }
    alpha_id = next(iter(repos))
    await stack.start_workers(2)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, list(repos), "all")
        await stack.settle(repos)
        # Every token so far expires: the next fetch needs (and logs nothing of) a new one.
        fake.expire_tokens()
        before = alpha.head("main")
        alpha.commit({"src/app.py": "changed\n"}, "push", CAROL, "2024-04-01T00:00Z")
        await stack.push(installation_id, alpha_id, "main", before, alpha.head("main"))
        await stack.settle(repos)
        before = alpha.head("main")
        alpha.reset_branch("main", alpha.git("rev-parse", "main~2"))
        await stack.push(installation_id, alpha_id, "main", before, alpha.head("main"), forced=True)
        alpha.delete_branch("feature")
        await stack.branch_deleted(installation_id, alpha_id, "feature")
        await stack.settle(repos)
        git_fetches = [
            r
            for r in fake.requests
            if r.path.endswith("/git-upload-pack") and r.credential == INSTALLATION_TOKEN
        ]
        assert git_fetches, "no git fetch with an installation token reached the fake GitHub"
        assert len(fake.issued_tokens()) >= 2, "no token was issued after the first expired"
        # Stopped first, so that everything they would print is in their captured output.
        stack.stop_workers()
        await stack.assert_no_token_leak()
