"""Issue 10's oracle checked on its own: the per-path and per-team figures of
tests/support/paths.py counted by hand on a tiny repository, its invariants on the fixture
repository, and guards that the fixture holds every case it claims.

The engine's `paths` objects and `teams` document are compared with the oracle by
check_paths_object and check_teams_document; the tests that run the engine wait for its paths
and teams phases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contract import layout
from contract.documents import TOP_HOTSPOTS, EmailMode
from contract.paths import display_path, raw_path
from contract.storage.local import LocalStorage
from tests.support.authored import Identity
from tests.support.gitrepos import Author, GitRepo, git_line_totals
from tests.support.paths import (
    ALICE,
    BOB,
    CAFE_LATIN1,
    CAFE_OTHER,
    DAN,
    DEPENDABOT,
    GRACE,
    HEAD_COMMITTED,
    RESUME_DIR,
    SORTS,
    WINDOW_START,
    PathHistory,
    PathsRepo,
    build_paths_repo,
    bus_factor,
    children,
    count_lines,
    parent_of,
    path_history,
    paths_oracle,
    recommit_at,
    sort_key,
    teams_oracle,
)
from worker.engine.pipeline import analyze_codebase

CODEBASE_ID = 10
ANN: Author = ("Ann", "ann@example.net")  # sorts before Bob by email, co-authors for him


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment).astimezone(UTC)


def person(who: Author, churn: int) -> dict[str, Any]:
    return {
        "name": who[0],
        "email_sha256": hashlib.sha256(who[1].lower().encode()).hexdigest(),
        "authored_churn": churn,
    }


# -- by hand, on a tiny repository -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> PathHistory:
    """Four commits; H = 2024-04-01T00:00Z, so the window opens 2024-01-02T00:00Z."""
    repo = GitRepo.init(tmp_path_factory.mktemp("tiny") / "repo")
    repo.commit(
        {"a/b/x.txt": "1\n2\n3\n", "a/y.txt": "p\nq\n", "README.md": "hi\n"},
        "c1",
        ALICE,
        "2024-01-01T00:00:00+00:00",
    )
    repo.commit(
        {"a/b/x.txt": "1\n2\n3\n4\n", "a/y.txt": "p\nq\nr\n"},
        f"c2\n\nCo-authored-by: {ANN[0]} <{ANN[1]}>\n",
        BOB,
        "2024-03-01T12:00:00+02:00",
    )
    repo.commit({"a/y.txt": "p\nq\nr\ns\n"}, "c3", DEPENDABOT, "2024-03-20T00:00:00+00:00")
    repo.commit(
        {"README.md": None, "a/b/z.bin": b"\x00\x01\x02"}, "c4", ALICE, "2024-03-25T00:00:00Z"
    )
    recommit_at(repo, "2024-04-01T00:00:00+00:00")
    return path_history(repo)


C1, C2, C3, C4 = (
    at("2024-01-01T00:00:00Z"),
    at("2024-03-01T10:00:00Z"),
    at("2024-03-20T00:00:00Z"),
    at("2024-03-25T00:00:00Z"),
)
# c1 is outside the window, c2-c4 inside. c2's churn is shared with Ann per (path, commit):
# 1 line on each of x.txt and y.txt gives her floor(1/2) = 0 on each file, but on a/ and the
# root c2 has 2 lines there and she gets floor(2/2) = 1.
TINY: dict[bytes, dict[str, Any]] = {
    b"": {
        "kind": "dir",
        "class": None,
        "commits": 4,
        "additions_lines": 9,
        "deletions_lines": 1,
        "authored_additions_lines": 8,  # c3's line is a bot's
        "authored_deletions_lines": 1,
        "contributors": 3,
        "first_commit_at": C1,
        "last_commit_at": C4,  # the head's author time, not its committer time
        "recent_commits": 3,
        "lines": 8,
        "hotspot": 24,
        "top_contributors": [person(ALICE, 7), person(ANN, 1), person(BOB, 1)],
        "bus_factor": 1,
    },
    b"a": {
        "kind": "dir",
        "class": None,
        "commits": 4,
        "additions_lines": 8,
        "deletions_lines": 0,
        "authored_additions_lines": 7,
        "authored_deletions_lines": 0,
        "contributors": 3,
        "first_commit_at": C1,
        "last_commit_at": C4,
        "recent_commits": 3,
        "lines": 8,
        "hotspot": 24,
        "top_contributors": [person(ALICE, 5), person(ANN, 1), person(BOB, 1)],
        "bus_factor": 1,
    },
    b"a/b": {
        "kind": "dir",
        "class": None,
        "commits": 3,
        "additions_lines": 4,
        "deletions_lines": 0,
        "authored_additions_lines": 4,
        "authored_deletions_lines": 0,
        "contributors": 2,
        "first_commit_at": C1,
        "last_commit_at": C4,
        "recent_commits": 2,
        "lines": 4,
        "hotspot": 8,
        "top_contributors": [person(ALICE, 3), person(BOB, 1)],
        "bus_factor": 1,
    },
    b"a/b/x.txt": {
        "kind": "file",
        "class": "source",
        "commits": 2,
        "additions_lines": 4,
        "deletions_lines": 0,
        "authored_additions_lines": 4,
        "authored_deletions_lines": 0,
        "contributors": 2,
        "first_commit_at": C1,
        "last_commit_at": C2,
        "recent_commits": 1,
        "lines": 4,
        "hotspot": 4,
        "top_contributors": [person(ALICE, 3), person(BOB, 1)],
        "bus_factor": 1,
    },
    b"a/b/z.bin": {
        "kind": "file",
        "class": "source",
        "commits": 1,
        "additions_lines": 0,
        "deletions_lines": 0,
        "authored_additions_lines": 0,
        "authored_deletions_lines": 0,
        "contributors": 1,
        "first_commit_at": C4,
        "last_commit_at": C4,
        "recent_commits": 1,
        "lines": 0,  # binary
        "hotspot": 0,
        "top_contributors": [],
        "bus_factor": 0,
    },
    b"a/y.txt": {
        "kind": "file",
        "class": "source",
        "commits": 3,
        "additions_lines": 4,
        "deletions_lines": 0,
        "authored_additions_lines": 3,
        "authored_deletions_lines": 0,
        "contributors": 3,
        "first_commit_at": C1,
        "last_commit_at": C3,
        "recent_commits": 2,
        "lines": 4,
        "hotspot": 8,
        "top_contributors": [person(ALICE, 2), person(BOB, 1)],
        "bus_factor": 1,
    },
    b"README.md": {
        "kind": "file",
        "class": "documentation",
        "commits": 2,
        "additions_lines": 1,
        "deletions_lines": 1,
        "authored_additions_lines": 1,
        "authored_deletions_lines": 1,
        "contributors": 1,
        "first_commit_at": C1,
        "last_commit_at": C4,
        "recent_commits": 1,
        "lines": None,  # deleted
        "hotspot": 0,
        "top_contributors": [person(ALICE, 2)],
        "bus_factor": 1,
    },
}


def test_tiny_repository_by_hand(tiny: PathHistory) -> None:
    assert tiny.rows() == {path: {"path": path} | row for path, row in TINY.items()}


@pytest.mark.parametrize(
    ("prefix", "sort", "expected"),
    [
        (b"", "churn", [b"a", b"README.md"]),
        (b"", "hotspot", [b"a", b"README.md"]),
        (b"", "recent", [b"a", b"README.md"]),
        (b"a", "churn", [b"a/b", b"a/y.txt"]),  # 4 and 4: by path
        (b"a/", "hotspot", [b"a/b", b"a/y.txt"]),  # 8 and 8
        (b"a/b", "churn", [b"a/b/x.txt", b"a/b/z.bin"]),
        (b"a/b/", "recent", [b"a/b/x.txt", b"a/b/z.bin"]),  # 1 and 1
        (b"a/y.txt", "churn", []),  # a file has no children
    ],
)
def test_tiny_children_by_hand(
    tiny: PathHistory, prefix: bytes, sort: str, expected: list[bytes]
) -> None:
    assert [row["path"] for row in children(tiny.rows(), prefix, sort)] == expected


def test_unknown_prefix(tiny: PathHistory) -> None:
    with pytest.raises(KeyError):
        children(tiny.rows(), b"a/nope", "churn")


def test_tiny_teams_by_hand(tiny: PathHistory) -> None:
    owners = {b"a/b/x.txt": ("@x", "@both"), b"a/y.txt": ("@both",), b"a/b/z.bin": ()}
    # Shares per (file, commit): Ann's floor(1/2) on each file is 0, though a/ gives her 1.
    assert teams_oracle(tiny, owners) == {
        "teams": [
            {
                "owner": "@both",
                "files": 2,
                "lines": 8,
                "commits": 3,
                "authored_additions_lines": 7,
                "authored_deletions_lines": 0,
                "contributors": 3,
                "bus_factor": 1,
                "top_contributors": [person(ALICE, 5), person(BOB, 2)],
            },
            {
                "owner": "@x",
                "files": 1,
                "lines": 4,
                "commits": 2,
                "authored_additions_lines": 4,
                "authored_deletions_lines": 0,
                "contributors": 2,
                "bus_factor": 1,
                "top_contributors": [person(ALICE, 3), person(BOB, 1)],
            },
        ],
        "unowned": {  # a/b/z.bin: its rule names nobody
            "files": 1,
            "lines": 0,
            "commits": 1,
            "authored_additions_lines": 0,
            "authored_deletions_lines": 0,
            "contributors": 1,
            "bus_factor": 0,
            "top_contributors": [],
        },
    }
    with pytest.raises(ValueError):
        teams_oracle(tiny, {b"README.md": ("@gone",)})  # not at the head


def test_rules_by_hand() -> None:
    assert bus_factor([]) == 0
    assert bus_factor([0, 0]) == 0
    assert bus_factor([3, 1, 1]) == 1  # 3 > 5 / 2
    assert bus_factor([5, 5]) == 2  # 5 is not more than half of 10
    assert bus_factor([1, 2, 2, 1]) == 2
    assert bus_factor([1] * 7) == 4
    assert count_lines(b"") == 0
    assert count_lines(b"a\nb") == 2
    assert count_lines(b"a\r\nb\n") == 2
    assert count_lines(b"a\n\x00") == 0
    assert count_lines(b"a\n" * 5000 + b"\x00") == 5001  # the NUL is past git's 8000 bytes


# -- the fixture repository ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_repo(tmp_path_factory: pytest.TempPathFactory) -> PathsRepo:
    """Built once for this module. Read it; never modify it."""
    return build_paths_repo(tmp_path_factory.mktemp("paths") / "repo")


@pytest.fixture(scope="module")
def history(fixture_repo: PathsRepo) -> PathHistory:
    return path_history(fixture_repo.repo)


@pytest.fixture(scope="module")
def rows(fixture_repo: PathsRepo) -> dict[bytes, dict[str, Any]]:
    return paths_oracle(fixture_repo.repo)


def test_fixture_holds_every_case(
    fixture_repo: PathsRepo, history: PathHistory, rows: dict[bytes, dict[str, Any]]
) -> None:
    """The oracle sees each case the fixture claims, so a broken fixture cannot pass quietly."""
    repo, shas, commits = fixture_repo.repo, fixture_repo.shas, history.authored.commits
    assert set(commits) == set(repo.git("rev-list", "--branches").split())

    # Directories four deep.
    assert b"src/core/engine/lexer" in rows and rows[b"src/core/engine/lexer"]["kind"] == "dir"
    # Deleted, then added again: at the head with its second life's lines.
    added_deleted = repo.git("log", "--format=%H", "--diff-filter=AD", "main", "--", "docs/old.md")
    assert added_deleted.split() == [shas["readd_doc"], shas["delete_doc"], shas["root"]]
    assert rows[b"docs/old.md"]["lines"] == 3
    # A file replaced by a directory of that name: one entry, a directory.
    assert any(c.path == b"lib/config" for c in commits[shas["root"]].changes)
    assert b"lib/config" not in history.head_lines
    assert (rows[b"lib/config"]["kind"], rows[b"lib/config"]["class"]) == ("dir", None)
    # Names that are not UTF-8, two of them alike once decoded with errors="replace".
    for name in (CAFE_LATIN1, CAFE_OTHER, RESUME_DIR):
        assert name in rows
        with pytest.raises(UnicodeDecodeError):
            name.decode()
    assert CAFE_LATIN1.decode(errors="replace") == CAFE_OTHER.decode(errors="replace")
    # A merge whose first-parent diff carries the side branch's changes again.
    merge = commits[shas["merge"]]
    assert len(repo.git("rev-list", "--parents", "-1", shas["merge"]).split()) == 3
    assert {c.path for c in merge.changes} == {
        b"src/core/engine/lexer/rules.py",
        b"src/core/engine/lexer/tokens.py",
    }
    # A force-pushed branch: the dropped commit is in the object database, not the commit set.
    assert shas["dropped"] not in commits
    repo.run("cat-file", "-e", shas["dropped"])
    assert b"tools/dropped.py" not in rows
    assert b"tools/gen.py" in rows and rows[b"tools/gen.py"]["lines"] is None  # unmerged
    # H is the head's committer time; its author time is earlier.
    head = commits[shas["head"]]
    assert history.head_time == int(at(HEAD_COMMITTED).timestamp())
    assert head.time < at(HEAD_COMMITTED)
    # Commits before the window, on its first second, one second before it, after H.
    start = int(at(WINDOW_START).timestamp())
    assert history.head_time - start == 90 * 86400
    assert int(commits[shas["window_start"]].time.timestamp()) == start
    assert int(commits[shas["before_window"]].time.timestamp()) == start - 1
    assert history.is_recent(commits[shas["window_start"]])
    assert not history.is_recent(commits[shas["before_window"]])
    assert commits[shas["future"]].time > at(HEAD_COMMITTED)
    assert not history.is_recent(commits[shas["future"]])
    assert not history.is_recent(commits[shas["root"]])
    # Co-authors: a person and a bot, who is not among the people.
    co_authored = commits[shas["co_authored"]]
    assert co_authored.co_authors == (Identity(*DAN), Identity(*GRACE), Identity(*DEPENDABOT))
    assert co_authored.people == (co_authored.author, Identity(*DAN), Identity(*GRACE))
    # A bot's commit, an ignored one, the mailmap, and each path class.
    assert commits[shas["bot"]].by_bot and commits[shas["bot"]].changes
    assert commits[shas["reformat"]].ignored
    assert commits[shas["main_during_side"]].author == Identity(*ALICE)
    assert rows[b"vendor/left-pad/index.js"]["class"] == "vendored"
    assert rows[b"package-lock.json"]["class"] == "generated"
    assert rows[b"lib/config/local/override.py"]["class"] == "generated"  # .gitattributes
    assert rows[CAFE_LATIN1]["class"] == "documentation"  # .gitattributes
    assert rows[b"docs/guide.md"]["class"] == "documentation"
    # Binary files, at the head too; a mode change of 0 lines; an empty commit.
    assert any(c.binary for c in commits[shas["binary"]].changes)
    assert history.head_lines[b"assets/logo.png"] == 0
    assert [c.figures.churn for c in commits[shas["chmod"]].changes] == [0]
    assert not commits[shas["empty"]].changes
    # The figures take every value their rules distinguish.
    assert len(history.person_churn(b"")) > 5  # top_contributors cuts
    assert {row["bus_factor"] for row in rows.values()} >= {0, 1, 2}
    assert rows[b"vendor"]["commits"] and not rows[b"vendor"]["top_contributors"]


def test_figures_counted_by_hand(rows: dict[bytes, dict[str, Any]]) -> None:
    """A few of the fixture's figures, counted from build_paths_repo by hand."""
    # Alice's 4 lines as a file; Bob's -4, +6 and +2 (the last generated) as a directory.
    config = rows[b"lib/config"]
    assert (config["commits"], config["additions_lines"], config["deletions_lines"]) == (2, 12, 4)
    assert (config["authored_additions_lines"], config["lines"]) == (10, 8)
    # Added (5), deleted (-5), added again (3); recent only the last.
    old = rows[b"docs/old.md"]
    assert (old["commits"], old["additions_lines"], old["deletions_lines"]) == (3, 8, 5)
    assert (old["recent_commits"], old["hotspot"], old["bus_factor"]) == (1, 3, 2)
    # The window's edge: one second before it and on it.
    assert rows[b"docs/guide.md"]["recent_commits"] == 0
    assert rows[b"src/core/util.py"]["recent_commits"] == 1
    # parser.py: of root, Alice's, the reformat, co_authored, future, only co_authored is recent.
    parser = rows[b"src/core/engine/parser.py"]
    assert (parser["commits"], parser["recent_commits"], parser["lines"]) == (5, 1, 23)
    assert parser["last_commit_at"] == at("2024-07-15T00:00:00Z")
    # rules.py: Frank's 7 and his 2 of 3 shared with Grace, Alice's merge bringing 8 again.
    rules = rows[b"src/core/engine/lexer/rules.py"]
    assert rules["top_contributors"] == [
        person(("Frank", "frank@example.com"), 9),
        person(ALICE, 8),
        person(GRACE, 1),
    ]
    assert (rules["commits"], rules["additions_lines"], rules["bus_factor"]) == (3, 17, 2)
    # At the root Dan gets 1 of co_authored's 4 lines (0 on each of its two files) and ties Erin
    # at 9: the earlier email keeps him in the top 5.
    top = [(p["name"], p["authored_churn"]) for p in rows[b""]["top_contributors"]]
    assert top == [
        ("Alice Liddell", 73),
        ("Carol", 17),
        ("Frank", 16),
        ("Bob Builder", 11),
        ("Dan", 9),
    ]
    assert rows[b""]["commits"] == 22  # 23 commits, one of them empty
    assert rows[b""]["recent_commits"] == 8


