"""The read API: org and codebase analytics for the frontend to poll, and its OpenAPI document.

`state` holds the caches and lookups, `auth` and `access` who may see what, `reader` and
`answers` the path from a stored document to an answer with its ETag, `pagination` the
cursors; `orgs`, `codebases` and `openapi` are the routes.
"""

from aiohttp import web

from service.api import codebases, openapi, orgs
from service.api.state import API_LIMITS, OPENAPI, ApiLimits, api_state
from service.keys import SETTINGS


def setup(app: web.Application) -> None:
    """Register this area's routes, and its state once storage and HTTP session are up."""
    app[API_LIMITS] = ApiLimits.from_settings(app[SETTINGS])
    app[OPENAPI] = openapi.openapi_document()
    # Appended after app.py's contexts, so the shared storage and session exist by then.
    app.cleanup_ctx.append(api_state)
    for area in (orgs, codebases, openapi):
        app.add_routes(area.routes)
