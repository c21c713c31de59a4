"""Issue 9's acceptance: every authored figure equals an oracle built from git's own output.

The repository below holds every case the authored figures distinguish: bots of each kind
(dependabot, renovate, BOT_AUTHORS globs on email and on name, a bot only after the mailmap,
a contributor with one bot identity among others), vendored and generated paths by go-enry's
rules and by `.gitattributes` (set, unset, `=false`, `!`, a nested file), documentation, a
lockfile, minified bundles, co-authored commits (duplicates, the author as their own co-author,
a bot co-author, co-authors who never author, one the mailmap maps to another person), and
ignored revisions. tests/support/authored.py computes every figure from git and enry; the
engine runs on the repository and its documents must say the same. Then `.gitattributes`,
`.mailmap`, `.git-blame-ignore-revs` and BOT_AUTHORS change, and an incremental run must
re-apply them to all history, as a clean run does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import enry
import pytest

from contract.documents import (
    Activity,
    ActivityPeriod,
    AuthoredTotals,
    Contributor,
    ContributorActivity,
    ContributorActivityRow,
    ContributorWeek,
    Document,
    EmailMode,
    Excluded,
    ExcludedFigures,
    Ownership,
    Phase,
)
from contract.storage.local import LocalStorage
from tests.support.authored import (
    AuthoredOracle,
    Figures,
    Identity,
    PathClass,
    Reason,
    authored_oracle,
    is_bot_identity,
    parse_co_author,
    parse_ignore_revs,
)
from tests.support.documents import assert_equals_a_clean_run, read_documents
from tests.support.gitrepos import Author, Content, GitRepo, RepoPath, git_line_totals
from worker.engine.pipeline import RunResult, analyze_codebase

CODEBASE_ID = 9
BOT_AUTHORS = ("ci-*@example.com", "release-*")
OTHER_BOT_AUTHORS = ("release-*", "bob@*")

ALICE: Author = ("Alice Liddell", "alice@example.com")
ALICE_OLD: Author = ("alice", "alice@old.example")  # the mailmap maps it to ALICE
BOB: Author = ("Bob Builder", "bob@example.org")
ROBERT: Author = ("Robert", "robert@personal.example")  # co-author; the mailmap makes him Bob
CAROL: Author = ("Carol", "carol@example.net")  # co-author, never an author
ERIN: Author = ("Erin", "erin@example.com")  # co-author, never an author
DEPENDABOT: Author = ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")
RENOVATE: Author = ("Renovate Bot", "29139614+renovate[bot]@users.noreply.github.com")
CI: Author = ("CI Runner", "ci-runner@example.com")  # a bot by a BOT_AUTHORS glob on the email
RELEASE: Author = ("Release-Tool", "releases@example.com")  # by a glob on the name
DEPLOY: Author = ("Deploy", "deploy@old.example")  # a bot once mapped to ci-deploy@example.com
HELPER_BOT: Author = ("helper[bot]", "helper@example.com")
HELPER: Author = ("Helper", "helper@example.com")  # same contributor as HELPER_BOT: a bot too
GITHUB_ACTIONS: Author = (
    "github-actions[bot]",
    "41898282+github-actions[bot]@users.noreply.github.com",
)

MAILMAP = (
    "# Alice's old address.\n"
    "Alice Liddell <alice@example.com> <alice@old.example>\n"
    "# A co-author under his own address is Bob.\n"
    "Bob Builder <bob@example.org> <robert@personal.example>\n"
    "Carol <carol@example.net> <CAROL@example.net>\n"
    "# The deploy script's old identity is the CI's.\n"
    "CI Deploy <ci-deploy@example.com> <deploy@old.example>\n"
)
# The second phase: Robert is himself, Deploy a person, and Erin is Carol.
MAILMAP_CHANGED = (
    "Alice Liddell <alice@example.com> <alice@old.example>\n"
    "Carol <carol@example.net> <CAROL@example.net>\n"
    "Carol <carol@example.net> <erin@example.com>\n"
)

GITATTRIBUTES = (
    "# Linguist's own rules, overridden.\n"
    "imported/** linguist-vendored\n"
    "vendor/keep/** -linguist-vendored\n"
    "third_party/ours/** linguist-vendored=false\n"
    "src/gen/** linguist-generated\n"
    "schema/*.json linguist-generated=true\n"
    "Cargo.lock -linguist-generated\n"
    "examples/** linguist-documentation=false\n"
    "*.md linguist-documentation\n"
)
GITATTRIBUTES_CHANGED = (
    GITATTRIBUTES.replace("src/gen/** linguist-generated\n", "")
    + "web/mixed.js -linguist-generated\n"
    + "assets/** linguist-vendored\n"
)
NESTED_ATTRIBUTES: dict[RepoPath, Content] = {
    "docs/.gitattributes": "api/** linguist-generated\n*.txt -linguist-documentation\n",
    "imported/.gitattributes": "own/** !linguist-vendored\n",
}

# Minified: go-enry calls a .js file generated when its lines average over 110 characters.
MINIFIED = "".join(f"function f{i}(a){{return a+{i}}};" for i in range(200)) + "\n"
# Minified in its first 128 KiB only, which is all of a blob Linguist reads.
MIXED = ("var a='" + "x" * 65_000 + "';\n") * 2 + "a;\n" * 2_000
GENERATED_GO = (
    "// Code generated by protoc-gen-go. DO NOT EDIT.\npackage model\n\ntype M struct{}\n"
)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"


def lines(prefix: str, count: int, start: int = 0) -> str:
    return "".join(f"{prefix} {i}\n" for i in range(start, start + count))


def trailers(*people: Author, key: str = "Co-authored-by") -> str:
    return "".join(f"{key}: {name} <{email}>\n" for name, email in people)


@dataclass
class AuthoredRepo:
    repo: GitRepo
    shas: dict[str, str]  # the commits the checks below name


def build_authored_repo(path: Path) -> AuthoredRepo:
    """The fixture repository: `main` checked out and clean, history from January to June."""
    repo = GitRepo.init(path)
    shas: dict[str, str] = {}

    def commit(
        name: str, files: Mapping[RepoPath, Content] | None, message: str, author: Author, when: str
    ) -> None:
        shas[name] = repo.commit(files, message, author, when, allow_empty=not files)

    commit(
        "root",
        {
            "src/app.py": lines("app", 12),
            "src/util.py": lines("util", 6),
            "README.md": "# Fixture\n\nFor the authored figures.\n",
            "assets/logo.png": PNG,
        },
        "Initial commit",
        ALICE,
        "2023-01-02T09:00:00+01:00",
    )
    commit(
        "dependencies",
        {
            "vendor/jquery.js": lines("jq", 30),
            "vendor/old.js": lines("old", 8),
            "vendor/keep/patch.js": lines("patch", 5),
            "vendor/blob.bin": b"\x00\x01\x02\x03",
            "node_modules/left-pad/index.js": lines("pad", 7),
            "package-lock.json": lines('  "dep": 1,', 20),
            "Cargo.lock": lines("[[package]]", 9),
            "requirements.txt": "requests==2.28.0\n",
        },
        "Add dependencies",
        BOB,
        "2023-01-04T15:30:00-05:00",
    )
    commit(
        "co_authored",
        {"src/app.py": lines("app", 10) + lines("better", 5), "docs/guide.md": lines("guide", 9)},
        "Guide and app\n\nPaired on it.\n\n"
        + trailers(CAROL, CAROL, ("Carol", "CAROL@example.net"), ALICE, ALICE_OLD),
        ALICE,
        "2023-01-10T11:00:00+00:00",
    )

    # A dependabot pull request, merged by a person: the merge carries the diff.
    repo.branch("deps/requests")
    repo.checkout("deps/requests")
    commit(
        "dependabot",
        {
            "requirements.txt": "requests==2.31.0\nurllib3==2.0.0\n",
            "package-lock.json": lines('  "dep": 2,', 21),
            "node_modules/left-pad/index.js": lines("pad", 8),
        },
        "Bump requests from 2.28.0 to 2.31.0",
        DEPENDABOT,
        "2023-01-16T08:00:00+00:00",
    )
    repo.checkout("main")
    shas["deps_merge"] = repo.merge(
        "deps/requests",
        message="Merge pull request #1 from deps/requests",
        author=BOB,
        date="2023-01-17T10:00:00+02:00",
    )
    # Sunday evening in New York, Monday in UTC: the week is UTC's.
    commit(
        "old_address",
        {"src/util.py": lines("util", 8), "CHANGELOG.md": "# Changes\n", "notes.md": "notes\n"},
        "Utilities\n\n" + trailers(ROBERT),
        ALICE_OLD,
        "2023-01-22T23:30:00-05:00",
    )

    repo.branch("feature/web")
    repo.checkout("feature/web")
    commit(
        "web",
        {
            "web/bundle.js": lines("var x =", 20),
            "web/old-bundle.js": MINIFIED,
            "web/mixed.js": MIXED,
        },
        "Web bundles",
        BOB,
        "2023-02-01T10:00:00+01:00",
    )
    commit(
        "web_co_authored",
        {"web/bundle.js": lines("var x =", 20) + lines("var y =", 4)},
        "More web\n\n" + trailers(ROBERT, GITHUB_ACTIONS),
        ALICE,
        "2023-02-08T12:00:00+00:00",
    )
    repo.checkout("main")
    commit(
        "renovate",
        {"Cargo.lock": lines("[[package]]", 11), "package-lock.json": lines('  "dep": 3,', 22)},
        "chore(deps): update lockfiles",
        RENOVATE,
        "2023-02-06T03:00:00+00:00",
    )
    commit(
        "ci",
        {
            "schema/api.json": lines('{"field":', 6),
            "src/gen/models.py": lines("model", 14),
            "pkg/model.go": GENERATED_GO,
        },
        "Regenerate",
        CI,
        "2023-02-13T06:00:00+00:00",
    )
    shas["web_merge"] = repo.merge(
        "feature/web",
        message="Merge feature/web\n\n" + trailers(CAROL),
        author=BOB,
        date="2023-02-15T17:00:00+01:00",
    )
    commit(
        "reformat",
        {
            "src/app.py": lines("app ", 10) + lines("better ", 5),
            "src/util.py": lines("util ", 8),
            "vendor/jquery.js": lines("jq ", 30),
        },
        "Reformat everything\n\n" + trailers(ERIN),
        ALICE,
        "2023-02-20T09:00:00+00:00",
    )
    repo.symlink("current.js", "web/bundle.js")
    commit(
        "minify",
        {"web/old-bundle.js": None, "vendor/old.js": None, "web/bundle.js": MINIFIED},
        "Minify the bundle\n\n"
        "Co-authored-by: Mallory <mallory@example.com>\n\n"
        "The line above is prose, not a trailer: it is not the last paragraph.\n\n"
        + trailers(ERIN)
        + "Co-authored-by: Nobody\n"
        + "Co-authored-by: Empty <>\n"
        + "Signed-off-by: Alice Liddell <alice@example.com>\n",
        ALICE,
        "2023-03-01T10:00:00+00:00",
    )
    commit(
        "release",
        {"CHANGELOG.md": "# Changes\n\n## 1.0\n"},
        "Release 1.0",
        RELEASE,
        "2023-03-05T23:30:00-05:00",
    )
    commit(
        "deploy",
        {"deploy.sh": "#!/bin/sh\necho deploy\n"},
        "Deploy script\n\n" + trailers(CAROL),
        DEPLOY,
        "2023-03-14T12:00:00+05:30",
    )
    commit(
        "helper_bot",
        {"src/app.py": lines("app ", 10) + lines("better ", 6)},
        "Tweak",
        HELPER_BOT,
        "2023-03-20T10:00:00+00:00",
    )
    commit(
        "helper",
        {"docs/guide.md": lines("guide", 10)},
        "Guide",
        HELPER,
        "2023-03-27T10:00:00+00:00",
    )
    commit(
        "month_end",
        {
            "imported/lib.c": lines("int lib", 9),
            "imported/own/glue.c": lines("int glue", 4),
            "third_party/ours/x.c": lines("int x", 3),
            "docs/api/ref.md": lines("ref", 7),
            "docs/notes.txt": lines("note", 2),
            "examples/demo.py": lines("demo", 5),
            ".github/dependabot.yml": "version: 2\n",
            "assets/logo.png": PNG + b"\x01",
        },
        "Imports, docs and examples\n\n"
        + "co-authored-by: Erin\n  <erin@example.com>\n",  # lower-case key, folded value
        ALICE,
        "2023-03-31T22:00:00-05:00",  # April in UTC
    )
    commit("bot_empty", None, "Empty bot commit", DEPENDABOT, "2023-04-10T08:00:00+00:00")
    commit("empty", None, "Retrigger CI\n\n" + trailers(CAROL), BOB, "2023-04-12T08:00:00+00:00")

    # Never merged: paths present only on this branch are judged on their path alone.
    repo.branch("spike")
    repo.checkout("spike")
    commit(
        "spike",
        {"experiments/spike.py": lines("idea", 6), "experiments/vendor/x.js": lines("x", 3)},
        "Spike",
        BOB,
        "2023-04-20T16:00:00+02:00",
    )
    commit(
        "spike_co_authored",
        {"experiments/spike.py": lines("idea", 9)},
        "More spike\n\n" + trailers(CAROL),
        ALICE,
        "2023-05-02T09:00:00+00:00",
    )
    repo.checkout("main")

    # Pushed once, then its branch deleted: listed in the ignore file, outside the commit set.
    repo.branch("tmp/gone")
    repo.checkout("tmp/gone")
    commit("unreachable", {"gone.txt": "gone\n"}, "Gone", BOB, "2023-05-03T09:00:00+00:00")
    repo.checkout("main")
    repo.delete_branch("tmp/gone")

    commit(
        "attributes",
        {".gitattributes": GITATTRIBUTES, **NESTED_ATTRIBUTES},
        "Linguist overrides",
        ALICE,
        "2023-05-08T09:00:00+00:00",
    )
    commit("mailmap", {".mailmap": MAILMAP}, "Mailmap", BOB, "2023-05-15T09:00:00+00:00")
    commit(
        "ignore_revs",
        {".git-blame-ignore-revs": ignore_revs_text(shas)},
        "Ignore mass changes in blame",
        ALICE,
        "2023-06-05T09:00:00+00:00",
    )
    commit(
        "last",
        {"src/app.py": lines("app ", 10) + lines("best ", 6)},
        "Last",
        ALICE,
        "2023-06-12T09:00:00+00:00",
    )
    if repo.current_branch() != "main" or not repo.is_clean():
        raise AssertionError("the fixture must end on a clean main")
    return AuthoredRepo(repo, shas)


def ignore_revs_text(shas: dict[str, str]) -> str:
    return (
        "# Mass reformats and style-only changes, skipped by git blame.\n"
        "\n"
        f"{shas['reformat'].upper()}\n"
        f"   {shas['dependabot']}   \n"  # ignored comes before bot
        "# A commit no branch reaches:\n"
        f"{shas['unreachable']}\n"
        "\n"
        # Not an object name taken whole: skipped (spec9.md), though git blame would read it.
        f"{shas['old_address']} # utilities\n"
        f"{shas['co_authored'][:12]}\n"
    )


# -- the engine -------------------------------------------------------------------------------


@dataclass
class Run:
    result: RunResult
    extracted: int  # commits the run extracted
    documents: dict[str, dict[str, Any]]


async def analyze(
    repo: GitRepo, storage: LocalStorage, work: Path, bot_authors: Sequence[str]
) -> Run:
    extracted: list[int] = []

    def progress(phase: Phase, done: int, total: int) -> None:
        if phase is Phase.EXTRACT and done == 0:
            extracted.append(total)

    result = await analyze_codebase(
        str(repo.path),
        storage,
        CODEBASE_ID,
        work,
        email_mode=EmailMode.PLAIN,
        bot_authors=bot_authors,
        on_progress=progress,
    )
    return Run(result, extracted[-1], await read_documents(storage, CODEBASE_ID))


def as_dates(row: dict[str, Any]) -> dict[str, Any]:
    """A contributor row with its timestamps parsed, to compare instants, not spellings."""
    return row | {k: datetime.fromisoformat(row[k]) for k in ("first_commit_at", "last_commit_at")}


def check_overview(overview: dict[str, Any], oracle: AuthoredOracle) -> None:
    all_in = oracle.all_in()
    assert (overview["additions_lines"], overview["deletions_lines"]) == (
        all_in.added_lines,
        all_in.deleted_lines,
    )
    assert (overview["addition_bytes"], overview["deletion_bytes"]) == (
        all_in.added_bytes,
        all_in.deleted_bytes,
    )
    assert overview["total_commits"] == len(oracle.commits)
    assert overview["total_contributors"] == len({c.author.key for c in oracle.commits.values()})
    assert overview["authored"] == oracle.overview_authored()
    assert overview["excluded"] == oracle.overview_excluded()
    # The invariant, on the engine's own figures.
    for side in ("additions_lines", "deletions_lines"):
        excluded = sum(reason[side] for reason in overview["excluded"].values())
        assert overview["authored"][side] + excluded == overview[side], side


def check_activity(activity: dict[str, Any], oracle: AuthoredOracle) -> None:
    assert activity["weekly"] == oracle.activity("week")
    assert activity["monthly"] == oracle.activity("month")


def check_ownership(ownership: dict[str, Any], oracle: AuthoredOracle) -> None:
    assert ownership["total_contributors"] == len({c.author.key for c in oracle.commits.values()})
    assert [as_dates(row) for row in ownership["contributors"]] == oracle.ownership()


def check_contributor_activity(document: dict[str, Any], oracle: AuthoredOracle) -> None:
    expected = oracle.contributor_activity()
    assert document["codebase_id"] == CODEBASE_ID
    assert document["total_contributors"] == len(expected)
    assert document["contributors"] == expected


def check_run(run: Run, oracle: AuthoredOracle) -> None:
    check_overview(run.documents["overview"], oracle)
    check_activity(run.documents["activity"], oracle)
    check_ownership(run.documents["ownership"], oracle)
    check_contributor_activity(run.documents["contributor_activity"], oracle)
    assert set(run.result.authored_contributor_keys) == oracle.authored_contributor_keys()


# -- the first run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_repo(tmp_path_factory: pytest.TempPathFactory) -> AuthoredRepo:
    """The fixture repository, built once for this module. Read it; never modify it."""
    return build_authored_repo(tmp_path_factory.mktemp("authored") / "repo")


@pytest.fixture(scope="module")
def oracle(fixture_repo: AuthoredRepo) -> AuthoredOracle:
    return authored_oracle(fixture_repo.repo, BOT_AUTHORS)


@pytest.fixture(scope="module")
def first_run(fixture_repo: AuthoredRepo, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("authored-run")

    async def run() -> Run:
        storage = LocalStorage(root / "storage")
        try:
            return await analyze(fixture_repo.repo, storage, root / "work", BOT_AUTHORS)
        finally:
            await storage.close()

    return asyncio.run(run())


def test_overview(first_run: Run, oracle: AuthoredOracle) -> None:
    check_overview(first_run.documents["overview"], oracle)


def test_activity(first_run: Run, oracle: AuthoredOracle) -> None:
    check_activity(first_run.documents["activity"], oracle)


def test_ownership(first_run: Run, oracle: AuthoredOracle) -> None:
    check_ownership(first_run.documents["ownership"], oracle)


def test_contributor_activity(first_run: Run, oracle: AuthoredOracle) -> None:
    check_contributor_activity(first_run.documents["contributor_activity"], oracle)


def test_authored_contributor_keys(first_run: Run, oracle: AuthoredOracle) -> None:
    assert set(first_run.result.authored_contributor_keys) == oracle.authored_contributor_keys()


# -- changed rules ----------------------------------------------------------------------------


def change_rules(repo: GitRepo, shas: dict[str, str]) -> None:
    """Push to the default branch new .gitattributes, .mailmap and .git-blame-ignore-revs."""
    repo.commit(
        {".gitattributes": GITATTRIBUTES_CHANGED}, "Attributes", ALICE, "2023-07-03T09:00:00+00:00"
    )
    repo.commit({".mailmap": MAILMAP_CHANGED}, "Mailmap", BOB, "2023-07-04T09:00:00+00:00")
    revs = ignore_revs_text(shas).replace(shas["reformat"].upper(), shas["web_merge"])
    revs += f"{shas['minify']}\n"
    repo.commit({".git-blame-ignore-revs": revs}, "Ignore revs", ALICE, "2023-07-05T09:00:00+00:00")


async def test_changed_rules_reapply_to_all_history(
    fixture_repo: AuthoredRepo, tmp_path: Path
) -> None:
    repo = GitRepo(shutil.copytree(fixture_repo.repo.path, tmp_path / "repo", symlinks=True))
    storage = LocalStorage(tmp_path / "storage")
    work = tmp_path / "work"
    try:
        first = await analyze(repo, storage, work, BOT_AUTHORS)
        before = authored_oracle(repo, BOT_AUTHORS)
        check_run(first, before)

        change_rules(repo, fixture_repo.shas)
        after = authored_oracle(repo, BOT_AUTHORS)
        assert_rules_changed(before, after, fixture_repo.shas)
        second = await analyze(repo, storage, work, BOT_AUTHORS)
        assert (second.result.commits_added, second.extracted) == (3, 3)
        check_run(second, after)
        await assert_equals_a_clean_run(
            storage,
            CODEBASE_ID,
            repo.path,
            tmp_path / "clean",
            email_mode=EmailMode.PLAIN,
            bot_authors=BOT_AUTHORS,
        )

        # BOT_AUTHORS alone changes: nothing new to extract, every figure re-applied.
        other = authored_oracle(repo, OTHER_BOT_AUTHORS)
        assert_bots_changed(after, other)
        third = await analyze(repo, storage, work, OTHER_BOT_AUTHORS)
        assert (third.result.commits_added, third.extracted) == (0, 0)
        check_run(third, other)
        await assert_equals_a_clean_run(
            storage,
            CODEBASE_ID,
            repo.path,
            tmp_path / "clean-other",
            email_mode=EmailMode.PLAIN,
            bot_authors=OTHER_BOT_AUTHORS,
        )
    finally:
        await storage.close()


def assert_rules_changed(
    before: AuthoredOracle, after: AuthoredOracle, shas: dict[str, str]
) -> None:
    """The second phase's rule changes really change what the oracle says."""
    moved = {
        b"src/gen/models.py": (PathClass.GENERATED, PathClass.SOURCE),
        b"web/mixed.js": (PathClass.GENERATED, PathClass.SOURCE),
        b"assets/logo.png": (PathClass.SOURCE, PathClass.VENDORED),
    }
    for path, (old, new) in moved.items():
        assert (before.classes[path], after.classes[path]) == (old, new), path
    assert ignored(before) == {shas["reformat"], shas["dependabot"]}
    assert ignored(after) == {shas["web_merge"], shas["dependabot"], shas["minify"]}
    assert after.commits[shas["web_merge"]].changes  # a merge, ignored with its diff
    assert before.commits[shas["old_address"]].co_authors == (identity(BOB),)
    assert after.commits[shas["old_address"]].co_authors == (identity(ROBERT),)
    assert before.commits[shas["minify"]].co_authors == (identity(ERIN),)
    assert after.commits[shas["minify"]].co_authors == (identity(CAROL),)
    assert "ci-deploy@example.com" in before.bot_keys
    assert not after.bot_keys & {"ci-deploy@example.com", "deploy@old.example"}
    assert before.overview_authored() != after.overview_authored()
    assert before.overview_excluded() != after.overview_excluded()


