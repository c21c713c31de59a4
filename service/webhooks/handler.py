"""The one endpoint GitHub delivers to: verify, record, enqueue, nothing more.

No GitHub API calls and no storage access happen here, so the answer takes milliseconds;
the jobs do the rest. Secrets, signatures and tokens never reach a log line or an answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from arq.connections import ArqRedis
from gidgethub import BadRequest, ValidationFailure, sansio
from gidgethub.routing import Router
from pydantic import AliasPath, BaseModel, Field, ValidationError
from redis.exceptions import RedisError

from contract.jobs import DELIVERY_TTL_S, Account, RepositoryRef, SyncRequest
from contract.logs import log_context
from contract.redis_keys import delivery_key
from service.keys import REDIS, SETTINGS
from service.metrics import METRICS

log = logging.getLogger(__name__)

ROUTER = web.AppKey("webhook_router", Router)

# Anything Redis can throw at us (refused, reset, timed out, loading, read-only, out of memory):
# the delivery fails with 503 and GitHub can redeliver it.
REDIS_FAILURES = (RedisError, OSError)

# GitHub gives up on a delivery after 10 s; a Redis that stops answering must not hold us longer.
REDIS_DEADLINE_S = 5.0

routes = web.RouteTableDef()

# Events GitHub sends an App like this one; any other X-GitHub-Event counts as "other".
KNOWN_EVENTS = frozenset(
    {
        "ping",
        "push",
        "create",
        "delete",
        "installation",
        "installation_repositories",
        "installation_target",
        "repository",
        "github_app_authorization",
    }
)


class DeliveryRejected(Exception):
    """A delivery that is not GitHub's, or not well formed; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Jobs:
    """What every event handler gets: enqueues the jobs one delivery asks for."""

    redis: ArqRedis
    delivery_id: str
    enqueued: list[str] = field(default_factory=list)

    async def enqueue(self, name: str, arguments: BaseModel | dict[str, Any]) -> None:
        """Enqueue job `name` with one JSON argument."""
        if isinstance(arguments, BaseModel):
            arguments = arguments.model_dump(mode="json")
        job = await self.redis.enqueue_job(name, arguments)
        if job is not None:  # arq answers None only for a job id already taken
            self.record(name, job.job_id)

    def record(self, name: str, job_id: str) -> None:
        """Count job `job_id` (of job `name`) as enqueued for this delivery."""
        self.enqueued.append(job_id)
        log.info("delivery %s: enqueued %s as %s", self.delivery_id, name, job_id)


class InstallationId(BaseModel):
    id: int


class RepositoryPayload(BaseModel):
    """What push, create, delete and repository deliveries name: the codebase and its org."""

    installation: InstallationId
    repository: RepositoryRef
    owner: Account = Field(validation_alias=AliasPath("repository", "owner"))

    def sync_request(self, trigger: str) -> SyncRequest:
        return SyncRequest(
            codebase_id=self.repository.id,
            installation_id=self.installation.id,
            account=self.owner,
            repository=self.repository,
            trigger=trigger,
        )


def check_headers(headers: Mapping[str, str]) -> None:
    """DeliveryRejected (400 or 401) unless the headers are a GitHub delivery's: checked before
    the body is read, so that a request that cannot be one costs nothing to refuse."""
    if not headers.get("X-GitHub-Event") or not headers.get("X-GitHub-Delivery"):
        raise DeliveryRejected(400, "missing X-GitHub-Event or X-GitHub-Delivery header")
    # gidgethub falls back to the SHA-1 header, and takes "sha1=" in the SHA-256 one: refuse both.
    if not headers.get("X-Hub-Signature-256", "").startswith("sha256="):
        raise DeliveryRejected(401, "missing X-Hub-Signature-256 (HMAC-SHA256) signature")


def verify_delivery(headers: Mapping[str, str], body: bytes, secret: str) -> sansio.Event:
    """The event GitHub signed with `secret`, or DeliveryRejected (400 or 401)."""
    check_headers(headers)
    try:
        event = sansio.Event.from_http(headers, body, secret=secret)
    except ValidationFailure as exc:
        raise DeliveryRejected(401, "signature does not match the payload") from exc
    except BadRequest as exc:
        raise DeliveryRejected(400, "body is not a JSON payload") from exc
    if not isinstance(event.data, dict):
        raise DeliveryRejected(400, "body is not a JSON object")
    return event