def test_root_is_the_whole_repository(
    fixture_repo: PathsRepo, history: PathHistory, rows: dict[bytes, dict[str, Any]]
) -> None:
    root, authored = rows[b""], history.authored
    assert git_line_totals(fixture_repo.repo.path) == (
        root["additions_lines"],
        root["deletions_lines"],
    )
    totals = authored.overview_authored()
    assert (root["authored_additions_lines"], root["authored_deletions_lines"]) == (
        totals["additions_lines"],
        totals["deletions_lines"],
    )
    changing = [c for c in authored.commits.values() if c.changes]
    assert root["commits"] == len(changing)
    assert root["contributors"] == len({c.author.key for c in changing})
    assert root["first_commit_at"] == min(c.time for c in changing)
    assert root["last_commit_at"] == max(c.time for c in changing)
    assert root["lines"] == sum(git_lines_from_empty_tree(fixture_repo.repo).values())


def git_lines_from_empty_tree(repo: GitRepo) -> dict[bytes, int]:
    """Lines per file at the head as git counts them adding the whole tree (binary 0)."""
    empty = repo.git("hash-object", "-t", "tree", "--stdin")
    out = repo.run("diff", "--numstat", "-z", "--no-renames", "--no-textconv", empty, "main")
    fields = out.split(b"\x00")[:-1]
    lines = {}
    for field in fields:
        added, _deleted, path = field.split(b"\t", 2)
        lines[path] = 0 if added == b"-" else int(added)
    return lines


