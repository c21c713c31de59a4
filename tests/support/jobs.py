"""The worker's jobs as deployed: a real arq Worker (burst) on a real Redis, the fake GitHub
serving real git over HTTP, storage in a local folder, and an org of three repositories.

Where a test needs something to happen in the middle of a run (a push, a token expiring), a
`HookedStorage` calls it when the engine reports reaching a phase: no sleeps, no mocks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from arq import func
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job, JobResult
from arq.worker import get_kwargs

from contract import layout
from contract.documents import CodebasesList, OrgSummary, Overview, Status
from contract.jobs import (
    RECONCILE,
    RECOVER_ORPHANS,
    REGISTER_REPOSITORIES,
    Account,
    RegisterRequest,
    RepositoryRef,
    SyncRequest,
    deserialize_job,
    enqueue_sync,
    serialize_job,
)
from contract.settings import Settings
from contract.storage import Storage
from contract.storage.local import LocalStorage
from tests.support.fake_github import FakeGitHub
from tests.support.gitrepos import GitRepo
from worker.engine import pipeline
from worker.jobs.context import RetryPolicy
from worker.jobs.reconcile import reconcile
from worker.jobs.recover import recover_orphans
from worker.main import FUNCTIONS, Worker, worker_settings

ORG = Account(id=31_337, login="acme")
FAST_RETRY = RetryPolicy(base_s=0.01, max_s=0.05, max_failures=3, lock_busy_s=0.01)


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture
async def redis(redis_flushed: str) -> AsyncIterator[ArqRedis]:
    """A client that enqueues JSON jobs, as the worker takes them, on an empty database."""
    pool = await create_pool(
        RedisSettings.from_dsn(redis_flushed),
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
    )
    try:
        yield pool
    finally:
        await pool.aclose()


# --- the org under test -----------------------------------------------------------------------


def write_every_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    """Have runs write their status as each phase begins (HookedStorage sees every phase), not
    at most every STATUS_LATENCY_S."""
    monkeypatch.setattr(pipeline, "STATUS_LATENCY_S", 0.0)


class HookedStorage(LocalStorage):
    """A local folder that runs `hook` once, when a status document reports `phase` (a phase
    after the first is written only within pipeline.STATUS_LATENCY_S: write_every_phase)."""

    def __init__(self, root: Path, phase: str, hook: Callable[[], Awaitable[None]]) -> None:
        super().__init__(root)
        self._marker = f'"phase":"{phase}"'.encode()
        self._hook: Callable[[], Awaitable[None]] | None = hook

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> str:
        etag = await super().put(key, data, content_type)
        if self._hook is not None and key.endswith("/status.json") and self._marker in data:
            hook, self._hook = self._hook, None
            await hook()
        return etag


@dataclass
class Org:
    fake: FakeGitHub
    installation_id: int
    repos: list[GitRepo]
    refs: list[RepositoryRef]
    config: Settings
    storage: LocalStorage
    redis: ArqRedis

    def id(self, i: int) -> int:
        return self.refs[i].id

    async def push(self, i: int, trigger: str = "push") -> str:
        """What the webhook does for a push: enqueue a sync under a new generation."""
        request = SyncRequest(
            codebase_id=self.id(i),
            installation_id=self.installation_id,
            account=ORG,
            repository=self.refs[i],
            trigger=trigger,
        )
        _, job_id = await enqueue_sync(self.redis, request)
        return job_id

    async def enqueue(self, name: str, *args: dict[str, Any]) -> str:
        job = await self.redis.enqueue_job(name, *args)
        assert job is not None
        return job.job_id

    async def register(self) -> str:
        request = RegisterRequest(installation_id=self.installation_id, account=ORG)
        return await self.enqueue(REGISTER_REPOSITORIES, request.model_dump(mode="json"))

    async def run_worker(self, storage: Storage | None = None, **overrides: Any) -> Worker:
        """Run every queued job (and what they enqueue) in a burst worker, as deployed."""
        worker = Worker(
            **{
                **get_kwargs(worker_settings(self.config)),
                "burst": True,
                "poll_delay": 0,
                "handle_signals": False,
                "cron_jobs": [],
                "functions": [
                    *FUNCTIONS,
                    func(reconcile, name=RECONCILE),
                    func(recover_orphans, name=RECOVER_ORPHANS),
                ],
                "ctx": {
                    "settings": self.config,
                    "storage": storage or self.storage,
                    "retry_policy": FAST_RETRY,
                },
                **overrides,
            }
        )
        try:
            await worker.async_run()
        finally:
            await worker.close()
        return worker

    async def result(self, job_id: str) -> JobResult:
        info = await Job(job_id, self.redis, _deserializer=deserialize_job).result_info()
        assert info is not None, f"job {job_id} has no result"
        return info

    async def document(self, i: int, name: str) -> dict[str, Any]:
        stored = await self.storage.get(layout.codebase_document(self.id(i), name))
        assert stored is not None, f"{name} of repo {i} missing"
        return dict(json.loads(stored.data))

    async def overview(self, i: int) -> Overview:
        return Overview.model_validate(await self.document(i, "overview"))

    async def status(self, i: int) -> Status:
        return Status.model_validate(await self.document(i, "status"))

    async def etags(self, i: int) -> dict[str, str | None]:
        keys = await self.storage.list(f"analytics/{self.id(i)}/")
        return {key: getattr(await self.storage.get(key), "etag", None) for key in keys}

    async def org_files(self) -> tuple[OrgSummary, CodebasesList]:
        summary = await self.storage.get(layout.org_document(ORG.id, "org_summary"))
        listing = await self.storage.get(layout.org_document(ORG.id, "codebases_list"))
        assert summary is not None and listing is not None
        return (
            OrgSummary.model_validate_json(summary.data),
            CodebasesList.model_validate_json(listing.data),
        )


def build_repo(path: Path, i: int) -> GitRepo:
    repo = GitRepo.init(path)
    for n in range(i + 2):
        repo.commit(
            {f"src/mod{n}.py": "x = 1\n" * (n + 1)},
            message=f"commit {n}",
            author=(f"Dev {i}", f"dev{i}@example.com") if n % 2 else ("Alice", "alice@ex.com"),
        )
    return repo


@pytest.fixture
async def org(fake_github: FakeGitHub, redis: ArqRedis, redis_flushed: str, tmp_path: Path) -> Org:
    installation_id = fake_github.add_installation(ORG.login, ORG.id)
    repos, refs = [], []
    for i in range(3):
        repo = build_repo(tmp_path / f"repo{i}", i)
        data = fake_github.add_repository(installation_id, ORG.login, f"repo{i}", repo.path)
        repos.append(repo)
        refs.append(RepositoryRef.model_validate(data))
    config = Settings(
        github_app_id=fake_github.app_id,
        github_private_key=fake_github.private_key_pem,
        github_api_url=fake_github.base_url,
        redis_url=redis_flushed,
        storage_url=str(tmp_path / "storage"),
        work_dir=tmp_path / "work",
        worker_metrics_port=0,
    )
    storage = LocalStorage(tmp_path / "storage")
    return Org(fake_github, installation_id, repos, refs, config, storage, redis)


@pytest.fixture
async def synced(org: Org) -> Org:
    """The org registered and backfilled."""
    await org.register()
    worker = await org.run_worker()
    assert worker.jobs_failed == 0
    return org


def token_requests(fake: FakeGitHub) -> list[int]:
    return [r.status for r in fake.requests if r.path.endswith("/access_tokens")]