def assert_bots_changed(before: AuthoredOracle, after: AuthoredOracle) -> None:
    assert "bob@example.org" in after.bot_keys - before.bot_keys
    assert "ci-runner@example.com" in before.bot_keys - after.bot_keys
    assert before.overview_authored() != after.overview_authored()


# -- the oracle itself ------------------------------------------------------------------------


def identity(author: Author) -> Identity:
    return Identity(*author)


def ignored(oracle: AuthoredOracle) -> set[str]:
    return {sha for sha, commit in oracle.commits.items() if commit.ignored}


EXPECTED_CLASSES = {
    b"src/app.py": PathClass.SOURCE,
    b"README.md": PathClass.DOCUMENTATION,  # enry
    b"CHANGELOG.md": PathClass.DOCUMENTATION,
    b"notes.md": PathClass.DOCUMENTATION,  # *.md linguist-documentation
    b"docs/guide.md": PathClass.DOCUMENTATION,
    b"docs/api/ref.md": PathClass.GENERATED,  # nested: api/** linguist-generated
    b"docs/notes.txt": PathClass.SOURCE,  # nested: *.txt -linguist-documentation
    b"examples/demo.py": PathClass.SOURCE,  # linguist-documentation=false
    b"vendor/jquery.js": PathClass.VENDORED,  # enry
    b"vendor/old.js": PathClass.VENDORED,  # enry, on the path alone: gone at the head
    b"vendor/blob.bin": PathClass.VENDORED,
    b"vendor/keep/patch.js": PathClass.SOURCE,  # -linguist-vendored
    b"node_modules/left-pad/index.js": PathClass.VENDORED,
    b"imported/lib.c": PathClass.VENDORED,  # linguist-vendored
    b"imported/own/glue.c": PathClass.SOURCE,  # nested: !linguist-vendored, enry says no
    b"third_party/ours/x.c": PathClass.SOURCE,  # linguist-vendored=false over enry's yes
    b".github/dependabot.yml": PathClass.VENDORED,  # enry
    b"package-lock.json": PathClass.GENERATED,  # enry: a lockfile
    b"Cargo.lock": PathClass.SOURCE,  # -linguist-generated over enry's yes
    b"requirements.txt": PathClass.SOURCE,
    b"src/gen/models.py": PathClass.GENERATED,  # linguist-generated
    b"schema/api.json": PathClass.GENERATED,  # linguist-generated=true
    b"pkg/model.go": PathClass.GENERATED,  # enry, on the head's content
    b"web/bundle.js": PathClass.GENERATED,  # enry: minified at the head
    b"web/mixed.js": PathClass.GENERATED,  # enry: minified in its first 128 KiB only
    b"web/old-bundle.js": PathClass.SOURCE,  # minified, but gone at the head: path alone
    b"current.js": PathClass.SOURCE,  # a symlink: path alone
    b"assets/logo.png": PathClass.SOURCE,
    b"experiments/spike.py": PathClass.SOURCE,  # only on an unmerged branch
    b"experiments/vendor/x.js": PathClass.VENDORED,  # likewise, enry on the path
    b"deploy.sh": PathClass.SOURCE,
}
EXPECTED_BOTS = {
    DEPENDABOT[1],  # its name ends in [bot]
    RENOVATE[1],  # its email's local part does
    CI[1],  # BOT_AUTHORS ci-*@example.com
    RELEASE[1],  # BOT_AUTHORS release-* on the name
    "ci-deploy@example.com",  # BOT_AUTHORS, after the mailmap
    HELPER[1],  # one of its identities' names ends in [bot]
    GITHUB_ACTIONS[1],  # a co-author
}


