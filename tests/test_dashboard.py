"""The dashboard in a real browser (the system's Chromium), against the whole service.

The pages are read as a person sees them and compared with what the read API answers the same
token; a push to GitHub (the fake) must reach the open page without a reload; a bad token must
say so; the pages must pass axe-core's accessibility rules, work at a phone's width and by
keyboard, load nothing from elsewhere and log no error to the console.

With GITSTATS_SCREENSHOTS=FOLDER, the first test also saves what README shows.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe

from contract import layout
from contract.registry import CodebaseEntry, write_entry
from tests.support.browser import new_context, shown_int
from tests.support.gitrepos import GitRepo
from tests.support.stack import ADMIN_TOKEN, ORG_ID, ORG_LOGIN, NotYet, Stack, add_repo

pytestmark = pytest.mark.browser

ALICE = ("Alice Liddell", "alice@example.com")
BOB = ("Bob Builder", "bob@example.com")
CAROL = ("Carol Danvers", "carol@example.com")
BOT = ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")
# Fast polls, and pages of two so that every list is paged through the API.
SETTINGS = {"pollMs": "200", "pageSize": "2", "apiLimit": "2"}
# What the browser prints for an HTTP error answer the page asked for: expected when a token
# is refused or an org is unknown, an error of the page otherwise.
REFUSED = frozenset({401, 404})


def build_alpha(path: Path) -> GitRepo:
    """A codebase with people, directories, owners, a bot, a merged and a live branch."""
    repo = GitRepo.init(path)
    repo.commit(
        {
            ".github/CODEOWNERS": "/src/ @acme/core\n/docs/ @acme/docs\n",
            "src/app.py": "".join(f"line {i}\n" for i in range(40)),
            "docs/guide.md": "# Guide\n\nRead me.\n",
        },
        "start",
        ALICE,
        "2025-01-06T09:00:00Z",
    )
    for month in range(2, 9):
        who = (ALICE, BOB, CAROL)[month % 3]
        repo.commit(
            {
                f"src/lib/mod{month % 4}.py": "".join(f"v{month} {i}\n" for i in range(month * 3)),
                "src/app.py": "".join(f"line {i} m{month}\n" for i in range(40 + month)),
            },
            f"work of month {month}",
            who,
            f"2025-{month:02d}-{10 + month:02d}T{8 + month}:30:00+02:00",
        )
    repo.commit({"package.json": '{"name": "alpha"}\n'}, "bump", BOT, "2025-08-20T03:00:00Z")
    repo.branch("topic")
    repo.checkout("topic")
    repo.commit({"docs/topic.md": "a topic\n"}, "topic", BOB, "2025-08-21T10:00:00Z")
    repo.checkout("main")
    repo.merge("topic", message="merge topic", author=ALICE, date="2025-08-22T10:00:00Z")
    repo.branch("feature")
    repo.checkout("feature")
    repo.commit({"src/feature.py": "f = 1\n"}, "feature", CAROL, "2025-08-23T10:00:00Z")
    repo.checkout("main")
    return repo


def build_small(path: Path, name: str, commits: int) -> GitRepo:
    repo = GitRepo.init(path)
    for n in range(commits):
        repo.commit(
            {f"{name}/mod{n % 2}.py": "".join(f"{name} {i}\n" for i in range(n + 1))},
            f"{name} {n}",
            (BOB, CAROL)[n % 2],
            f"2025-03-{n + 1:02d}T12:00:00Z",
        )
    return repo


async def org_with_codebases(stack: Stack, tmp_path: Path) -> tuple[int, dict[int, GitRepo]]:
    """An installation of three repositories, backfilled (provenance included)."""
    installation_id = stack.fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    built = [
        ("alpha", build_alpha(tmp_path / "alpha")),
        ("beta", build_small(tmp_path / "beta", "beta", 3)),
        ("gamma", build_small(tmp_path / "gamma", "gamma", 5)),
    ]
    by_id = {add_repo(stack.fake, installation_id, name, repo): repo for name, repo in built}
    await stack.start_workers(1)
    await stack.install(installation_id, list(by_id), "all")
    await stack.settle(by_id)
    return installation_id, by_id


# --- reading the page ------------------------------------------------------------------------

ROWS_JS = """(id) => [...document.querySelectorAll(`#${id} tbody tr`)]
  .filter((tr) => tr.querySelector('[data-col]'))
  .map((tr) => Object.fromEntries([...tr.querySelectorAll('[data-col]')]
    .map((cell) => [cell.getAttribute('data-col'), cell.textContent.trim()])))"""


async def rows(page: Any, table_id: str) -> list[dict[str, str]]:
    return list(await page.evaluate(ROWS_JS, table_id))


async def tile(page: Any, key: str, within: str) -> str:
    return str(await page.locator(f"#{within} [data-tile='{key}']").inner_text())


async def api(stack: Stack, path: str) -> dict[str, Any]:
    status, body, _ = await stack.api(path)
    assert status == 200, (path, status, body)
    return dict(body)


async def api_pages(stack: Stack, path: str, list_name: str, limit: int = 2) -> list[list[Any]]:
    """Every page of a paged answer, as the API cuts them."""
    pages, cursor = [], None
    while True:
        sep = "&" if "?" in path else "?"
        suffix = f"{sep}limit={limit}" + ("" if cursor is None else f"&cursor={cursor}")
        body = await api(stack, path + suffix)
        pages.append(body[list_name])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


FIRST_CELL_IS = """([id, column, want]) => {
  const cell = document.querySelector(`#${id} tbody tr [data-col="${column}"]`);
  return cell !== null && cell.textContent.trim() === want;
}"""


async def wait_rows(page: Any, table_id: str, first: str, column: str) -> list[dict[str, str]]:
    """The table's rows once its first row shows `first` in `column` (a redraw landed)."""
    await page.wait_for_function(FIRST_CELL_IS, arg=[table_id, column, first])
    return await rows(page, table_id)


