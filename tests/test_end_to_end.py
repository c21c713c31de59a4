"""The service's acceptance scenarios, end to end and for real: the whole stack running as
deployed (tests/support/stack.py), driven only the way GitHub and a frontend drive it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contract.documents import EmailMode
from contract.storage.local import LocalStorage
from tests.support.documents import read_documents, without_run_timestamps
from tests.support.fake_github import INSTALLATION_TOKEN
from tests.support.gitrepos import (
    Author,
    GitRepo,
    build_long_history,
    git_branch_count,
    git_commit_count,
    git_contributors,
    git_line_totals,
    git_merge_count,
)
from tests.support.stack import ORG_ID, ORG_LOGIN, NotYet, Snapshot, Stack, add_repo
from worker.engine import pipeline

LONG_HISTORY = 8000  # commits: the backfill stays ~0.5-1 s past its fetch (the window)

ALICE: Author = ("Alice", "alice@example.com")
BOB: Author = ("Bob", "bob@example.com")
CAROL: Author = ("Carol", "carol@example.org")
ALICE_UPPER: Author = ("Alice A.", "ALICE@Example.com")  # Alice again: emails compare lower-cased


# --- repositories and git's own figures -----------------------------------------------------


def assert_overview_matches_git(overview: dict[str, Any], repo: GitRepo) -> None:
    """The overview's history figures are git's own."""
    additions, deletions = git_line_totals(repo.path)
    expected = {
        "head_sha": repo.head("main"),
        "total_commits": git_commit_count(repo.path),
        "merge_commits": git_merge_count(repo.path),
        "total_branches": git_branch_count(repo.path),
        "total_contributors": len(git_contributors(repo.path)),
        "additions_lines": additions,
        "deletions_lines": deletions,
        "total_churn": additions + deletions,
        "net_sloc": additions - deletions,
    }
    assert {key: overview[key] for key in expected} == expected, overview["full_name"]


def assert_org_files_sum_overviews(snapshot: Snapshot, repos: dict[int, GitRepo]) -> None:
    """org_summary and codebases_list list every codebase, their totals the overviews' sums."""
    overviews = snapshot.overviews
    listed = {row["codebase_id"]: row for row in snapshot.listing["codebases"]}
    assert sorted(listed) == sorted(repos)
    for cid, row in listed.items():
        overview = overviews[cid]
        for key in ("full_name", "total_commits", "total_contributors", "total_churn"):
            assert row[key] == overview[key], (cid, key, row, overview)
        assert row["total_lines"] == overview["total_lines"]
        assert row["state"] == "succeeded", row
    summary = snapshot.summary
    assert (summary["org_id"], summary["org_login"]) == (ORG_ID, ORG_LOGIN)
    assert summary["total_codebases"] == len(repos)
    for key in ("total_commits", "additions_lines", "deletions_lines", "total_churn"):
        assert summary[key] == sum(o[key] for o in overviews.values()), key
    assert summary["total_lines"] == sum(o["total_lines"] for o in overviews.values())
    everyone = set().union(*(git_contributors(repo.path) for repo in repos.values()))
    assert summary["total_contributors"] == len(everyone)


async def from_scratch(repo: GitRepo, codebase_id: int, full_name: str, where: Path) -> Any:
    """The documents a fresh run of the engine writes for `repo` as it is now."""
    storage = LocalStorage(where / "storage")
    await pipeline.analyze_codebase(
        str(repo.path),
        storage,
        codebase_id,
        where / "work",
        full_name=full_name,
        default_branch="main",
        email_mode=EmailMode.HASH,
        trigger="from-scratch",
    )
    return without_run_timestamps(await read_documents(storage, codebase_id))