def test_fixture_holds_every_case(fixture_repo: AuthoredRepo, oracle: AuthoredOracle) -> None:
    """The oracle sees each case the fixture claims, so a broken fixture cannot pass quietly."""
    repo, shas, commits = fixture_repo.repo, fixture_repo.shas, oracle.commits
    assert repo.branches() == ["deps/requests", "feature/web", "main", "spike"]
    assert set(commits) == set(repo.git("rev-list", "--branches").split())
    assert shas["unreachable"] not in commits
    assert len(repo.git("rev-list", "--branches", "--max-parents=0").split()) == 1
    assert {shas["deps_merge"], shas["web_merge"]} <= set(
        repo.git("rev-list", "--branches", "--merges").split()
    )
    head = set(repo.git("ls-tree", "-r", "--name-only", "main").splitlines())
    assert {"web/old-bundle.js", "vendor/old.js", "experiments/spike.py"}.isdisjoint(head)
    assert not repo.git("log", "main", "--format=%H", "--", "experiments")
    assert any(change.binary for commit in commits.values() for change in commit.changes)

    assert {p: oracle.classes[p] for p in EXPECTED_CLASSES} == EXPECTED_CLASSES
    assert not enry.is_generated("web/mixed.js", MIXED.encode())  # the whole file is not
    assert enry.is_generated("web/old-bundle.js", MINIFIED.encode())  # its content would be

    assert oracle.bot_keys == EXPECTED_BOTS
    assert not oracle.bot_keys & {"alice@example.com", "bob@example.org"}
    for key in {c.author.key for c in commits.values()}:
        # Bot-ness is the same whether co-authors' identities count or not: the fixture does
        # not depend on a choice the spec leaves open.
        identities = {c.author for c in commits.values() if c.author.key == key}
        from_authors = any(is_bot(i) for i in identities)
        assert from_authors == (key in oracle.bot_keys), key
    assert not is_bot(identity(DEPLOY)) and commits[shas["deploy"]].by_bot
    assert not is_bot(identity(HELPER)) and commits[shas["helper"]].by_bot

    assert ignored(oracle) == {shas["reformat"], shas["dependabot"]}
    assert shas["unreachable"] in oracle.ignore_revs
    assert not commits[shas["old_address"]].ignored  # "sha # comment": skipped by the spec
    assert not commits[shas["co_authored"]].ignored  # an abbreviated name: skipped

    co_authored = commits[shas["co_authored"]]
    assert len(co_authored.raw_co_authors) == 5  # Carol thrice, Alice twice
    assert co_authored.co_authors == (identity(CAROL),)
    assert commits[shas["old_address"]].author == identity(ALICE)
    assert commits[shas["old_address"]].co_authors == (identity(BOB),)  # Robert, mapped
    web = commits[shas["web_co_authored"]]
    assert web.co_authors == (identity(BOB), identity(GITHUB_ACTIONS))
    assert web.people == (identity(ALICE), identity(BOB))  # the bot is not among them
    minify = commits[shas["minify"]]
    assert "Nobody" in oracle.trailers[shas["minify"]]
    assert "Empty <>" in oracle.trailers[shas["minify"]]
    assert minify.raw_co_authors == (identity(ERIN),)  # not Mallory: not a trailer
    assert commits[shas["month_end"]].raw_co_authors == (identity(ERIN),)  # folded
    assert commits[shas["deploy"]].co_authors == (identity(CAROL),)
    authors = {c.author.key for c in commits.values()}
    for never_author in (CAROL, ERIN, GITHUB_ACTIONS):
        assert never_author[1] not in authors
        assert oracle.co_authored(never_author[1])
    assert commits[shas["empty"]].authored and not commits[shas["empty"]].changes
    assert not commits[shas["bot_empty"]].changes

    excluded = oracle.overview_excluded()
    for reason in Reason:
        assert excluded[reason.value]["commits"] > 0, reason
        assert excluded[reason.value]["additions_lines"] > 0, reason
    authored = oracle.overview_authored()
    assert min(authored.values()) > 0
    all_in = oracle.all_in()
    assert git_line_totals(repo.path) == (all_in.added_lines, all_in.deleted_lines)
    for side, total in (
        ("additions_lines", all_in.added_lines),
        ("deletions_lines", all_in.deleted_lines),
    ):
        assert authored[side] + sum(r[side] for r in excluded.values()) == total

    times = [c.time for c in commits.values()]
    assert len({(t.year, t.month) for t in times}) >= 6
    assert len({t.isocalendar()[:2] for t in times}) >= 15
    local = datetime.fromisoformat("2023-01-22T23:30:00-05:00")  # a Sunday evening
    assert commits[shas["old_address"]].time.isocalendar()[:2] != local.isocalendar()[:2]
    assert commits[shas["month_end"]].time.month == 4