async def assert_tiles(page: Any, within: str, document: dict[str, Any], keys: list[str]) -> None:
    for key in keys:
        value: Any = document
        for part in key.split("."):
            value = value[part]
        assert shown_int(await tile(page, key, within)) == value, key


async def check_axe(page: Any, what: str) -> None:
    results = await Axe().run(page)
    assert results.violations_count == 0, f"{what}: {results.generate_report()}"


async def save_screenshots(browser: Any, origin: str, codebase_id: int) -> None:
    """README's pictures, when GITSTATS_SCREENSHOTS names a folder: the org and codebase pages
    as a person first sees them (default settings), and the codebase page at a phone's width."""
    folder = os.environ.get("GITSTATS_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, width, path, ready in [
        ("org", 1280, f"/ui/orgs/{ORG_LOGIN}", "#hotspots-table tbody tr"),
        ("codebase", 1280, f"/ui/codebases/{codebase_id}", "#teams-table tbody tr"),
        ("phone", 390, f"/ui/codebases/{codebase_id}", "#teams-table tbody tr"),
    ]:
        context, _ = await new_context(browser, origin, viewport={"width": width, "height": 844})
        page = await context.new_page()
        await page.goto(f"{origin}/ui/#token={ADMIN_TOKEN}&org={ORG_LOGIN}")
        await page.wait_for_selector("#codebases-table tbody tr")
        await page.goto(f"{origin}{path}")
        await page.wait_for_selector(ready)
        shot = Path(folder) / f"dashboard-{name}.png"
        await page.screenshot(path=str(shot), full_page=width > 400)
        await context.close()


# --- the tests -----------------------------------------------------------------------------------


