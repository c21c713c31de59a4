"""GET /api/v1/codebases/{id}/analytics/...: one codebase's documents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import hdrs, web

from contract import layout
from contract.documents import (
    WEEKS_DIGEST,
    RunState,
    Status,
    contributor_activity_row,
)
from contract.paths import display_path, raw_path
from service.api.access import authenticate, parse_id, require_codebase
from service.api.answers import (
    Rendering,
    answer_etag,
    document_answer,
    json_answer,
)
from service.api.errors import BadParameter, NotFound, StoredDocumentInvalid, api_handler
from service.api.models import Granularity
from service.api.pagination import page_request, paged
from service.api.reader import JSON_LIST, JSON_OBJECT, RAW
from service.api.state import ApiState

PREFIX = "/api/v1/codebases/{id}/analytics"

routes = web.RouteTableDef()


# Given the document's storage key, how to render it (None: as stored). Called once the
# caller is authenticated, so that a bad parameter is a 400 only for a valid token.
Planner = Callable[[str], Callable[[str], Rendering[Any]]]


async def _codebase_answer(
    request: web.Request, name: str, planner: Planner | None = None
) -> web.Response:
    """The codebase's document `name`; 202 with its status before its first export."""
    api, principal = await authenticate(request)
    codebase_id = parse_id(request.match_info["id"], "codebase")
    key = layout.codebase_document(codebase_id, name)
    # Parameters are checked before visibility: a bad one is 400 whichever codebase it names.
    plan = None if planner is None else planner(key)
    await require_codebase(api, principal, codebase_id)
    answer = await document_answer(request, api, key, plan)
    if answer is None:
        answer = await _pending(api, codebase_id)
    return answer


async def _pending(api: ApiState, codebase_id: int) -> web.Response:
    """202 with the status of a registered codebase not exported yet; 404 if not registered."""
    entry = await api.codebases.entry(codebase_id)
    if entry is None:
        raise NotFound(f"no codebase {codebase_id}")
    key = layout.codebase_document(codebase_id, "status")
    info = await api.reader.probe(key)
    stored = None if info is None else await api.reader.load(key, info, RAW)
    if stored is not None:
        body, etag = stored.content, answer_etag(key, stored.info.version, "pending")
        try:
            state = json.loads(body).get("state")
        except (ValueError, AttributeError):
            state = None
    else:
        state = RunState.QUEUED
        body = Status(
            codebase_id=codebase_id, state=state, updated_at=entry.registered_at
        ).to_json()
        registry_key = layout.registry_entry(codebase_id)
        etag = answer_etag(registry_key, entry.registered_at.isoformat(), "pending")
    limits = api.limits
    retry = limits.failed_retry_after if state == RunState.FAILED else limits.pending_retry_after
    return json_answer(body, etag, status=202, headers={hdrs.RETRY_AFTER: str(retry)})


def _pages(request: web.Request, list_name: str) -> Planner:
    return lambda key: paged(page_request(request.query), key, list_name)


@routes.get(PREFIX + "/overview")
@api_handler
async def overview(request: web.Request) -> web.Response:
    return await _codebase_answer(request, "overview")


@routes.get(PREFIX + "/status")
@api_handler
async def status(request: web.Request) -> web.Response:
    return await _codebase_answer(request, "status")


@routes.get(PREFIX + "/branches")
@api_handler
async def branches(request: web.Request) -> web.Response:
    return await _codebase_answer(request, "branches", _pages(request, "branches"))


@routes.get(PREFIX + "/ownership")
@api_handler
async def ownership(request: web.Request) -> web.Response:
    return await _codebase_answer(request, "ownership", _pages(request, "contributors"))


@routes.get(PREFIX + "/contributors/activity")
@api_handler
async def contributor_activity(request: web.Request) -> web.Response:
    """A page of contributor_activity: the stored index's people (ContributorActivityIndex),
    each with the weeks object it names."""
    api, principal = await authenticate(request)
    codebase_id = parse_id(request.match_info["id"], "codebase")
    page = page_request(request.query)
    await require_codebase(api, principal, codebase_id)
    key = layout.codebase_document(codebase_id, "contributor_activity")

    async def with_weeks(answer: dict[str, Any]) -> dict[str, Any]:
        entries = answer["contributors"]
        rows = await asyncio.gather(*(_with_weeks(api, codebase_id, key, e) for e in entries))
        return answer | {"contributors": rows}

    plan = paged(page, key, "contributors", finish=with_weeks)
    for _attempt in range(WEEKS_ATTEMPTS):
        try:
            answer = await document_answer(request, api, key, plan)
        except _WeeksGone:
            # A push replaced the index since it was read and deleted what only that one named.
            await api.reader.recheck(key)
            continue
        return answer if answer is not None else await _pending(api, codebase_id)
    raise StoredDocumentInvalid(key, "the weeks objects it names are not stored")


# How many times a page of contributor_activity is read again when the weeks objects its index
# names are gone (each time, a push replaced the index meanwhile).
WEEKS_ATTEMPTS = 3


class _WeeksGone(Exception):
    pass