def build_alpha(path: Path) -> GitRepo:
    """main with a merged topic (a merge commit), an unmerged `feature` branch, three authors."""
    repo = GitRepo.init(path)
    repo.commit({"README.md": "# alpha\n", "src/app.py": "print('hi')\n"}, "root", ALICE)
    repo.commit({"src/app.py": "print('hi')\nprint('there')\n"}, "two", BOB, "2024-01-02T09:00:00Z")
    repo.branch("topic")
    repo.checkout("topic")
    repo.commit({"src/topic.py": "x = 1\ny = 2\n"}, "topic", CAROL, "2024-01-03T09:00:00+02:00")
    repo.checkout("main")
    repo.commit({"docs/notes.md": "notes\n"}, "notes", ALICE_UPPER, "2024-01-04T10:00:00Z")
    repo.merge("topic", message="merge topic", author=ALICE, date="2024-01-05T10:00:00Z")
    repo.delete_branch("topic")
    repo.branch("feature")
    repo.checkout("feature")
    repo.commit({"src/feature.py": "f = 1\n"}, "feature 1", BOB, "2024-01-06T10:00:00Z")
    repo.commit({"src/feature.py": "f = 2\ng = 3\n"}, "feature 2", BOB, "2024-01-07T10:00:00Z")
    repo.checkout("main")
    return repo


def build_small(path: Path, name: str, authors: list[Author], commits: int) -> GitRepo:
    repo = GitRepo.init(path)
    for n in range(commits):
        lines = "".join(f"{name} line {i}\n" for i in range(n + 1))
        repo.commit(
            {f"{name}/mod{n % 2}.py": lines},
            f"{name} {n}",
            authors[n % len(authors)],
            f"2024-02-{n + 1:02d}T12:00:00+01:00",
        )
    return repo


# --- 1. install, push, force-push, branch deletion ----------------------------------------