def is_bot(who: Identity) -> bool:
    return is_bot_identity(who, BOT_AUTHORS)


def documents_saying(oracle: AuthoredOracle) -> dict[str, dict[str, Any]]:
    """The oracle's figures in the contract's document models, as JSON reads them back."""
    now = datetime.now(UTC)
    all_in = oracle.all_in()
    overview = {
        "additions_lines": all_in.added_lines,
        "deletions_lines": all_in.deleted_lines,
        "addition_bytes": all_in.added_bytes,
        "deletion_bytes": all_in.deleted_bytes,
        "total_commits": len(oracle.commits),
        "total_contributors": len({c.author.key for c in oracle.commits.values()}),
        "authored": AuthoredTotals(**oracle.overview_authored()).model_dump(mode="json"),
        "excluded": Excluded.model_validate(oracle.overview_excluded()).model_dump(mode="json"),
    }
    activity = Activity(
        codebase_id=CODEBASE_ID,
        weekly=[ActivityPeriod(**row) for row in oracle.activity("week")],
        monthly=[ActivityPeriod(**row) for row in oracle.activity("month")],
        punch_card=[],
        generated_at=now,
    )
    people = [Contributor(**row) for row in oracle.ownership()]
    authors = len({c.author.key for c in oracle.commits.values()})
    ownership = Ownership(
        codebase_id=CODEBASE_ID, total_contributors=authors, contributors=people, generated_at=now
    )
    rows = [ContributorActivityRow(**row) for row in oracle.contributor_activity()]
    contributor_activity = ContributorActivity(
        codebase_id=CODEBASE_ID, total_contributors=len(rows), contributors=rows, generated_at=now
    )
    documents: dict[str, Document] = {
        "activity": activity,
        "ownership": ownership,
        "contributor_activity": contributor_activity,
    }
    return {"overview": overview} | {k: json.loads(d.to_json()) for k, d in documents.items()}


