"""GitHub answering 5xx, or 429/403 with Retry-After or a rate limit's reset: the job comes back
after the time GitHub asks, not sooner, and nothing is half-applied meanwhile."""

from __future__ import annotations

import time

import pytest
from arq.constants import default_queue_name

from contract import registry
from tests.support.jobs import Org


async def deferred_by(org: Org, job_id: str) -> float:
    """Seconds from now until the queued job `job_id` may run again."""
    score = await org.redis.zscore(default_queue_name, job_id)
    assert score is not None, f"{job_id} is not queued"
    return score / 1000 - time.time()


@pytest.mark.parametrize("answer", ["429 Retry-After", "403 secondary limit", "rate limit reset"])
async def test_a_job_waits_as_long_as_github_asks(org: Org, answer: str) -> None:
    if answer == "429 Retry-After":
        org.fake.fail_next(r"/access_tokens$", status=429, retry_after=120)
    elif answer == "403 secondary limit":
        org.fake.fail_next(r"/access_tokens$", status=403, retry_after=120)
    else:
        org.fake.rate_limit_next(r"/access_tokens$", reset_in=120)
    job_id = await org.push(0)  # not registered yet: the sync asks GitHub first

    await org.run_worker(max_burst_jobs=1)

    assert 100 < await deferred_by(org, job_id) <= 150  # the test's own backoff is 0.01 s
    assert await registry.read_entry(org.storage, org.id(0)) is None  # nothing half-applied


async def test_a_5xx_is_retried_on_the_jobs_own_backoff(org: Org) -> None:
    org.fake.fail_next(r"/access_tokens$", status=502)
    job_id = await org.push(0)

    await org.run_worker(max_burst_jobs=1)

    assert await deferred_by(org, job_id) < 5