async def test_install_then_push_then_force_push_and_branch_deletion(
    stack: Stack, tmp_path: Path
) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    alpha = build_alpha(tmp_path / "repos" / "alpha")
    beta = build_small(tmp_path / "repos" / "beta", "beta", [BOB, CAROL], 3)
    gamma = build_small(tmp_path / "repos" / "gamma", "gamma", [ALICE_UPPER, ("Dan", "d@x.io")], 4)
    repos = {
        add_repo(fake, installation_id, "alpha", alpha): alpha,
        add_repo(fake, installation_id, "beta", beta): beta,
        add_repo(fake, installation_id, "gamma", gamma): gamma,
    }
    alpha_id, *others = list(repos)
    await stack.start_workers(1)

    with stack.worker_logs_on_failure():
        # Installed → every repository registered and backfilled.
        await stack.install(installation_id, list(repos), "all")
        first = await stack.settle(repos)
        for cid, repo in repos.items():
            documents = await read_documents(stack.storage, cid)  # all five, or it fails
            assert documents["overview"]["full_name"] == f"{ORG_LOGIN}/{repo.path.name}"
            assert first.statuses[cid]["last_run"]["trigger"] == "backfill"
            assert_overview_matches_git(first.overviews[cid], repo)
        assert_org_files_sum_overviews(first, repos)

        # A push to alpha re-syncs alpha alone.
        before = alpha.head("main")
        alpha.commit({"src/app.py": "print('hello')\n"}, "edit", CAROL, "2024-03-01T08:00:00Z")
        alpha.commit({"src/new.py": "a\nb\nc\n"}, "add", ("Eve", "eve@ex.net"), "2024-03-02T08:00Z")
        await stack.push(installation_id, alpha_id, "main", before, alpha.head("main"))
        second = await stack.settle(repos)
        last_run = second.statuses[alpha_id]["last_run"]
        assert (last_run["trigger"], last_run["commits_added"]) == ("push", 2)
        assert_overview_matches_git(second.overviews[alpha_id], alpha)
        for cid in others:
            assert second.statuses[cid]["last_run"] == first.statuses[cid]["last_run"]
            assert second.overviews[cid] == first.overviews[cid]
        assert_org_files_sum_overviews(second, repos)
        assert second.summary["total_commits"] == first.summary["total_commits"] + 2

        # The read API serves the new figures.
        path = f"/api/v1/codebases/{alpha_id}/analytics/overview"
        served = await stack.api_until(path, "total_commits", git_commit_count(alpha.path))
        assert served == second.overviews[alpha_id]
        summary_path = f"/api/v1/orgs/{ORG_LOGIN}/analytics/summary"
        summary = await stack.api_until(
            summary_path, "total_commits", second.summary["total_commits"]
        )
        assert summary["total_contributors"] == second.summary["total_contributors"]
        status, _, headers = await stack.api(summary_path)
        assert status == 200
        assert (await stack.api(summary_path, etag=headers["ETag"]))[0] == 304

        # A force-push drops commits: main back to three commits ago.
        before, count = alpha.head("main"), git_commit_count(alpha.path)
        older = alpha.git("rev-parse", "main~3")
        alpha.reset_branch("main", older)
        dropped = count - git_commit_count(alpha.path)
        assert dropped == 2  # the merge stays reachable from `feature`
        await stack.push(installation_id, alpha_id, "main", before, older, forced=True)
        third = await stack.settle(repos)
        last_run = third.statuses[alpha_id]["last_run"]
        assert (last_run["commits_added"], last_run["commits_removed"]) == (0, dropped)
        expected = await from_scratch(alpha, alpha_id, "acme/alpha", tmp_path / "scratch1")
        assert without_run_timestamps(await read_documents(stack.storage, alpha_id)) == expected

        # A branch deleted: GitHub sends a push (deleted) and a delete event.
        gone = alpha.head("feature")
        alpha.delete_branch("feature")
        await stack.push(installation_id, alpha_id, "feature", gone, "0" * 40, deleted=True)
        await stack.branch_deleted(installation_id, alpha_id, "feature")
        fourth = await stack.settle(repos)
        assert "feature" not in fourth.statuses[alpha_id]["refs"]
        assert_overview_matches_git(fourth.overviews[alpha_id], alpha)
        expected = await from_scratch(alpha, alpha_id, "acme/alpha", tmp_path / "scratch2")
        assert without_run_timestamps(await read_documents(stack.storage, alpha_id)) == expected
        assert_org_files_sum_overviews(fourth, repos)
        for cid in others:
            assert fourth.statuses[cid]["last_run"] == first.statuses[cid]["last_run"]
        await stack.assert_no_token_leak()


# --- 2. twenty codebases, two workers ----------------------------------------------------------


async def test_twenty_codebases_synced_by_two_workers(stack: Stack, tmp_path: Path) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID)
    people: list[Author] = [ALICE, BOB, CAROL, ALICE_UPPER, ("Bob B.", "BOB@example.com")]
    repos = {}
    for i in range(20):
        # Authors shared between repositories, plus one of its own for every third.
        authors = [people[i % len(people)], people[(i + 2) % len(people)]]
        if i % 3 == 0:
            authors.append((f"Dev {i}", f"dev{i}@example.net"))
        repo = build_small(tmp_path / "repos" / f"r{i:02d}", f"r{i:02d}", authors, 2 + i % 3)
        repos[add_repo(fake, installation_id, f"r{i:02d}", repo)] = repo
    workers = await stack.start_workers(2)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, list(repos), "selected")
        snapshot = await stack.settle(repos)
        for cid, repo in repos.items():
            assert_overview_matches_git(snapshot.overviews[cid], repo)
        assert len(snapshot.listing["codebases"]) == 20
        assert_org_files_sum_overviews(snapshot, repos)
        everyone = set().union(*(git_contributors(repo.path) for repo in repos.values()))
        assert snapshot.summary["total_contributors"] == len(everyone)
        per_worker = {worker.name: worker.jobs_started("sync_codebase") for worker in workers}
        assert all(per_worker.values()), f"one worker synced nothing: {per_worker}"
        assert sum(per_worker.values()) >= 20, per_worker
        await stack.assert_no_token_leak()


