"""Who asks, and whether they may see the codebase or org they name (404 when not: the API
never tells apart what does not exist from what is not theirs)."""

from __future__ import annotations

import re

from aiohttp import hdrs, web

from service.api.auth import Principal, bearer_token
from service.api.errors import BadParameter, NotFound
from service.api.state import API, ApiState

_ID = re.compile(r"[0-9]{1,18}")


async def authenticate(request: web.Request) -> tuple[ApiState, Principal]:
    """The API's state and the caller's principal; Unauthorized without a valid token."""
    api = request.app[API]
    token = bearer_token(request.headers.get(hdrs.AUTHORIZATION))
    return api, await api.principals.resolve(token)


def parse_id(raw: str, what: str) -> int:
    if _ID.fullmatch(raw) is None or (number := int(raw)) == 0:
        raise BadParameter(f"{what} id must be a positive whole number")
    return number


async def require_codebase(api: ApiState, principal: Principal, codebase_id: int) -> None:
    """NotFound unless the caller may see the codebase: an admin token, the repository's
    admin, or an admin of the org it is registered in."""
    if principal.sees_everything or codebase_id in principal.repo_admin:
        return
    if principal.orgs_admin:
        entry = await api.codebases.entry(codebase_id)
        if entry is not None and entry.org_id in principal.orgs_admin:
            return
    raise NotFound(f"no codebase {codebase_id}")


async def resolve_org(api: ApiState, principal: Principal, ref: str) -> int:
    """The id of the org `ref` (a login or an id) names, if the caller reaches it."""
    if _ID.fullmatch(ref) is not None:
        org_id: int | None = int(ref)
    elif principal.sees_everything:
        org_id = await api.orgs.org_id(ref)
    else:
        org_id = principal.orgs.get(ref.lower())
    if org_id is None or not principal.reaches_org(org_id):
        raise NotFound(f"no org {ref}")
    return org_id
