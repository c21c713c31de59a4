"""A real browser for the dashboard's tests: the system's Chromium driven by Playwright.

Playwright's Python package is pointed at the Chromium the system installed (Debian's
`chromium`); it never downloads a browser of its own. Without Chromium the browser tests are
skipped with the reason, unless GITSTATS_REQUIRE_BROWSER is set (CI sets it, having installed
Chromium), where a missing browser is a failure rather than a quiet skip.

`Browsing` records what a page did that a user never should see: console errors, uncaught
exceptions, and any request that left the app's own origin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Headless, and none of Chromium's own calls home (the machine has no route out).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
]
# How the browser reports an HTTP error answer it was asked to load (the bad-token tests
# expect some): not a script error.
RESOURCE_ERROR = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


def chromium_path() -> str | None:
    given = os.environ.get("GITSTATS_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def need_browser() -> str:
    """The Chromium to drive; skips the test (fails it where one is required) if there is none."""
    path = chromium_path()
    problem = None
    if path is None:
        problem = (
            "no Chromium on this machine: install the system's package (Debian: "
            "`apt-get install chromium`) or set GITSTATS_CHROMIUM to its path to run the "
            "browser tests"
        )
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "Playwright's Python package is missing: pip install -e '.[test]'"
    if problem is not None:
        if os.environ.get("GITSTATS_REQUIRE_BROWSER"):
            pytest.fail(f"GITSTATS_REQUIRE_BROWSER is set, but {problem}")
        pytest.skip(problem)
    assert path is not None
    return path


@dataclass
class Browsing:
    """What the pages of one browser context did: problems a user would see or should not cause."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    # (url, status, the If-None-Match the page sent) of every answer
    answers: list[tuple[str, int, str | None]] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("request", self._request)
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        sent = response.request.headers.get("if-none-match")
        self.answers.append((response.url, response.status, sent))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _request(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin and parts.scheme not in (
            "data",
            "blob",
        ):
            self.foreign_requests.append(request.url)

    def script_errors(self, allowed_statuses: frozenset[int] = frozenset()) -> list[str]:
        """Console errors and exceptions, but for the browser's own line about an HTTP answer
        whose status is in `allowed_statuses`."""
        errors = list(self.page_errors)
        for text in self.console_errors:
            match = RESOURCE_ERROR.search(text)
            if match is None or int(match.group(1)) not in allowed_statuses:
                errors.append(text)
        return errors

    def assert_clean(self, allowed_statuses: frozenset[int] = frozenset()) -> None:
        assert not self.foreign_requests, f"requests left the app: {self.foreign_requests}"
        errors = self.script_errors(allowed_statuses)
        assert not errors, f"the console shows errors: {errors}"


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """A headless system Chromium under Playwright, for one test."""
    executable = need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def new_context(
    browser: Any, origin: str, settings: dict[str, str] | None = None, **options: Any
) -> tuple[Any, Browsing]:
    """A fresh browser context (empty storage) watched by a Browsing; `settings` are put in
    session storage (the dashboard's gitstats.* knobs: pollMs, pageSize, apiLimit) before any
    page script runs."""
    options.setdefault("locale", "en-US")
    options.setdefault("timezone_id", "UTC")
    options.setdefault("viewport", {"width": 1280, "height": 900})
    context = await browser.new_context(**options)
    context.set_default_timeout(30_000)
    if settings:
        lines = "".join(
            f"sessionStorage.setItem({_js(f'gitstats.{k}')}, {_js(v)});"
            for k, v in settings.items()
        )
        # about:blank, where a page starts, has no storage of its own: only the app's pages.
        await context.add_init_script(
            script=f"if (location.origin === {_js(origin)}) {{ {lines} }}"
        )
    browsing = Browsing(origin)
    context.on("page", browsing.watch)
    return context, browsing


def _js(text: str) -> str:
    return json.dumps(text)


def shown_int(text: str) -> int:
    """A number as the dashboard shows it (en-US grouping) back to an int."""
    cleaned = text.strip().replace(",", "")
    assert re.fullmatch(r"-?[0-9]+", cleaned), f"not a whole number: {text!r}"
    return int(cleaned)