def test_head_lines_are_gits(fixture_repo: PathsRepo, history: PathHistory) -> None:
    assert history.head_lines == git_lines_from_empty_tree(fixture_repo.repo)


def test_directories_sum_their_children(
    history: PathHistory, rows: dict[bytes, dict[str, Any]]
) -> None:
    """A directory's sums are its children's plus its own file's (lib/config was a file)."""
    sums = (
        "additions_lines",
        "deletions_lines",
        "authored_additions_lines",
        "authored_deletions_lines",
    )
    for path, row in rows.items():
        if row["kind"] != "dir":
            continue
        below = children(rows, path, "churn")
        own = history.file_changes(path)
        assert below, path
        figures = [sum(r[name] for r in below) for name in sums]
        own_figures = [
            sum(c.figures.added_lines for _, c in own),
            sum(c.figures.deleted_lines for _, c in own),
            sum(c.figures.added_lines for m, c in own if m.reason(c) is None),
            sum(c.figures.deleted_lines for m, c in own if m.reason(c) is None),
        ]
        assert [row[name] for name in sums] == [
            a + b for a, b in zip(figures, own_figures, strict=True)
        ], path
        for name in ("commits", "contributors", "recent_commits"):
            most = max(r[name] for r in below)
            assert most <= row[name] <= sum(r[name] for r in below) + len(own), (path, name)
        assert row["first_commit_at"] == min(r["first_commit_at"] for r in below + own_rows(own))
        assert row["last_commit_at"] == max(r["last_commit_at"] for r in below + own_rows(own))
        counted = [r["lines"] for r in below if r["lines"] is not None]
        assert row["lines"] == (sum(counted) if counted else None), path
    assert history.file_changes(b"lib/config")  # the case above is there