def test_oracle_rows_are_the_documents_rows(oracle: AuthoredOracle) -> None:
    """Each row the oracle computes has exactly the fields of its document model."""
    assert set(oracle.overview_authored()) == set(AuthoredTotals.model_fields)
    assert set(oracle.overview_excluded()) == set(Excluded.model_fields)
    for figures in oracle.overview_excluded().values():
        assert set(figures) == set(ExcludedFigures.model_fields)
    for row in oracle.activity("week") + oracle.activity("month"):
        assert set(row) == set(ActivityPeriod.model_fields)
    for row in oracle.ownership():
        assert set(row) == set(Contributor.model_fields)
    for row in oracle.contributor_activity():
        assert set(row) == set(ContributorActivityRow.model_fields)
        for week in row["weeks"]:
            assert set(week) == set(ContributorWeek.model_fields)


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ("overview", ("authored", "addition_bytes")),
        ("overview", ("excluded", "generated", "commits")),
        ("activity", ("weekly", 3, "authored_deletions_lines")),
        ("ownership", ("contributors", -1, "co_authored_commits")),
        ("ownership", ("contributors", 1, "authored_deletion_bytes")),
        ("contributor_activity", ("contributors", 2, "weeks", 0, "commits")),
    ],
)
def test_checks_pass_the_oracle_and_fail_one_figure_off(
    oracle: AuthoredOracle, document: str, path: tuple[str | int, ...]
) -> None:
    """The checks accept documents that say what the oracle says, and no others."""
    documents = documents_saying(oracle)
    checks = {
        "overview": check_overview,
        "activity": check_activity,
        "ownership": check_ownership,
        "contributor_activity": check_contributor_activity,
    }
    for name, check in checks.items():
        check(documents[name], oracle)
    *parents, last = path
    target: Any = documents[document]
    for step in parents:
        target = target[step]
    target[last] += 1
    with pytest.raises(AssertionError):
        checks[document](documents[document], oracle)


