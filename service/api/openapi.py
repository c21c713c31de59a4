"""GET /api/openapi.json: the OpenAPI 3.1 document of the read API, its schemas generated from
the pydantic models that the worker exports and the API answers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contract.documents import OrgSummary, Overview, Status, Teams
from service.api import codebases, orgs
from service.api.answers import etag_matches, json_answer, not_modified
from service.api.models import (
    ActivitySeries,
    BranchesPage,
    CodebasesPage,
    ContributorActivityPage,
    ErrorBody,
    OwnershipPage,
    PathsPage,
)
from service.api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from service.api.state import OPENAPI, OpenApiDocument

PATH = "/api/openapi.json"

routes = web.RouteTableDef()


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _parameter(where: str, name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return _parameter("query", name, description, schema)


ORG = _parameter("path", "org", "The org's login or numeric id.", {"type": "string"})
CODEBASE_ID = _parameter(
    "path",
    "id",
    "The codebase id (the GitHub repository id).",
    {"type": "integer", "minimum": 1},
)
IF_NONE_MATCH = _parameter(
    "header",
    "If-None-Match",
    "An ETag from an earlier answer: 304 if the answer would be the same.",
    {"type": "string"},
)
PAGE = (
    _query(
        "limit",
        "Items per page.",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    _query(
        "cursor",
        "The `next_cursor` of the previous page. Opaque; one cut from an older version of the "
        "document starts over at the first page.",
        {"type": "string"},
    ),
)
ACTIVITY = (
    _query(
        "granularity",
        "The series to answer.",
        {"type": "string", "enum": ["week", "month"], "default": "week"},
    ),
    _query("since", "Keep periods that end after this day.", {"type": "string", "format": "date"}),
    _query(
        "until",
        "Keep periods that start on or before this day.",
        {"type": "string", "format": "date"},
    ),
)

_ETAG_HEADER = {"description": "Changes whenever the answer does.", "schema": {"type": "string"}}
_RETRY_HEADER = {
    "description": "Seconds to wait before asking again.",
    "schema": {"type": "integer"},
}

PATHS = (
    _query(
        "prefix",
        "The directory whose direct children are listed, written from the root (`lib` and "
        "`lib/` alike; `\\\\` for a backslash, `\\xNN` for a byte outside UTF-8); empty: the "
        "root. A directory the history never had is 404.",
        {"type": "string", "default": ""},
    ),
    _query(
        "sort",
        "Most first: churn (lines added and deleted), hotspot (recent commits x lines at the "
        "head) or recent (commits in the 90 days before the head); ties by path.",
        {"type": "string", "enum": ["churn", "hotspot", "recent"], "default": "churn"},
    ),
)


@dataclass(frozen=True)
class Endpoint:
    path: str
    operation_id: str
    summary: str
    model: type[BaseModel]
    parameters: tuple[dict[str, Any], ...] = ()
    pending: bool = False  # a codebase document: 202 before the codebase's first export


ENDPOINTS = (
    Endpoint(
        orgs.PREFIX + "/summary",
        "getOrgSummary",
        "Totals of the org's codebases (those the caller sees).",
        OrgSummary,
        (ORG,),
    ),
    Endpoint(
        orgs.PREFIX + "/codebases",
        "listOrgCodebases",
        "Every registered codebase of the org the caller sees, with its state.",
        CodebasesPage,
        (ORG, *PAGE),
    ),
    Endpoint(
        codebases.PREFIX + "/overview",
        "getCodebaseOverview",
        "Totals, snapshot and languages of one codebase.",
        Overview,
        (CODEBASE_ID,),
        True,
    ),
    Endpoint(
        codebases.PREFIX + "/branches",
        "listCodebaseBranches",
        "The codebase's branches, the default one first.",
        BranchesPage,
        (CODEBASE_ID, *PAGE),
        True,
    ),
    Endpoint(
        codebases.PREFIX + "/activity",
        "getCodebaseActivity",
        "Weekly or monthly activity, and the punch card.",
        ActivitySeries,
        (CODEBASE_ID, *ACTIVITY),
        True,
    ),
    Endpoint(
        codebases.PREFIX + "/ownership",
        "listCodebaseContributors",
        "Contributors sorted by churn.",
        OwnershipPage,
        (CODEBASE_ID, *PAGE),
        True,
    ),
    Endpoint(
        codebases.PREFIX + "/contributors/activity",
        "listCodebaseContributorActivity",
        "Each person's authored work week by week, sorted by authored churn.",
        ContributorActivityPage,
        (CODEBASE_ID, *PAGE),
        True,
    ),
    Endpoint(
        codebases.PREFIX + "/paths",
        "listCodebasePaths",
        "A directory's own figures and its direct children's, sorted and paginated.",
        PathsPage,
        (CODEBASE_ID, *PATHS, *PAGE),
        True,
    ),
    Endpoint(
        codebases.PREFIX + "/teams",
        "getCodebaseTeams",
        "Each CODEOWNERS owner's files at the default head and their figures, and the files"
        " nobody owns.",
        Teams,
        (CODEBASE_ID,),
        True,
    ),
    Endpoint(
        codebases.PREFIX + "/status",
        "getCodebaseStatus",
        "The state of the codebase's analysis runs.",
        Status,
        (CODEBASE_ID,),
        True,
    ),
)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json(_ref(ErrorBody))}
    if headers:
        response["headers"] = headers
    return response


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "The document.",
            "headers": {"ETag": _ETAG_HEADER},
            "content": _json(_ref(endpoint.model)),
        },
    }
    if endpoint.pending:
        responses["202"] = {
            "description": "The codebase is registered but not exported yet: its status.",
            "headers": {"ETag": _ETAG_HEADER, "Retry-After": _RETRY_HEADER},
            "content": _json(_ref(Status)),
        }
    responses |= {
        "304": {
            "description": "Not modified since If-None-Match.",
            "headers": {"ETag": _ETAG_HEADER},
        },
        "400": _error("A parameter is malformed."),
        "401": _error(
            "No valid token.",
            {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
        ),
        "404": _error("No such org or codebase, or the caller may not see it."),
        "500": _error("A stored document is over the size cap or unreadable."),
        "503": _error("Storage or GitHub unavailable.", {"Retry-After": _RETRY_HEADER}),
    }
    return {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "parameters": [*endpoint.parameters, IF_NONE_MATCH],
        "responses": responses,
    }


def _health(operation_id: str, summary: str, extra: dict[str, Any]) -> dict[str, Any]:
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": [],
            "responses": {"200": {"description": "OK", "content": _json(status)}} | extra,
        }
    }


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the read API."""
    models: list[type[BaseModel]] = [e.model for e in ENDPOINTS] + [ErrorBody]
    _, top = models_json_schema(
        [(model, "serialization") for model in dict.fromkeys(models)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, Any] = {e.path: {"get": _operation(e)} for e in ENDPOINTS}
    paths[PATH] = {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document.",
            "security": [],
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}
            },
        }
    }
    paths["/healthz"] = _health("getHealth", "The process is alive.", {})
    paths["/readyz"] = _health(
        "getReadiness",
        "Redis and storage are reachable.",
        {"503": {"description": "Redis or storage unreachable."}},
    )
    paths["/metrics"] = {
        "get": {
            "operationId": "getMetrics",
            "summary": "This process's metrics in Prometheus' text format.",
            "security": [],
            "responses": {
                "200": {
                    "description": "Prometheus text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gitstats read API",
            "version": "1",
            "description": "Live git analytics of a GitHub organisation's repositories. Every "
            "document answer carries an ETag; send it back as If-None-Match to poll cheaply.",
        },
        "paths": paths,
        "components": {
            "schemas": top["$defs"],
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin token, or a GitHub user access token of the App.",
                }
            },
        },
        "security": [{"bearer": []}],
    }


def openapi_document() -> OpenApiDocument:
    body = json.dumps(build_openapi(), separators=(",", ":")).encode()
    return OpenApiDocument(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


@routes.get(PATH)
async def openapi(request: web.Request) -> web.Response:
    document = request.app[OPENAPI]
    if etag_matches(request.headers.get(hdrs.IF_NONE_MATCH), document.etag):
        return not_modified(document.etag)
    return json_answer(document.body, document.etag)