async def test_pages_show_the_apis_numbers_and_a_push_without_a_reload(
    chromium: Any, stack: Stack, tmp_path: Path
) -> None:
    installation_id, repos = await org_with_codebases(stack, tmp_path)
    alpha_id = next(cid for cid, repo in repos.items() if repo.path.name.startswith("alpha"))
    alpha = repos[alpha_id]
    origin = str(stack.client.make_url("")).rstrip("/")
    context, browsing = await new_context(chromium, origin, SETTINGS)
    page = await context.new_page()
    with stack.worker_logs_on_failure():
        # The demo's kind of link signs in, and the token leaves the address at once.
        await page.goto(f"{origin}/ui/#token={ADMIN_TOKEN}&org={ORG_LOGIN}")
        await page.wait_for_selector("#codebases-table tbody tr [data-col='full_name']")
        assert page.url == f"{origin}/ui/orgs/{ORG_LOGIN}"

        # --- the org page: tiles, languages and the whole list, walked through the API's pages
        summary = await api(stack, f"/api/v1/orgs/{ORG_LOGIN}/analytics/summary")
        await assert_tiles(
            page,
            "org-tiles",
            summary,
            ["total_codebases", "total_commits", "total_contributors", "additions_lines",
             "deletions_lines", "total_churn", "total_lines", "authored.commits",
             "authored.contributors"],
        )  # fmt: skip
        legend = await page.locator("#org-languages [data-label]").evaluate_all(
            "(items) => items.map((i) => i.getAttribute('data-label'))"
        )
        assert legend == [language["language"] for language in summary["languages"]][: len(legend)]
        listed = [
            row
            for chunk in await api_pages(stack, f"/api/v1/orgs/{ORG_LOGIN}/analytics/codebases",
                                         "codebases")
            for row in chunk
        ]  # fmt: skip
        assert len(listed) == 3
        by_commits = sorted(listed, key=lambda r: -r["total_commits"])
        shown = await rows(page, "codebases-table")
        assert len(shown) == 2  # pages of two
        assert await page.locator("#codebases [data-role='page']").inner_text() == "Page 1 of 2"
        await page.get_by_role("button", name="Next").click()
        shown += await wait_rows(page, "codebases-table", by_commits[2]["full_name"], "full_name")
        assert [r["full_name"] for r in shown] == [r["full_name"] for r in by_commits]
        for row, expected in zip(shown, by_commits, strict=True):
            for key in ("total_commits", "total_contributors", "total_branches", "total_churn",
                        "total_lines"):  # fmt: skip
                assert shown_int(row[key]) == expected[key], (row, key)
            assert row["state"] == expected["state"]
        # Sorted by name with the keyboard: the header's button, then Enter.
        await page.locator("#codebases-table button.sort", has_text="Codebase").focus()
        await page.keyboard.press("Enter")
        by_name = sorted(r["full_name"] for r in listed)
        first_page = await wait_rows(page, "codebases-table", by_name[0], "full_name")
        assert [r["full_name"] for r in first_page] == by_name[:2]
        # The redrawn table keeps the keyboard where it was.
        focused = await page.evaluate("document.activeElement.getAttribute('data-focus')")
        assert focused == "sort:full_name"
        header = page.locator("#codebases-table th", has_text="Codebase")
        assert await header.get_attribute("aria-sort") == "ascending"

        # --- the codebase page, reached by its link
        await page.get_by_role("link", name=f"{ORG_LOGIN}/alpha").first.click()
        await page.wait_for_selector("#overview-tiles [data-tile='total_commits']")
        assert page.url == f"{origin}/ui/codebases/{alpha_id}"
        base = f"/api/v1/codebases/{alpha_id}/analytics"
        overview = await api(stack, f"{base}/overview")
        assert (await page.locator("h1").inner_text()).startswith(overview["full_name"])
        await assert_tiles(
            page,
            "overview-tiles",
            overview,
            ["total_commits", "total_contributors", "additions_lines", "deletions_lines",
             "total_churn", "net_sloc", "total_lines", "total_files", "total_bytes",
             "total_branches", "merge_commits", "authored.commits", "authored.contributors",
             "authored.additions_lines", "authored.deletions_lines"],
        )  # fmt: skip
        assert overview["authored"]["commits"] < overview["total_commits"]  # the bot's
        assert (
            await page.locator("#status [data-state]").first.get_attribute("data-state")
            == "succeeded"
        )

        # Activity: the table under the chart is the API's series, week and month.
        for granularity in ("week", "month"):
            if granularity == "month":
                await page.get_by_role("radio", name="Month").check()
            series = (await api(stack, f"{base}/activity?granularity={granularity}"))["periods"]
            newest = series[-1]["period_start"]
            shown_periods = await wait_rows(page, "activity-table", newest, "period_start")
            assert [r["period_start"] for r in shown_periods] == [
                p["period_start"] for p in reversed(series)
            ]
            for row, period in zip(shown_periods, reversed(series), strict=True):
                for key in ("commits", "additions_lines", "deletions_lines", "contributors"):
                    assert shown_int(row[key]) == period[key], (granularity, row, key)
        punch = (await api(stack, f"{base}/activity"))["punch_card"]
        dots = await page.locator("#punch-card circle").evaluate_all(
            "(cs) => cs.map((c) => [+c.dataset.weekday, +c.dataset.hour, +c.dataset.commits])"
        )
        assert sorted(dots) == sorted([c["weekday"], c["hour"], c["commits"]] for c in punch)

        # Contributors, paged through the API: page 2 is the API's page 2.
        people = await api_pages(stack, f"{base}/ownership", "contributors")
        assert len(people) >= 2
        first_people = await rows(page, "contributors-table")
        assert [r["name"] for r in first_people] == [shown_name(p) for p in people[0]]
        await page.locator("#contributors").get_by_role("button", name="Next").click()
        second = await wait_rows(page, "contributors-table", shown_name(people[1][0]), "name")
        assert [r["name"] for r in second] == [shown_name(p) for p in people[1]]
        for row, person in zip([*first_people, *second], [*people[0], *people[1]], strict=True):
            for key in ("commits", "additions_lines", "deletions_lines",
                        "authored_additions_lines", "authored_deletions_lines"):  # fmt: skip
                assert shown_int(row[key]) == person[key], (row, key)
            if person["surviving_lines"] is not None:
                assert shown_int(row["surviving_lines"]) == person["surviving_lines"]

        # Branches.
        branch_rows = (await api_pages(stack, f"{base}/branches", "branches"))[0]
        shown_branches = await rows(page, "branches-table")
        assert [r["name"].split()[0] for r in shown_branches] == [b["name"] for b in branch_rows]
        for row, branch in zip(shown_branches, branch_rows, strict=True):
            assert (shown_int(row["ahead"]), shown_int(row["behind"])) == (
                branch["ahead"],
                branch["behind"],
            )
            assert row["merged"] == ("yes" if branch["merged"] else "no")

        # Paths: the root, then into src/ by keyboard, then sorted by hotspot.
        root = (await api_pages(stack, f"{base}/paths?prefix=&sort=churn", "paths"))[0]
        shown_paths = await rows(page, "paths-table")
        assert [r["path"].rstrip("/") for r in shown_paths] == [p["path"] for p in root]
        await page.locator("#paths-table button", has_text="src/").focus()
        await page.keyboard.press("Enter")
        inside = (await api_pages(stack, f"{base}/paths?prefix=src&sort=churn", "paths"))[0]
        shown_inside = await wait_rows(page, "paths-table", _child_name(inside[0], "src"), "path")
        assert [r["path"].rstrip("/") for r in shown_inside] == [
            _child_name(p, "src") for p in inside
        ]
        # The keyboard lands on where the explorer now is.
        here = await page.evaluate(
            "((e) => [e.getAttribute('aria-current'), e.textContent])(document.activeElement)"
        )
        assert here == ["location", "src"]
        for row, entry in zip(shown_inside, inside, strict=True):
            for key in ("commits", "additions_lines", "deletions_lines", "hotspot"):
                assert shown_int(row[key]) == entry[key], (row, key)
        await page.get_by_label("Sort by").select_option("hotspot")
        hot = (await api_pages(stack, f"{base}/paths?prefix=src&sort=hotspot", "paths"))[0]
        await page.wait_for_function(
            "() => document.querySelector('#paths-table caption').textContent.includes('hotspot')"
        )
        assert [r["path"].rstrip("/") for r in await rows(page, "paths-table")] == [
            _child_name(p, "src") for p in hot
        ]

        # Teams, from CODEOWNERS, with the unowned row last.
        teams = await api(stack, f"{base}/teams")
        shown_teams = await rows(page, "teams-table")
        assert [r["owner"] for r in shown_teams] == [
            *(t["owner"] for t in teams["teams"]),
            "(unowned)",
        ]
        for row, team in zip(shown_teams, [*teams["teams"], teams["unowned"]], strict=True):
            assert (shown_int(row["files"]), shown_int(row["lines"])) == (
                team["files"],
                team["lines"],
            )

        await check_axe(page, "the codebase page, every section drawn")

        # Code age, once provenance is known.
        assert overview["code_age"] is not None
        age = await page.locator("#code-age svg").get_attribute("aria-label")
        for bucket in overview["code_age"]:
            assert f"{bucket['lines']:,}" in str(age)

        # --- a push lands on the open page, without a reload
        await page.evaluate("window.stayed = true")
        before = alpha.head("main")
        alpha.commit({"src/app.py": "rewritten\n"}, "rewrite", CAROL, "2025-09-01T10:00:00Z")
        await stack.push(installation_id, alpha_id, "main", before, alpha.head("main"))
        after = await stack.api_until(
            f"{base}/overview", "total_commits", overview["total_commits"] + 1
        )
        await page.wait_for_function(
            "(want) => document.querySelector(\"#overview-tiles [data-tile='total_commits']\")"
            ".textContent.trim() === want",
            arg=f"{after['total_commits']:,}",
        )
        assert await page.evaluate("window.stayed") is True
        await assert_tiles(
            page, "overview-tiles", after, ["total_lines", "additions_lines", "deletions_lines"]
        )
        assert "updated" in await page.locator("#live").inner_text()
        # It polled by asking again with the ETag it had, and was answered 304.
        api_answers = [a for a in browsing.answers if "/api/v1/" in a[0]]
        revalidated = [a for a in api_answers if a[1] == 304]
        assert revalidated and all(a[2] for a in revalidated)
        assert len(revalidated) > len(api_answers) / 2, "most polls should cost a 304"
        browsing.assert_clean()

        # The explorer's place is in the address; a directory that is not there (a link from
        # before a force-push) falls back to the root and says so.
        assert page.url == f"{origin}/ui/codebases/{alpha_id}?path=src"
        await page.goto(f"{origin}/ui/codebases/{alpha_id}?path=no/such/dir")
        note = page.locator("#paths [role='status']")
        await note.wait_for()
        assert "There is no directory no/such/dir" in await note.inner_text()
        root_now = (await api_pages(stack, f"{base}/paths?prefix=&sort=churn", "paths"))[0]
        assert [r["path"].rstrip("/") for r in await rows(page, "paths-table")] == [
            p["path"] for p in root_now
        ]
        assert page.url == f"{origin}/ui/codebases/{alpha_id}"
        browsing.assert_clean(allowed_statuses=frozenset({404}))

        # A phone's width: nothing wider than the screen but the tables' own scroll areas.
        phone, phone_browsing = await new_context(
            chromium, origin, SETTINGS, viewport={"width": 390, "height": 844}
        )
        small = await phone.new_page()
        await small.goto(f"{origin}/ui/#token={ADMIN_TOKEN}&org={ORG_LOGIN}")
        await small.wait_for_selector("#codebases-table tbody tr [data-col='full_name']")
        await assert_fits(small)
        await small.goto(f"{origin}/ui/codebases/{alpha_id}")
        await small.wait_for_selector("#teams-table tbody tr")
        await assert_fits(small)
        phone_browsing.assert_clean()
        await phone.close()
        await save_screenshots(chromium, origin, alpha_id)
    await context.close()