def own_rows(own: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"first_commit_at": c.time, "last_commit_at": c.time} for c, _ in own]


def test_each_row_is_consistent(history: PathHistory, rows: dict[bytes, dict[str, Any]]) -> None:
    for path, row in rows.items():
        assert tuple(row) == PATH_FIELDS or set(row) == set(PATH_FIELDS), path
        people = history.person_churn(path)
        churn = row["authored_additions_lines"] + row["authored_deletions_lines"]
        assert sum(people.values()) == churn, path
        assert 0 <= row["bus_factor"] <= len(people), path
        assert (row["bus_factor"] == 0) == (churn == 0), path
        assert row["hotspot"] == row["recent_commits"] * (row["lines"] or 0), path
        assert row["recent_commits"] <= row["commits"], path
        assert row["authored_additions_lines"] <= row["additions_lines"], path
        assert row["first_commit_at"] <= row["last_commit_at"], path
        assert (row["class"] is None) == (row["kind"] == "dir"), path
        shown = [p["authored_churn"] for p in row["top_contributors"]]
        assert shown == sorted(people.values(), reverse=True)[:5], path
        assert all(shown), path
        assert row["contributors"] == len({c.author.key for c, _ in history.under[path]}), path


def test_children_are_every_path_once(rows: dict[bytes, dict[str, Any]]) -> None:
    listed: list[bytes] = []
    for path, row in rows.items():
        if row["kind"] == "dir":
            listed += [r["path"] for r in children(rows, path, "churn")]
    assert sorted(listed) == sorted(path for path in rows if path)
    for sort in SORTS:
        for directory in (b"", b"src/core", RESUME_DIR, b"data"):
            listing = children(rows, directory, sort)
            assert listing == sorted(listing, key=sort_key(sort))
            assert all(parent_of(r["path"]) == directory for r in listing)
            if directory:
                assert listing == children(rows, directory + b"/", sort)


