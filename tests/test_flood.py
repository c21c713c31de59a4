"""A flood of pushes (DESIGN.md, "Faults"): 1,000 signed push deliveries across 20 repositories
in a few seconds end in documents equal to git's, with a queue that stays bounded because
pushes to a codebase join its queued sync. Marked `fault`: `pytest -m fault` runs it alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from arq.constants import default_queue_name

from tests.support.documents import assert_equals_a_clean_run
from tests.support.gitrepos import GitRepo, git_commit_count
from tests.support.stack import ORG_ID, ORG_LOGIN, Stack, add_repo

pytestmark = pytest.mark.fault

REPOSITORIES = 20
PUSHES = 1000


async def test_a_thousand_pushes_across_twenty_repositories(stack: Stack, tmp_path: Path) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID)
    repos: dict[int, GitRepo] = {}
    for i in range(REPOSITORIES):
        repo = GitRepo.init(tmp_path / "repos" / f"r{i:02d}")
        repo.commit({"README.md": f"repository {i}\n"})
        repos[add_repo(fake, installation_id, f"r{i:02d}", repo)] = repo
    await stack.start_workers(2)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, list(repos), "selected")
        await stack.settle(repos)

        deepest = 0
        ids = list(repos)
        for n in range(PUSHES):
            cid = ids[n % REPOSITORIES]
            repo = repos[cid]
            before = repo.head("main")
            if n % 10 == 0:  # one push in ten brings a commit; the rest repeat the head
                repo.commit({f"src/f{n}.txt": f"push {n}\n"}, message=f"push {n}")
            await stack.push(installation_id, cid, "main", before, repo.head("main"))
            deepest = max(deepest, await stack.redis.zcard(default_queue_name))
        snapshot = await stack.settle(repos)

    # Coalesced: a queued sync per codebase at most, plus what the workers run and retry.
    assert deepest <= 2 * REPOSITORIES, deepest
    for cid, repo in repos.items():
        assert snapshot.overviews[cid]["total_commits"] == git_commit_count(repo.path)
    await assert_equals_a_clean_run(
        stack.storage, ids[0], repos[ids[0]].path, tmp_path / "clean", full_name=f"{ORG_LOGIN}/r00"
    )