def shown_name(person: dict[str, Any]) -> str:
    """A contributor's name as the table shows it: bots carry a badge."""
    return str(person["name"]) + (" bot" if person["is_bot"] else "")


def _child_name(entry: dict[str, Any], prefix: str) -> str:
    return str(entry["path"])[len(prefix) + 1 :]


async def assert_fits(page: Any) -> None:
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page is wider than the screen: {widths}"


async def test_a_bad_token_is_told_clearly(chromium: Any, stack: Stack) -> None:
    origin = str(stack.client.make_url("")).rstrip("/")
    context, browsing = await new_context(chromium, origin, SETTINGS)
    page = await context.new_page()
    # Not signed in: any page leads to the sign-in form.
    await page.goto(f"{origin}/ui/orgs/{ORG_LOGIN}")
    await page.wait_for_selector("form.signin")
    assert page.url == f"{origin}/ui/signin"
    await page.get_by_label("Token").fill("not-a-token-of-ours")
    await page.get_by_label("Organisation").fill(ORG_LOGIN)
    await page.get_by_role("button", name="Sign in").click()
    message = page.locator("#signin-message")
    await page.wait_for_function("() => document.querySelector('#signin-message').textContent")
    text = await message.inner_text()
    assert "not accepted" in text and "401" in text, text
    assert await page.evaluate("sessionStorage.getItem('gitstats.token')") is None
    # A good token for an org it cannot see is told apart from a bad token.
    await page.get_by_label("Token").fill(ADMIN_TOKEN)
    await page.get_by_label("Organisation").fill("no-such-org")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_function(
        "() => document.querySelector('#signin-message').textContent.includes('no-such-org')"
    )
    assert "sees no organisation" in await message.inner_text()
    await check_axe(page, "the sign-in page with a message")
    if os.environ.get("GITSTATS_SCREENSHOTS"):
        folder = Path(os.environ["GITSTATS_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(folder / "dashboard-signin.png"))
    # A link carrying a token the API refuses lands on the form, saying why.
    await page.goto(f"{origin}/ui/#token=revoked-token&org={ORG_LOGIN}")
    await page.wait_for_function(
        "() => (document.querySelector('#signin-message') || {}).textContent"
    )
    assert "Your token was not accepted" in await message.inner_text()
    assert page.url == f"{origin}/ui/signin"
    assert "revoked-token" not in page.url
    browsing.assert_clean(allowed_statuses=REFUSED)
    await context.close()


async def test_a_backfill_shows_its_progress_then_its_figures(
    chromium: Any, stack: Stack, tmp_path: Path
) -> None:
    installation_id = stack.fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    repo = build_small(tmp_path / "delta", "delta", 4)
    codebase_id = add_repo(stack.fake, installation_id, "delta", repo)
    origin = str(stack.client.make_url("")).rstrip("/")
    context, browsing = await new_context(chromium, origin, SETTINGS)
    page = await context.new_page()
    await page.goto(f"{origin}/ui/#token={ADMIN_TOKEN}")
    # Not registered yet (GitHub's event has not come): the page says so, and keeps asking.
    await page.goto(f"{origin}/ui/codebases/{codebase_id}")
    await page.wait_for_selector("#notice h1")
    assert "Nothing to show" in await page.locator("#notice h1").inner_text()
    await page.evaluate("window.stayed = true")
    # Registered, not analyzed yet (no worker runs): the API answers 202 with the status.
    now = datetime.now(UTC)
    entry = CodebaseEntry(
        codebase_id=codebase_id,
        org_id=ORG_ID,
        org_login=ORG_LOGIN,
        installation_id=installation_id,
        full_name=f"{ORG_LOGIN}/delta",
        clone_url=stack.fake.repository(codebase_id)["clone_url"],
        registered_at=now,
        updated_at=now,
    )
    await write_entry(stack.storage, entry)

    async def pending() -> None:
        # The API remembers a missing codebase for a few seconds (its registry_ttl).
        status, _, _ = await stack.api(f"/api/v1/codebases/{codebase_id}/analytics/overview")
        if status != 202:
            raise NotYet(f"the overview answers {status}")

    await stack.wait_for("the API to answer 202", pending)
    await page.wait_for_selector("#pending h2")
    assert await page.locator("#pending h2").inner_text() == "Being analyzed"
    assert await page.locator("#dashboard").is_hidden()
    assert await page.locator("#notice").inner_text() == ""
    # The status a worker writes while it extracts: the page shows its progress.
    status = {
        "schema_version": 3,
        "codebase_id": codebase_id,
        "state": "running",
        "phase": "extract",
        "progress": {"done": 3, "total": 10},
        "notices": [],
        "refs": {},
        "updated_at": "2026-01-01T00:00:00Z",
    }
    await stack.storage.put(
        layout.codebase_document(codebase_id, "status"), json.dumps(status).encode()
    )
    bar = page.locator("#pending progress")
    await bar.wait_for()
    assert (await bar.get_attribute("value"), await bar.get_attribute("max")) == ("3", "10")
    assert "3 of 10" in await page.locator("#pending").inner_text()
    await check_axe(page, "a codebase being analyzed")
    # GitHub's installation event and a worker: the backfill runs, and its figures replace
    # the progress in the same page.
    await stack.start_workers(1)
    await stack.install(installation_id, [codebase_id], "all")
    with stack.worker_logs_on_failure():
        await page.wait_for_selector("#overview-tiles [data-tile='total_commits']", timeout=60_000)
    overview = await api(stack, f"/api/v1/codebases/{codebase_id}/analytics/overview")
    assert shown_int(await tile(page, "total_commits", "overview-tiles")) == 4
    assert overview["total_commits"] == 4
    assert await page.evaluate("window.stayed") is True
    assert await page.locator("#pending").inner_text() == ""
    await check_axe(page, "the codebase page")
    # The 404s asked while the codebase did not exist are the browser's lines, not the page's.
    browsing.assert_clean(allowed_statuses=frozenset({404}))
    await context.close()


async def test_the_org_page_passes_the_accessibility_rules(
    chromium: Any, stack: Stack, tmp_path: Path
) -> None:
    await org_with_codebases(stack, tmp_path)
    origin = str(stack.client.make_url("")).rstrip("/")
    context, browsing = await new_context(chromium, origin, SETTINGS)
    page = await context.new_page()
    await page.goto(f"{origin}/ui/#token={ADMIN_TOKEN}&org={ORG_LOGIN}")
    await page.wait_for_selector("#codebases-table tbody tr [data-col='full_name']")
    await check_axe(page, "the org page")
    # The first stop of the keyboard skips to the content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    browsing.assert_clean()
    await context.close()
