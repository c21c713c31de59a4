"""Every real payload of `@octokit/webhooks-examples`, correctly signed, is answered as our
router's table says: 202 with the jobs an event we handle asks for, else 200 and an empty queue.

The expectation is written out here, from the event, its action and the payload's ref, ref type
and `changes`; it does not ask the router.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contract.jobs import (
    PURGE_CODEBASE,
    PURGE_INSTALLATION,
    REFRESH_CODEBASE,
    REGISTER_REPOSITORIES,
    SET_INSTALLATION_SUSPENDED,
    SYNC_CODEBASE,
)
from service.app import create_app
from tests.support.deliveries import deliver, queued, webhook_settings

ROOT = Path(__file__).resolve().parent.parent
NPM_PREFIX = ROOT / ".cache" / "npm"
PACKAGE = "@octokit/webhooks-examples@^7"
EXAMPLES = NPM_PREFIX / "node_modules" / "@octokit" / "webhooks-examples"

# --- what the router asks for -----------------------------------------------------------------

Payload = dict[str, Any]
Expectation = Callable[[Payload], list[str]]


def always(*jobs: str) -> Expectation:
    return lambda payload: list(jobs)


# Tags add no commits: only branches are synced.
def sync_if_pushed_to_a_branch(payload: Payload) -> list[str]:
    return [SYNC_CODEBASE] if payload["ref"].startswith("refs/heads/") else []


def sync_if_a_branch(payload: Payload) -> list[str]:
    """A branch created or deleted (a create or delete delivery names its ref by type)."""
    return [SYNC_CODEBASE] if payload["ref_type"] == "branch" else []


def refresh_if_the_default_branch_changed(payload: Payload) -> list[str]:
    return [REFRESH_CODEBASE] if "default_branch" in payload.get("changes", {}) else []


def purge_each_removed(payload: Payload) -> list[str]:
    return [PURGE_CODEBASE] * len(payload["repositories_removed"])


# (event, action) → the names of the jobs enqueued; action None for events that have none.
# Any other event or action is answered 200 with nothing enqueued.
HANDLED: dict[tuple[str, str | None], Expectation] = {
    ("push", None): sync_if_pushed_to_a_branch,
    ("create", None): sync_if_a_branch,
    ("delete", None): sync_if_a_branch,
    ("installation", "created"): always(REGISTER_REPOSITORIES),
    ("installation", "deleted"): always(PURGE_INSTALLATION),
    ("installation", "suspend"): always(SET_INSTALLATION_SUSPENDED),
    ("installation", "unsuspend"): always(SET_INSTALLATION_SUSPENDED),
    ("installation_repositories", "added"): always(REGISTER_REPOSITORIES),
    ("installation_repositories", "removed"): purge_each_removed,
    ("repository", "renamed"): always(REFRESH_CODEBASE),
    ("repository", "transferred"): always(REFRESH_CODEBASE),
    ("repository", "archived"): always(REFRESH_CODEBASE),
    ("repository", "unarchived"): always(REFRESH_CODEBASE),
    ("repository", "privatized"): always(REFRESH_CODEBASE),
    ("repository", "publicized"): always(REFRESH_CODEBASE),
    ("repository", "edited"): refresh_if_the_default_branch_changed,
    ("repository", "deleted"): always(PURGE_CODEBASE),
}

# Examples of handled events that cannot ask for a job: each is answered 200 "payload lacks or
# mistypes <field>", the field named here. All of them were delivered to a repository's own
# webhook, not to a GitHub App, so they carry no `installation` (and no token could fetch it).
LACKING = {
    "api.github.com/repository/0": "installation",  # publicized
    "api.github.com/repository/4": "installation",  # edited: default_branch
    "api.github.com/repository/5": "installation",  # privatized
    "api.github.com/repository/6": "installation",  # privatized
    "api.github.com/repository/7": "installation",  # publicized
    "api.github.com/repository/8": "installation",  # publicized
    "api.github.com/repository/10": "installation",  # transferred
    "api.github.com/repository/12": "installation",  # transferred
    "ghes-34/repository/2": "installation",  # deleted
    "ghes-35/repository/2": "installation",  # deleted
}


def expected_jobs(event: str, payload: Payload) -> list[str]:
    """The names of the jobs the router enqueues for a well-formed delivery of `event`."""
    expectation = HANDLED.get((event, payload.get("action")))
    return [] if expectation is None else sorted(expectation(payload))


# --- the examples -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    name: str  # variant/event/index, e.g. api.github.com/push/4
    event: str
    payload: Payload


def install_examples() -> Path | None:
    """The package's folder, installed into NPM_PREFIX if missing; None without npm."""
    if not (EXAMPLES / "package.json").is_file():
        npm = shutil.which("npm")
        if npm is None:
            return None
        result = subprocess.run(
            [npm, "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund", PACKAGE],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm install {PACKAGE} failed:\n{result.stdout}{result.stderr}")
    return EXAMPLES


def load_examples(package: Path) -> list[Example]:
    # Each variant (api.github.com, ghes-3.x) has an index.json: [{name, examples: [...]}, ...].
    return [
        Example(f"{index.parent.name}/{webhook['name']}/{number}", webhook["name"], payload)
        for index in sorted(package.glob("*/index.json"))
        for webhook in json.loads(index.read_text())
        for number, payload in enumerate(webhook["examples"])
    ]


def example_cases() -> list[Any]:
    package = install_examples()
    if package is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason="npm is not on PATH"))]
    examples = load_examples(package)
    assert examples, f"no examples found under {package}"
    return [pytest.param(example, id=example.name) for example in examples]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """One app for every example; each test starts on an empty Redis (`redis_flushed`)."""
    app = create_app(webhook_settings(redis_url, tmp_path_factory.mktemp("examples")))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.asyncio(loop_scope="module")  # the loop of the module's one app
@pytest.mark.parametrize("example", example_cases())
async def test_example_is_answered_as_the_router_table_says(
    client: TestClient[web.Request, web.Application], redis_flushed: str, example: Example
) -> None:
    expected = expected_jobs(example.event, example.payload)
    lacking = LACKING.get(example.name)

    response = await deliver(client, example.event, example.payload)

    answer = await response.json()
    jobs = sorted(job.function for job in await queued(client))
    if lacking is not None:
        assert expected, f"{example.name} asks for nothing anyway: drop it from LACKING"
        assert (response.status, jobs) == (200, []), answer
        assert answer["result"] == f"payload lacks or mistypes {lacking}"
    elif expected:
        assert (response.status, jobs) == (202, expected), answer
        assert len(answer["jobs"]) == len(expected)
    else:
        assert (response.status, jobs) == (200, []), answer


def test_every_example_listed_as_lacking_exists() -> None:
    package = install_examples()
    if package is None:
        pytest.skip("npm is not on PATH")
    assert set(LACKING) <= {example.name for example in load_examples(package)}