# -- teams ---------------------------------------------------------------------------------------


CORE, DOCS = ("@acme/core",), ("@acme/docs",)
# Each head file's owners under the fixture's .github/CODEOWNERS, worked out by hand.
FIXTURE_OWNERS: dict[bytes, tuple[str, ...]] = {
    b".git-blame-ignore-revs": CORE,
    b".gitattributes": CORE,
    b".github/CODEOWNERS": CORE,
    b".mailmap": CORE,
    b"README.md": ("@acme/docs", "@alice"),  # *.md
    b"assets/icon.bin": CORE,
    b"assets/logo.png": CORE,
    CAFE_OTHER: CORE,
    CAFE_LATIN1: CORE,
    b"docs/guide.md": DOCS,  # /docs/ comes after *.md
    b"docs/old.md": DOCS,
    b"lib/config/defaults.py": CORE,
    b"lib/config/local/override.py": (),  # /lib/config/local/ names nobody
    b"package-lock.json": CORE,
    b"requirements.txt": CORE,
    RESUME_DIR + b"/notes.txt": CORE,
    b"scripts/build.sh": CORE,
    b"src/app.py": CORE,
    b"src/core/engine/lexer/rules.py": ("@acme/engine", "@bob"),
    b"src/core/engine/lexer/tokens.py": ("@acme/engine", "@bob"),
    b"src/core/engine/parser.py": ("@acme/engine", "@bob"),
    b"src/core/util.py": CORE,
    b"vendor/left-pad/README.md": (),  # /vendor/ comes after *.md
    b"vendor/left-pad/index.js": (),
}