def test_oracle_rules_by_hand() -> None:
    # floor(x / n) for each co-author, the rest for the author: 7 = 3 + 2 + 2, 10 = 4 + 3 + 3.
    assert Figures(7, 1, 10, 3).share(3, author=True) == Figures(3, 1, 4, 1)
    assert Figures(7, 1, 10, 3).share(3, author=False) == Figures(2, 0, 3, 1)
    sha = "0123456789abcdef0123456789abcdef01234567"
    text = f"# comment\n\n  {sha.upper()}  \n{'f' * 40} # trailing\n{sha[:12]}\n{'e' * 64}\n"
    assert parse_ignore_revs(text) == {sha, "e" * 64}
    assert parse_co_author("  Ann Lee  < ann@x.example > ") == Identity("Ann Lee", "ann@x.example")
    assert parse_co_author("<ann@x.example>") == Identity("", "ann@x.example")
    assert parse_co_author("Nobody") is None
    assert parse_co_author("Empty <  >") is None
    assert is_bot_identity(Identity("x", "1+app[BOT]@users.noreply.github.com"), ())
    assert is_bot_identity(Identity("App[Bot]", "app@x.example"), ())
    assert not is_bot_identity(Identity("x", "app@x[bot]"), ())  # the domain, not the local part
    assert is_bot_identity(Identity("x", "CI-7@Example.com"), ("ci-*@EXAMPLE.COM",))
    assert is_bot_identity(Identity("Release-Tool", "r@x.example"), ("release-*",))
    assert not is_bot_identity(Identity("Releases", "release@x.example"), ("release-*",))