# --- 3. a push while its codebase is being synced -----------------------------------------


async def test_push_during_a_sync_ends_in_documents_that_include_it(
    stack: Stack, tmp_path: Path
) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    # Enough history that the backfill is observable past its fetch (~0.5-1 s here).
    repo = build_long_history(tmp_path / "repos" / "long", LONG_HISTORY)
    cid = add_repo(fake, installation_id, "long", repo)
    await stack.start_workers(1)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, [cid], "all")

        async def past_fetch() -> dict[str, Any]:
            status = await stack.document(cid, "status")
            if status is None or status["state"] == "queued":
                raise NotYet(f"status {status and status['state']}")
            if status["state"] != "running":
                raise AssertionError(f"the backfill ended before it was seen running: {status}")
            if status["phase"] in (None, "fetch"):
                raise NotYet(f"phase {status['phase']}")
            return status

        running = await stack.wait_for("the backfill past its fetch", past_fetch, interval=0.01)
        before = repo.head("main")
        repo.commit({"src/late.txt": "pushed during the sync\n"}, "late", BOB, "2024-05-01T00:00Z")
        await stack.push(installation_id, cid, "main", before, repo.head("main"))
        still = await stack.document(cid, "status")
        assert still is not None
        assert still["state"] == "running", f"the push came after the sync ended: {still}"
        assert still["last_run"]["started_at"] == running["last_run"]["started_at"]

        snapshot = await stack.settle({cid: repo})
        assert (
            snapshot.overviews[cid]["total_commits"]
            == git_commit_count(repo.path)
            == LONG_HISTORY + 1
        )
        assert snapshot.overviews[cid]["head_sha"] == repo.head("main")
        assert_overview_matches_git(snapshot.overviews[cid], repo)
        assert_org_files_sum_overviews(snapshot, {cid: repo})
        served = await stack.api_until(
            f"/api/v1/codebases/{cid}/analytics/overview", "total_commits", LONG_HISTORY + 1
        )
        assert served["head_sha"] == repo.head("main")
        await stack.assert_no_token_leak()


# --- 4. the token never leaks ------------------------------------------------------------------


async def test_installation_tokens_never_leak(stack: Stack, tmp_path: Path) -> None:
    fake = stack.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID, repository_selection="all")
    alpha = build_alpha(tmp_path / "repos" / "alpha")
    beta = build_small(tmp_path / "repos" / "beta", "beta", [BOB], 2)
    repos = {
        add_repo(fake, installation_id, "alpha", alpha): alpha,
        add_repo(fake, installation_id, "beta", beta): beta,
    }
    alpha_id = next(iter(repos))
    await stack.start_workers(2)

    with stack.worker_logs_on_failure():
        await stack.install(installation_id, list(repos), "all")
        await stack.settle(repos)
        # Every token so far expires: the next fetch needs (and logs nothing of) a new one.
        fake.expire_tokens()
        before = alpha.head("main")
        alpha.commit({"src/app.py": "changed\n"}, "push", CAROL, "2024-04-01T00:00Z")
        await stack.push(installation_id, alpha_id, "main", before, alpha.head("main"))
        await stack.settle(repos)
        before = alpha.head("main")
        alpha.reset_branch("main", alpha.git("rev-parse", "main~2"))
        await stack.push(installation_id, alpha_id, "main", before, alpha.head("main"), forced=True)
        alpha.delete_branch("feature")
        await stack.branch_deleted(installation_id, alpha_id, "feature")
        await stack.settle(repos)
        git_fetches = [
            r
            for r in fake.requests
            if r.path.endswith("/git-upload-pack") and r.credential == INSTALLATION_TOKEN
        ]
        assert git_fetches, "no git fetch with an installation token reached the fake GitHub"
        assert len(fake.issued_tokens()) >= 2, "no token was issued after the first expired"
        # Stopped first, so that everything they would print is in their captured output.
        stack.stop_workers()
        await stack.assert_no_token_leak()