def test_fixture_owners_cover_the_head(history: PathHistory) -> None:
    assert set(FIXTURE_OWNERS) == set(history.head_lines)
    teams = teams_oracle(history, FIXTURE_OWNERS)
    assert [team["owner"] for team in teams["teams"]] == [
        "@acme/core",
        "@acme/docs",
        "@acme/engine",
        "@alice",
        "@bob",
    ]
    assert teams["unowned"]["files"] == 3
    by_owner = {team["owner"]: team for team in teams["teams"]}
    assert {k: v for k, v in by_owner["@bob"].items() if k != "owner"} == {
        k: v for k, v in by_owner["@acme/engine"].items() if k != "owner"
    }


def test_a_team_of_one_file_is_that_file(
    history: PathHistory, rows: dict[bytes, dict[str, Any]]
) -> None:
    for file in history.head_lines:
        (team,) = teams_oracle(history, {file: ("@solo",)})["teams"]
        assert team == {
            "owner": "@solo",
            "files": 1,
            **{key: rows[file][key] for key in team if key not in ("owner", "files")},
        }, file


def test_teams_by_top_directory(history: PathHistory, rows: dict[bytes, dict[str, Any]]) -> None:
    """Each head file owned by its top directory's team: the teams and `unowned` (files at the
    root) split the head; a team equals its directory when every file ever under it is still
    at the head."""
    owners = {
        file: (file.split(b"/")[0].decode("utf-8", "replace"),)
        for file in history.head_lines
        if b"/" in file
    }
    teams = teams_oracle(history, owners)
    parts = [*teams["teams"], teams["unowned"]]
    assert sum(t["files"] for t in parts) == len(history.head_lines)
    assert sum(t["lines"] for t in parts) == rows[b""]["lines"]
    for name in ("authored_additions_lines", "authored_deletions_lines"):
        assert sum(t[name] for t in parts) == sum(rows[f][name] for f in history.head_lines)
    by_owner = {team["owner"]: team for team in teams["teams"]}
    whole = ("lines", "commits", "authored_additions_lines", "authored_deletions_lines")
    for directory in (b"src", b"docs", b"vendor", b"assets", b"lib"):
        team, row = by_owner[directory.decode()], rows[directory]
        ever = {c.path for _, c in history.under[directory]}
        if ever <= set(history.head_lines):
            assert {k: team[k] for k in whole} == {k: row[k] for k in whole}, directory
            assert team["contributors"] == row["contributors"], directory
        else:
            assert team["commits"] < row["commits"], directory  # lib/config's file is gone
    assert not {c.path for _, c in history.under[b"lib"]} <= set(history.head_lines)


