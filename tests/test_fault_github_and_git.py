"""GitHub answering 5xx and 429 with Retry-After, and a git server that stops answering
(DESIGN.md, "Faults"), under the real worker processes: the jobs come back no sooner than GitHub
asked, a stalled fetch ends at its timeout instead of holding a worker, and the documents end as
a clean run's. Marked `fault`: `pytest -m fault` runs them alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.documents import assert_equals_a_clean_run
from tests.support.fake_github import FakeGitHub, RecordedRequest
from tests.support.gitrepos import GitRepo, git_commit_count
from tests.support.stack import ORG_ID, ORG_LOGIN, NotYet, Stack, add_repo

pytestmark = pytest.mark.fault

# The workers' own backoff, short, so that a wait of RETRY_AFTER_S can only be GitHub's.
RETRY_BASE_S = "0.05"
RETRY_AFTER_S = 2.0
# A fetch waits this long for each read from the git server (120 s in production).
FETCH_IO_TIMEOUT_S = "1"


def make_org(fake: FakeGitHub, root: Path, count: int) -> tuple[int, dict[int, GitRepo]]:
    """An installation on the org and `count` repositories it may read: (its id, the repos)."""
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID)
    repos = {}
    for i in range(count):
        repo = GitRepo.init(root / f"r{i}")
        for n in range(12):
            repo.commit({f"src/f{n % 5}.py": f"x = {n}\n" * (n + 1)}, message=f"c{n}")
        repos[add_repo(fake, installation_id, f"r{i}", repo)] = repo
    return installation_id, repos


async def push_a_commit(stack: Stack, installation_id: int, cid: int, repo: GitRepo) -> None:
    before = repo.head("main")
    repo.commit({"late.py": "late\n"}, message="late")
    await stack.push(installation_id, cid, "main", before, repo.head("main"))


async def assert_clean(stack: Stack, repos: dict[int, GitRepo], root: Path) -> None:
    """Every codebase counts every commit of its repository, and its documents are a clean
    run's."""
    settled = await stack.settle(repos)
    for i, (cid, repo) in enumerate(repos.items()):
        assert settled.overviews[cid]["total_commits"] == git_commit_count(repo.path)
        await assert_equals_a_clean_run(
            stack.storage, cid, repo.path, root / f"clean{i}", full_name=f"{ORG_LOGIN}/r{i}"
        )


def first_after(requests: list[RecordedRequest], answer: RecordedRequest) -> RecordedRequest:
    """The first request to the same path that arrived after `answer`'s."""
    later = [r for r in requests if r.path == answer.path and r.received_at > answer.received_at]
    assert later, f"{answer.path} was not asked again after its {answer.status}"
    return min(later, key=lambda r: r.received_at)


async def test_github_5xx_and_429_are_retried_no_sooner_than_asked(
    stack: Stack, tmp_path: Path
) -> None:
    fake = stack.fake
    installation_id, repos = make_org(fake, tmp_path / "repos", 2)
    # Registering asks for a token, then for each repository: faults on both.
    fake.fail_next(r"/access_tokens$", status=502, times=2)
    fake.fail_next(r"/access_tokens$", status=429, retry_after=RETRY_AFTER_S)
    fake.fail_next(r"^/repositories/\d+$", status=502)
    await stack.start_workers(2, retry_base_s=RETRY_BASE_S)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, list(repos), "selected")
        await assert_clean(stack, repos, tmp_path / "install")

        answers = [(r.path.rsplit("/", 1)[-1], r.status) for r in fake.requests if r.status >= 500]
        assert answers.count(("access_tokens", 502)) == 2, answers
        assert sum(1 for _, status in answers if status == 502) == 3, answers
        (limited,) = [r for r in fake.requests if r.status == 429]
        retry = first_after(fake.requests, limited)
        assert retry.received_at - limited.received_at >= RETRY_AFTER_S, (limited, retry)

        # A push while GitHub's git host answers 502 once.
        cid, repo = next(iter(repos.items()))
        fake.fail_next(r"/info/refs$", status=502)
        await push_a_commit(stack, installation_id, cid, repo)
        await assert_clean(stack, repos, tmp_path / "push")

    assert [r.status for r in fake.requests if r.path.endswith("/info/refs")].count(502) == 1


async def test_a_stalled_git_server_costs_a_timeout_not_a_worker(
    stack: Stack, tmp_path: Path
) -> None:
    fake = stack.fake
    installation_id, repos = make_org(fake, tmp_path / "repos", 1)
    ((cid, repo),) = repos.items()
    await stack.start_workers(1, fetch_io_timeout_s=FETCH_IO_TIMEOUT_S, retry_base_s=RETRY_BASE_S)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, [cid], "selected")
        await stack.settle(repos)

        fake.stall_git()
        await push_a_commit(stack, installation_id, cid, repo)

        async def held() -> None:
            if not fake.git_requests_held:
                raise NotYet("no git request held yet")

        await stack.wait_for("the sync's fetch to reach the stalled server", held)

        async def retrying() -> dict[str, Any]:
            status = await stack.document(cid, "status")
            error = (status or {}).get("last_error") or {}
            message = error.get("message") or ""
            if status is None or status["state"] != "queued" or "retrying" not in message:
                raise NotYet(f"status {status and status['state']}: {message!r}")
            return status

        # Still stalled: only the fetch's own timeout can have ended it.
        status = await stack.wait_for("the stalled fetch to time out", retrying)
        assert "timed out" in status["last_error"]["message"], status
        fake.resume_git()
        await assert_clean(stack, repos, tmp_path / "clean")

    # The held request's client had gone by the time the server answered.
    assert 499 in {r.status for r in fake.requests if r.path.endswith("/info/refs")}
