"""The dashboard's files as the web app serves them: which addresses answer, with what headers,
and that nothing in them loads from anywhere but the app (the browser tests drive the pages)."""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from service import ui
from service.app import create_app
from worker.serve import dashboard_link

Client = TestClient[web.Request, web.Application]
PAGES = ["/ui/", "/ui/signin", "/ui/orgs/acme", "/ui/orgs/Some-Org", "/ui/codebases/42"]


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    app = web.Application()
    ui.setup(app)
    return await aiohttp_client(app)


def test_the_web_app_serves_the_dashboard() -> None:
    from contract.settings import Settings

    app = create_app(Settings(storage_url="/nonexistent"))
    routes = {r.canonical for r in app.router.resources()}
    assert {"/", "/ui/", "/ui/assets/{name}", "/ui/codebases/{id}"} <= routes


async def test_the_root_leads_to_the_dashboard(client: Client) -> None:
    for path in ("/", "/ui"):
        async with client.get(path, allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/ui/"


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_is_the_one_document_with_a_strict_policy(
    client: Client, path: str
) -> None:
    async with client.get(path) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        body = await response.text()
        policy = response.headers["Content-Security-Policy"]
        etag = response.headers["ETag"]
    assert '<script type="module" src="/ui/assets/app.js">' in body
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "img-src", "connect-src"):
        assert directives[directive] == "'self'", directive
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "unsafe" not in policy
    async with client.get(path, headers={"If-None-Match": etag}) as again:
        assert again.status == 304
        assert again.headers["Content-Security-Policy"] == policy


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("app.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("dom.js", "text/javascript"),
        ("app.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ],
)
async def test_assets_are_served_with_their_type(client: Client, name: str, kind: str) -> None:
    async with client.get(f"/ui/assets/{name}") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == f"{kind}; charset=utf-8"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert await response.read() == (ui.STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/ui/assets/index.html",
        "/ui/assets/missing.js",
        "/ui/assets/..%2F__init__.py",
        "/ui/assets/%2e%2e%2fapp.js",
        "/ui/codebases/abc",
        "/ui/orgs/acme/extra",
        "/ui/elsewhere",
    ],
)
async def test_anything_else_is_not_found(client: Client, path: str) -> None:
    async with client.get(path) as response:
        assert response.status == 404


def test_nothing_is_loaded_from_elsewhere() -> None:
    """No address outside the app in any file: the policy would block it, and a page that
    needs one would be broken. (SVG's namespace is a name, not a request.)"""
    files = sorted(ui.STATIC.iterdir())
    assert {p.name for p in files} >= {"index.html", "app.js", "app.css"}
    for path in files:
        text = path.read_text("utf-8")
        text = text.replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9]", text), path.name
        # No inline script or style for the policy to refuse.
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), "an inline script"
            assert "<style" not in text and "style=" not in text, "an inline style"


def test_every_file_the_page_names_is_served() -> None:
    index = (ui.STATIC / "index.html").read_text("utf-8")
    named = set(re.findall(r'"/ui/assets/([^"]+)"', index))
    for script in ui.STATIC.glob("*.js"):
        named |= set(re.findall(r'from "\./([^"]+)"', script.read_text("utf-8")))
    served = set(ui.load_static()) - {"index.html"}
    assert named == served, (named, served)


def test_the_demo_prints_a_link_that_signs_in() -> None:
    link = dashboard_link("http://localhost:8080", "tok-en_1", demo=True)
    assert link == "http://localhost:8080/ui/#token=tok-en_1&org=local"
    # The token only ever rides in the fragment, which a browser does not send.
    assert "?" not in link
    assert dashboard_link("http://localhost:8080", "t", demo=False) == (
        "http://localhost:8080/ui/#token=t"
    )
    assert "ADMIN_TOKENS" in dashboard_link("http://localhost:8080", None, demo=True)