# -- the engine against the oracle ---------------------------------------------------------------

# The fields of a `paths` entry the oracle computes (the provenance's are issue 16's).
PATH_FIELDS = (
    "path",
    "kind",
    "class",
    "commits",
    "additions_lines",
    "deletions_lines",
    "authored_additions_lines",
    "authored_deletions_lines",
    "contributors",
    "first_commit_at",
    "last_commit_at",
    "recent_commits",
    "lines",
    "top_contributors",
    "bus_factor",
    "hotspot",
)


def path_bytes(text: str) -> bytes:
    """A path as a document writes it (contract/paths.py), back to git's bytes."""
    return raw_path(text)


def path_text(path: bytes) -> str:
    return display_path(path)


def from_document(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A stored entry in the oracle's terms: its fields the oracle computes, path as bytes, times
    parsed."""
    row = {key: entry[key] for key in PATH_FIELDS}
    row["path"] = path_bytes(row["path"])
    for key in ("first_commit_at", "last_commit_at"):
        row[key] = datetime.fromisoformat(row[key])
    return row


def check_paths_object(stored: Mapping[str, Any], rows: Mapping[bytes, dict[str, Any]]) -> bytes:
    """One stored `paths` object says what the oracle says of its directory's direct children
    and, if it holds it, of the directory itself; returns the directory. Assumed shape, to adapt
    here: {"path": directory, "entry": its own entry (optional), "paths": [child, ...]}, children
    in any order."""
    directory = path_bytes(stored["path"])
    expected = {row["path"]: row for row in children(rows, directory, "churn")}
    actual = {row["path"]: row for row in map(from_document, stored["paths"])}
    assert actual == expected, path_text(directory)
    if "entry" in stored:
        assert from_document(stored["entry"]) == rows[directory], path_text(directory)
    return directory


def check_paths_objects(
    stored: Sequence[Mapping[str, Any]], rows: Mapping[bytes, dict[str, Any]]
) -> None:
    """One object per directory, each checked."""
    listed = [check_paths_object(one, rows) for one in stored]
    assert sorted(listed) == sorted(path for path, row in rows.items() if row["kind"] == "dir")


def check_teams_document(document: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """The `teams` document against teams_oracle's answer, teams in any order (line provenance
    aside: tests/test_provenance.py checks it against git blame)."""
    assert {team["owner"]: _unblamed(team) for team in document["teams"]} == {
        team["owner"]: team for team in expected["teams"]
    }
    assert _unblamed(document["unowned"]) == expected["unowned"]


def _unblamed(team: Mapping[str, Any]) -> dict[str, Any]:
    provenance = ("surviving_lines", "top_owners", "bus_factor_lines")
    return {name: value for name, value in team.items() if name not in provenance}


def to_document(row: Mapping[str, Any]) -> dict[str, Any]:
    return dict(row) | {
        "path": path_text(row["path"]),
        "first_commit_at": row["first_commit_at"].isoformat(),
        "last_commit_at": row["last_commit_at"].isoformat(),
        "surviving_lines": 0,  # a field the oracle does not compute
    }


def as_stored(rows: Mapping[bytes, dict[str, Any]]) -> list[dict[str, Any]]:
    """The oracle's figures as stored objects would hold them, through JSON."""
    objects = []
    for path, row in rows.items():
        if row["kind"] == "dir":
            stored = {
                "path": path_text(path),
                "entry": to_document(row),
                "paths": [to_document(child) for child in children(rows, path, "hotspot")],
            }
            objects.append(json.loads(json.dumps(stored)))
    return objects