async def _read_body(request: web.Request) -> bytes:
    """The body, refused (413) past the size GitHub sends at most, as announced or as read, and
    (408) when it does not arrive within the deadline: a slow sender holds no handler long."""
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise DeliveryRejected(413, f"body over {limit} bytes")
    try:
        async with asyncio.timeout(request.app[SETTINGS].webhook_read_timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise DeliveryRejected(413, f"body over {limit} bytes") from None
    except TimeoutError:
        raise DeliveryRejected(408, "the body did not arrive in time") from None


def _answer(status: int, delivery_id: str | None, result: str, **extra: Any) -> web.Response:
    return web.json_response({"delivery": delivery_id, "result": result, **extra}, status=status)


@routes.post("/webhooks/github")
async def receive_delivery(request: web.Request) -> web.Response:
    """Verify a delivery, record its id and enqueue what it asks for; count the answer."""
    delivery_id = request.headers.get("X-GitHub-Delivery")
    with log_context(delivery_id=delivery_id):
        response = await _receive(request, delivery_id)
    event = request.headers.get("X-GitHub-Event", "")
    # The label takes only names we know: a header is not allowed to grow the metric.
    label = event if event in KNOWN_EVENTS else "other"
    request.app[METRICS].webhooks.labels(event=label, status=str(response.status)).inc()
    return response


async def _receive(request: web.Request, delivery_id: str | None) -> web.Response:
    secret = request.app[SETTINGS].github_webhook_secret
    if secret is None:
        log.error("delivery %s refused: no usable GITHUB_WEBHOOK_SECRET", delivery_id)
        return _answer(
            503,
            delivery_id,
            "GITHUB_WEBHOOK_SECRET is unset or too short: no delivery can be verified",
        )
    try:
        check_headers(request.headers)
        body = await _read_body(request)
    except DeliveryRejected as exc:
        log.warning("delivery %s refused (%d): %s", delivery_id, exc.status, exc.reason)
        return _answer(exc.status, delivery_id, exc.reason)
    try:
        event = verify_delivery(request.headers, body, secret.get_secret_value())
    except DeliveryRejected as exc:
        log.warning("delivery %s refused (%d): %s", delivery_id, exc.status, exc.reason)
        return _answer(exc.status, delivery_id, exc.reason)

    if event.event == "ping":
        log.info("delivery %s: ping", event.delivery_id)
        return _answer(200, event.delivery_id, "pong")
    name = f"{event.event}.{event.data['action']}" if "action" in event.data else event.event
    router = request.app[ROUTER]
    if not router.fetch(event):
        log.info("delivery %s: %s not handled", event.delivery_id, name)
        return _answer(200, event.delivery_id, "not handled")

    jobs = Jobs(request.app[REDIS], event.delivery_id)
    try:
        async with asyncio.timeout(REDIS_DEADLINE_S):
            if not await _record(jobs.redis, event.delivery_id):
                log.info("delivery %s: %s already received", event.delivery_id, name)
                return _answer(200, event.delivery_id, "already received")
            await _dispatch(router, event, jobs)
    except REDIS_FAILURES as exc:
        log.error("delivery %s: %s failed, Redis unavailable: %r", event.delivery_id, name, exc)
        return _answer(503, event.delivery_id, "queue unavailable; redeliver later")
    except ValidationError as exc:
        where = ", ".join(".".join(map(str, error["loc"])) for error in exc.errors())
        log.warning("delivery %s: %s lacks or mistypes %s", event.delivery_id, name, where)
        return _answer(200, event.delivery_id, f"payload lacks or mistypes {where}")
    if not jobs.enqueued:
        log.info("delivery %s: %s asks for nothing", event.delivery_id, name)
        return _answer(200, event.delivery_id, "nothing to do")
    return _answer(202, event.delivery_id, "queued", jobs=jobs.enqueued)


async def _record(redis: ArqRedis, delivery_id: str) -> bool:
    """Remember the delivery id; False if it was already seen."""
    return bool(await redis.set(delivery_key(delivery_id), 1, nx=True, ex=DELIVERY_TTL_S))


async def _dispatch(router: Router, event: sansio.Event, jobs: Jobs) -> None:
    """Run the event's handlers; if they fail, forget the delivery so a redelivery runs them."""
    try:
        await router.dispatch(event, jobs)
    except ValidationError:
        raise  # the payload is wrong: a redelivery would be the same payload
    except BaseException:
        await asyncio.shield(_forget(jobs.redis, event.delivery_id))
        raise


async def _forget(redis: ArqRedis, delivery_id: str) -> None:
    try:
        async with asyncio.timeout(REDIS_DEADLINE_S):
            await redis.delete(delivery_key(delivery_id))
    except REDIS_FAILURES as exc:
        log.error("delivery %s stays recorded, a redelivery will be ignored: %r", delivery_id, exc)