async def _with_weeks(api: ApiState, codebase_id: int, key: str, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise StoredDocumentInvalid(key, "a contributor is not an object")
    if "weeks_sha256" not in entry and isinstance(entry.get("weeks"), list):
        return entry  # stored before the weeks were objects of their own
    digest = entry.get("weeks_sha256")
    if not isinstance(digest, str) or WEEKS_DIGEST.fullmatch(digest) is None:
        raise StoredDocumentInvalid(key, "a contributor names no weeks object")
    weeks = await api.reader.load_named(layout.contributor_weeks(codebase_id, digest), JSON_LIST)
    if weeks is None:
        raise _WeeksGone
    return contributor_activity_row(entry, weeks)


@routes.get(PREFIX + "/activity")
@api_handler
async def activity(request: web.Request) -> web.Response:
    def planner(key: str) -> Callable[[str], Rendering[Any]]:
        granularity, since, until = activity_filter(request.query)

        def render(document: dict[str, Any]) -> bytes:
            return render_activity(document, key, granularity, since, until)

        rendering = Rendering(f"activity:{granularity}:{since}:{until}", JSON_OBJECT, render)
        return lambda _version: rendering

    return await _codebase_answer(request, "activity", planner)


@routes.get(PREFIX + "/teams")
@api_handler
async def teams(request: web.Request) -> web.Response:
    return await _codebase_answer(request, "teams")


@routes.get(PREFIX + "/paths")
@api_handler
async def paths(request: web.Request) -> web.Response:
    """The direct children of a directory, sorted and paginated; 404 for a directory the
    history never had (once the codebase is exported)."""
    api, principal = await authenticate(request)
    codebase_id = parse_id(request.match_info["id"], "codebase")
    prefix, sort = paths_query(request.query)
    page = page_request(request.query)
    await require_codebase(api, principal, codebase_id)
    key = layout.codebase_document(codebase_id, layout.paths_document(prefix))
    plan = paged(
        page,
        key,
        "paths",
        scope=f"sort={sort}",
        prepare=lambda document: sort_paths(document, sort),
    )
    answer = await document_answer(request, api, key, plan)
    if answer is not None:
        return answer
    if await api.reader.probe(layout.codebase_document(codebase_id, "overview")) is not None:
        raise NotFound(f"no directory {prefix!r} in codebase {codebase_id}")
    return await _pending(api, codebase_id)


PATH_SORTS = {
    "churn": lambda entry: entry["additions_lines"] + entry["deletions_lines"],
    "hotspot": lambda entry: entry["hotspot"],
    "recent": lambda entry: entry["recent_commits"],
}


def paths_query(query: Mapping[str, str]) -> tuple[str, str]:
    """The directory (its text, as contract/paths.py writes it, without surrounding slashes)
    and the sort; BadParameter if either is malformed."""
    sort = query.get("sort", "churn")
    if sort not in PATH_SORTS:
        raise BadParameter("sort must be churn, hotspot or recent")
    try:
        raw = raw_path(query.get("prefix", "").strip("/"))
    except ValueError as exc:
        raise BadParameter(f"prefix: {exc}") from None
    return display_path(raw), sort


def sort_paths(document: dict[str, Any], sort: str) -> dict[str, Any]:
    """The document with its children sorted by `sort`, most first, ties by path."""
    entries = document.get("paths")
    if not isinstance(entries, list):
        return document
    measure = PATH_SORTS[sort]
    ordered = sorted(entries, key=lambda e: (-measure(e), raw_path(e["path"])))
    return document | {"paths": ordered}


# --- Activity -------------------------------------------------------------------------------


def _day(name: str, raw: str | None) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadParameter(f"{name} must be an ISO date such as 2024-01-31") from None
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def activity_filter(query: Mapping[str, str]) -> tuple[Granularity, date | None, date | None]:
    raw = query.get("granularity", Granularity.WEEK.value)
    try:
        granularity = Granularity(raw)
    except ValueError:
        raise BadParameter("granularity must be week or month") from None
    since, until = _day("since", query.get("since")), _day("until", query.get("until"))
    if since is not None and until is not None and since > until:
        raise BadParameter("since is after until")
    return granularity, since, until


def _period_end(start: date, granularity: Granularity) -> date:
    if granularity is Granularity.WEEK:
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def render_activity(
    document: dict[str, Any],
    key: str,
    granularity: Granularity,
    since: date | None,
    until: date | None,
) -> bytes:
    """The series of one granularity, keeping the periods that overlap since..until."""
    series = document.get("weekly" if granularity is Granularity.WEEK else "monthly")
    if not isinstance(series, list):
        raise StoredDocumentInvalid(key, f"it has no {granularity.value} series")
    periods = []
    for period in series:
        try:
            start = date.fromisoformat(period["period_start"])
        except (TypeError, KeyError, ValueError):
            raise StoredDocumentInvalid(key, "a period has no period_start date") from None
        if (until is None or start <= until) and (
            since is None or _period_end(start, granularity) > since
        ):
            periods.append(period)
    answer = {
        "schema_version": document.get("schema_version"),
        "codebase_id": document.get("codebase_id"),
        "granularity": granularity.value,
        "since": None if since is None else since.isoformat(),
        "until": None if until is None else until.isoformat(),
        "periods": periods,
        "punch_card": document.get("punch_card", []),
        "generated_at": document.get("generated_at"),
    }
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
