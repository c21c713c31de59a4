"""The built-in dashboard: `GET /` and `/ui/...`, static files that use the read API.

Every page of the dashboard (`/ui/`, `/ui/signin`, `/ui/orgs/{org}`, `/ui/codebases/{id}`) is the
same `index.html`; the script in `static/` reads the address and draws the page from the API,
as any frontend would. The files are read once, when the app is made, and answered from memory
with a strong ETag. Nothing is loaded from anywhere but this app, which the
Content-Security-Policy enforces.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web
from multidict import CIMultiDict

from service.api.answers import etag_matches

STATIC = Path(__file__).with_name("static")
ASSETS = "/ui/assets/"
# Only the app's own scripts, styles and pictures, and requests to the app itself; no inline
# script or style, no plugin, no frame, no form posted elsewhere, no <base> to redirect them.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The token travels in a page's address only as a fragment, which is never sent, and the
    # pages link nowhere else; still, no address leaves in a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(?:js|css|svg)")
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str

    @classmethod
    def read(cls, path: Path) -> StaticFile:
        body = path.read_bytes()
        kind = f"{_TYPES[path.suffix]}; charset=utf-8"
        return cls(body, kind, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def answer(self, request: web.Request) -> web.Response:
        headers = CIMultiDict(SECURITY_HEADERS)
        headers["ETag"] = self.etag
        # Revalidated on every load (a 304 is cheap), so a new release is seen at once.
        headers[hdrs.CACHE_CONTROL] = "no-cache"
        if etag_matches(request.headers.get(hdrs.IF_NONE_MATCH), self.etag):
            return web.Response(status=304, headers=headers)
        headers[hdrs.CONTENT_TYPE] = self.content_type
        return web.Response(body=self.body, headers=headers)


def load_static(folder: Path = STATIC) -> dict[str, StaticFile]:
    """The dashboard's files by name: `index.html` and the assets."""
    files = {"index.html": StaticFile.read(folder / "index.html")}
    for path in sorted(folder.iterdir()):
        if _ASSET_NAME.fullmatch(path.name):
            files[path.name] = StaticFile.read(path)
    return files


UI_FILES = web.AppKey("ui_files", dict)


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


async def page(request: web.Request) -> web.Response:
    """Any page of the dashboard: the one HTML document, which draws the page it is at."""
    files: dict[str, StaticFile] = request.app[UI_FILES]
    return files["index.html"].answer(request)


async def asset(request: web.Request) -> web.Response:
    files: dict[str, StaticFile] = request.app[UI_FILES]
    found = files.get(request.match_info["name"])
    if found is None or request.match_info["name"] == "index.html":
        raise web.HTTPNotFound(text="no such file of the dashboard")
    return found.answer(request)


def setup(app: web.Application) -> None:
    app[UI_FILES] = load_static()
    app.router.add_get("/", root)
    app.router.add_get("/ui", root)
    app.router.add_get(ASSETS + "{name}", asset)
    # The pages the script draws; anything else under /ui/ is a 404 of the app, not the page.
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/signin", page)
    app.router.add_get("/ui/orgs/{org}", page)
    app.router.add_get("/ui/codebases/{id:[0-9]{1,19}}", page)
