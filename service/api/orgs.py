"""GET /api/v1/orgs/{org}/analytics/...: an org's summary and its list of codebases.

A caller who sees the whole org (an admin token, an org admin) gets the exported org files.
Anyone else gets them computed over the codebases they administer, from the org's merge state
(one stored object); an org where they administer nothing is 404.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from contract import layout
from contract.org_state import OrgState, codebases_list, org_state_key, summarize
from service.api.access import authenticate, resolve_org
from service.api.answers import Rendering, document_answer
from service.api.auth import Principal
from service.api.errors import NotFound, api_handler
from service.api.pagination import page_request, paged
from service.api.reader import Decoder
from service.api.state import ApiState

PREFIX = "/api/v1/orgs/{org}/analytics"

ORG_STATE: Decoder[OrgState] = Decoder("org_state", OrgState.model_validate_json, 6)

routes = web.RouteTableDef()


def _visibility(principal: Principal) -> str:
    """A name for the set of codebases a partial view covers (part of ETags and cursors)."""
    ids = ",".join(str(i) for i in sorted(principal.repo_admin))
    return "repos:" + hashlib.sha256(ids.encode()).hexdigest()[:16]


def _visible(state: OrgState, principal: Principal, ref: str) -> set[int]:
    visible = {int(key) for key in state.codebases} & principal.repo_admin
    if not visible:
        raise NotFound(f"no org {ref}")
    return visible


def _as_of(state: OrgState, visible: set[int]) -> datetime:
    # The newest of the codebases shown, not the clock: the same state renders the same bytes.
    return max(state.codebases[str(i)].row.updated_at for i in visible)


Plan = Callable[[str], Rendering[Any]]


async def _org_answer(
    request: web.Request,
    api: ApiState,
    principal: Principal,
    name: str,
    whole: Callable[[str], Plan | None],
    partial: Callable[[str], Plan],
) -> web.Response:
    """The org file `name` for a caller who sees the whole org, rendered by `whole(key)`;
    else what `partial(key)` renders from the org's merge state."""
    ref = request.match_info["org"]
    org_id = await resolve_org(api, principal, ref)
    if principal.sees_whole_org(org_id):
        key = layout.org_document(org_id, name)
        answer = await document_answer(request, api, key, whole(key))
    elif principal.repo_admin:
        key = org_state_key(org_id)
        answer = await document_answer(request, api, key, partial(key))
    else:
        answer = None
    if answer is None:
        raise NotFound(f"no org {ref}")
    return answer


@routes.get(PREFIX + "/summary")
@api_handler
async def summary(request: web.Request) -> web.Response:
    api, principal = await authenticate(request)
    ref = request.match_info["org"]

    def render(state: OrgState) -> bytes:
        visible = _visible(state, principal, ref)
        return summarize(state, visible, _as_of(state, visible)).to_json()

    def partial(key: str) -> Plan:
        # Only a partial view needs its visibility's name (a hash): not a whole-org poll.
        rendering = Rendering(_visibility(principal), ORG_STATE, render)
        return lambda _version: rendering

    return await _org_answer(request, api, principal, "org_summary", lambda _key: None, partial)


@routes.get(PREFIX + "/codebases")
@api_handler
async def codebases(request: web.Request) -> web.Response:
    api, principal = await authenticate(request)
    ref = request.match_info["org"]
    pages = page_request(request.query)

    def prepare(state: OrgState) -> dict[str, Any]:
        visible = _visible(state, principal, ref)
        return codebases_list(state, visible, _as_of(state, visible)).model_dump(mode="json")

    def partial(key: str) -> Plan:
        scope = _visibility(principal)
        return paged(pages, key, "codebases", scope=scope, decoder=ORG_STATE, prepare=prepare)

    return await _org_answer(
        request,
        api,
        principal,
        "codebases_list",
        lambda key: paged(pages, key, "codebases"),
        partial,
    )