@pytest.mark.parametrize(
    ("directory", "field"),
    [
        (b"", "commits"),
        (b"src/core", "recent_commits"),
        (b"data", "lines"),
        (b"lib/config", "bus_factor"),
    ],
)
def test_checks_pass_the_oracle_and_fail_one_figure_off(
    rows: dict[bytes, dict[str, Any]], directory: bytes, field: str
) -> None:
    for place in ("paths", "entry"):
        stored = as_stored(rows)
        check_paths_objects(stored, rows)
        (listing,) = [one for one in stored if path_bytes(one["path"]) == directory]
        entry = listing["paths"][0] if place == "paths" else listing["entry"]
        entry[field] += 1
        with pytest.raises(AssertionError):
            check_paths_objects(stored, rows)


def test_teams_check_fails_one_figure_off(history: PathHistory) -> None:
    expected = teams_oracle(history, FIXTURE_OWNERS)
    document = json.loads(json.dumps(expected))
    document["teams"].reverse()
    check_teams_document(document, expected)
    document["unowned"]["commits"] += 1
    with pytest.raises(AssertionError):
        check_teams_document(document, expected)


async def engine_documents(repo: GitRepo, root: Path) -> tuple[list[dict[str, Any]], Any]:
    """The engine's stored `paths` objects and `teams` document for the repository."""
    storage = LocalStorage(root / "storage")
    try:
        await analyze_codebase(
            str(repo.path), storage, CODEBASE_ID, root / "work", email_mode=EmailMode.PLAIN
        )
        stored = []
        for key in await storage.list(f"analytics/{CODEBASE_ID}/paths/"):
            found = await storage.get(key)
            assert found is not None, key
            stored.append(json.loads(found.data))
        teams = await storage.get(layout.codebase_document(CODEBASE_ID, "teams"))
        return stored, None if teams is None else json.loads(teams.data)
    finally:
        await storage.close()


async def test_engine_paths_equal_the_oracle(
    fixture_repo: PathsRepo, rows: dict[bytes, dict[str, Any]], tmp_path: Path
) -> None:
    stored, _ = await engine_documents(fixture_repo.repo, tmp_path)
    check_paths_objects(stored, rows)


async def test_engine_teams_equal_the_oracle(
    fixture_repo: PathsRepo, history: PathHistory, tmp_path: Path
) -> None:
    _, teams = await engine_documents(fixture_repo.repo, tmp_path)
    assert teams is not None, "teams.json was not written"
    check_teams_document(teams, teams_oracle(history, FIXTURE_OWNERS))


async def test_the_run_gives_its_top_hotspots(
    fixture_repo: PathsRepo, rows: dict[bytes, dict[str, Any]], tmp_path: Path
) -> None:
    """The files with the largest hotspots, for the org summary: the oracle's, largest first,
    ties by path."""
    storage = LocalStorage(tmp_path / "storage")
    try:
        result = await analyze_codebase(str(fixture_repo.repo.path), storage, 9, tmp_path / "work")
    finally:
        await storage.close()
    files = [row for row in rows.values() if row["kind"] == "file" and row["hotspot"] > 0]
    files.sort(key=lambda row: (-row["hotspot"], row["path"]))
    expected = [
        (path_text(row["path"]), row["hotspot"], row["recent_commits"], row["lines"])
        for row in files[:TOP_HOTSPOTS]
    ]
    assert expected, "the fixture has no hotspot"
    assert [tuple(spot) for spot in result.hotspots] == expected
