"""The per-path and per-team figures (DESIGN.md definitions 14 and 15, as notes/spec10.md settles
them) computed from git's own output, independently of the engine.

What each input is read from:
- the per-file changes and everything the authored figures decide (path classes, bots, the
  mailmap, co-authors, ignored revisions): the authored oracle (tests/support/authored.py), built
  on `git log --branches --numstat -z --diff-merges=first-parent --no-renames`, `git check-attr`,
  enry, `git check-mailmap` and git's trailer rules;
- H, the end of the recent window: `git log -1 --format=%ct <default>`, the committer time of the
  default head;
- lines at the head: `git ls-tree -r -z <default>` and each blob's lines as definition 7 counts
  them (a NUL in the first 8000 bytes, git's sniff, makes a blob binary: 0 lines).

A path is bytes from the root with no leading or trailing slash, the root is b"". A change to the
file F counts for F, for each directory above F and for the root. A path that was a file in one
commit and a directory in another is one entry, a directory (class None): it covers the changes
to the file of that name and to every file under it, so its figures are its own file's plus its
children's.

Like the authored oracle, this reads the working tree (for attributes and the mailmap): the
default branch must be checked out and clean.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.authored import AuthoredOracle, Change, Commit, authored_oracle
from tests.support.gitrepos import Author, Content, GitRepo, RepoPath, git_date

RECENT_SECONDS = 90 * 86400
TOP_CONTRIBUTORS = 5
# git calls a blob binary when its first 8000 bytes hold a NUL (buffer_is_binary).
BINARY_SNIFF_BYTES = 8000
SORTS = ("churn", "hotspot", "recent")

PathChange = tuple[Commit, Change]


def ancestors(path: bytes) -> list[bytes]:
    """The path itself, then each directory above it, then the root."""
    parts = path.split(b"/")
    return [b"/".join(parts[:end]) for end in range(len(parts), 0, -1)] + [b""]


def parent_of(path: bytes) -> bytes:
    return path.rpartition(b"/")[0]


def count_lines(data: bytes) -> int:
    """Definition 7: newline-terminated lines plus a final unterminated one; binary counts 0."""
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return 0
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def git_head_lines(repo: GitRepo, default: str) -> dict[bytes, int]:
    """Every blob at the default head (regular files and symlinks; submodules are commits, not
    blobs) -> its lines."""
    lines = {}
    for entry in repo.run("ls-tree", "-r", "-z", default).split(b"\x00")[:-1]:
        meta, path = entry.split(b"\t", 1)
        _mode, kind, name = meta.decode().split()
        if kind == "blob":
            lines[path] = count_lines(repo.run("cat-file", "blob", name))
    return lines


def git_head_commit_time(repo: GitRepo, default: str) -> int:
    return int(repo.run("log", "-1", "--format=%ct", default))


def bus_factor(churn: Iterable[int]) -> int:
    """The fewest people whose churn, most first, is more than half of the whole; 0 for none."""
    ranked = sorted(churn, reverse=True)
    total = sum(ranked)
    held = 0
    for k, part in enumerate(ranked, 1):
        held += part
        if 2 * held > total:
            return k
    return 0


def split_among_people(portions: Iterable[tuple[Commit, int]]) -> Counter[str]:
    """Each portion (an authored commit's churn x on one path or file) shared by the commit's
    n people: floor(x / n) to each co-author, the rest to the author. Keyed by person."""
    people: Counter[str] = Counter()
    for commit, churn in portions:
        n = len(commit.people)
        part = churn // n
        for person in commit.people:
            mine = churn - (n - 1) * part if person.key == commit.author.key else part
            people[person.key] += mine
    return +people  # people with no churn left out


def authored_churn(commit: Commit, change: Change) -> int:
    """A change's lines if it is authored (definition 13), else 0."""
    return change.figures.churn if commit.reason(change) is None else 0


def sort_key(sort: str) -> Callable[[Mapping[str, Any]], tuple[int, bytes]]:
    """How the API orders a listing: `sort` descending, ties by path ascending."""
    figure: Callable[[Mapping[str, Any]], int] = {
        "churn": lambda row: row["additions_lines"] + row["deletions_lines"],
        "hotspot": lambda row: row["hotspot"],
        "recent": lambda row: row["recent_commits"],
    }[sort]
    return lambda row: (-figure(row), row["path"])


def children(
    rows: Mapping[bytes, dict[str, Any]], prefix: bytes, sort: str
) -> list[dict[str, Any]]:
    """The direct children of `prefix` (b"lib" and b"lib/" alike) as the API lists them.

    An unknown prefix raises KeyError (the API's 404); a file has no children."""
    prefix = prefix.removesuffix(b"/")
    if prefix not in rows:
        raise KeyError(prefix)
    below = [row for path, row in rows.items() if path and parent_of(path) == prefix]
    return sorted(below, key=sort_key(sort))


@dataclass
class PathHistory:
    """The commit set's per-file changes by path, with what the per-path figures need of the
    default head."""

    authored: AuthoredOracle
    head_time: int  # H: the default head's committer time, seconds since the epoch
    head_lines: dict[bytes, int]  # every file at the default head -> its lines
    under: dict[bytes, list[PathChange]]  # path -> the changes to it and to files under it

    def is_recent(self, commit: Commit) -> bool:
        """Author time within [H - 90 days, H]: a commit dated after H is not recent."""
        moment = int(commit.time.timestamp())
        return self.head_time - RECENT_SECONDS <= moment <= self.head_time

    def kind(self, path: bytes) -> str:
        """A directory if a changed file ever lay under it, whether or not a file of that name
        was changed too; else a file."""
        if path == b"" or any(change.path != path for _, change in self.under[path]):
            return "dir"
        return "file"

    def lines(self, path: bytes) -> int | None:
        """The lines of the files at or under the path at the head; None when there are none."""
        below = path + b"/"
        counts = [
            lines
            for file, lines in self.head_lines.items()
            if not path or file == path or file.startswith(below)
        ]
        return sum(counts) if counts else None

    def commits_of(self, path: bytes) -> dict[str, Commit]:
        return {commit.sha: commit for commit, _ in self.under[path]}

    def file_changes(self, file: bytes) -> list[PathChange]:
        """The changes to the file of this name itself (not to files under a same-named dir)."""
        return [
            (commit, change) for commit, change in self.under.get(file, []) if change.path == file
        ]

    def person_churn(self, path: bytes) -> Counter[str]:
        """Each person's authored churn on the path, shared per (path, commit)."""
        per_commit: Counter[str] = Counter()
        for commit, change in self.under[path]:
            per_commit[commit.sha] += authored_churn(commit, change)
        commits = self.commits_of(path)
        return split_among_people((commits[sha], churn) for sha, churn in per_commit.items())

    def top_contributors(self, churn: Counter[str]) -> list[dict[str, Any]]:
        """The people with the most churn (> 0), ties by lower-cased email; name as ownership
        shows it."""
        ranked = sorted(churn.items(), key=lambda item: (-item[1], item[0]))
        return [
            {
                "name": self.authored.shown_identity(key).name,
                "email_sha256": hashlib.sha256(key.encode()).hexdigest(),
                "authored_churn": value,
            }
            for key, value in ranked[:TOP_CONTRIBUTORS]
        ]

    def row(self, path: bytes) -> dict[str, Any]:
        """Every figure of the path's entry in the `paths` document (provenance aside)."""
        changes = self.under[path]
        commits = self.commits_of(path).values()
        authored = [(c, change) for c, change in changes if c.reason(change) is None]
        times = [commit.time for commit in commits]
        recent = sum(self.is_recent(commit) for commit in commits)
        lines = self.lines(path)
        kind = self.kind(path)
        churn = self.person_churn(path)
        return {
            "path": path,
            "kind": kind,
            "class": self.authored.classes[path].value if kind == "file" else None,
            "commits": len(commits),
            "additions_lines": sum(c.figures.added_lines for _, c in changes),
            "deletions_lines": sum(c.figures.deleted_lines for _, c in changes),
            "authored_additions_lines": sum(c.figures.added_lines for _, c in authored),
            "authored_deletions_lines": sum(c.figures.deleted_lines for _, c in authored),
            "contributors": len({commit.author.key for commit in commits}),
            "first_commit_at": min(times),
            "last_commit_at": max(times),
            "recent_commits": recent,
            "lines": lines,
            "hotspot": recent * (lines or 0),
            "top_contributors": self.top_contributors(churn),
            "bus_factor": bus_factor(churn.values()),
        }

    def rows(self) -> dict[bytes, dict[str, Any]]:
        return {path: self.row(path) for path in sorted(self.under)}

    # -- teams ------------------------------------------------------------------------------

    def team_figures(self, files: Sequence[bytes]) -> dict[str, Any]:
        """A team's figures over the head files it owns (shares per (file, commit))."""
        changes = [pair for file in files for pair in self.file_changes(file)]
        authored = [(c, change) for c, change in changes if c.reason(change) is None]
        churn = split_among_people((c, change.figures.churn) for c, change in authored)
        return {
            "files": len(files),
            "lines": sum(self.head_lines[file] for file in files),
            "commits": len({commit.sha for commit, _ in changes}),
            "authored_additions_lines": sum(c.figures.added_lines for _, c in authored),
            "authored_deletions_lines": sum(c.figures.deleted_lines for _, c in authored),
            "contributors": len({commit.author.key for commit, _ in changes}),
            "bus_factor": bus_factor(churn.values()),
            "top_contributors": self.top_contributors(churn),
        }


def path_history(
    repo: GitRepo, bot_authors: Sequence[str] = (), default: str = "main"
) -> PathHistory:
    """The history the per-path figures are computed from; `default` must be checked out."""
    if repo.current_branch() != default:
        raise AssertionError(f"the oracle reads the working tree: check out {default}")
    authored = authored_oracle(repo, bot_authors)
    under: dict[bytes, list[PathChange]] = defaultdict(list)
    for commit in authored.commits.values():
        for change in commit.changes:
            for path in ancestors(change.path):
                under[path].append((commit, change))
    return PathHistory(
        authored, git_head_commit_time(repo, default), git_head_lines(repo, default), dict(under)
    )


def paths_oracle(
    repo: GitRepo, bot_authors: Sequence[str] = (), default: str = "main"
) -> dict[bytes, dict[str, Any]]:
    """Every path ever changed in the commit set (files, directories, the root b"") -> its
    figures, as spec10.md defines each."""
    return path_history(repo, bot_authors, default).rows()


def teams_oracle(history: PathHistory, owners: Mapping[bytes, Sequence[str]]) -> dict[str, Any]:
    """The `teams` document's figures given each head file's owners (as the last matching
    CODEOWNERS line names them): teams sorted by owner, then `unowned`, the files with no owner
    (no line matches, or the one that does names nobody)."""
    strangers = set(owners) - set(history.head_lines)
    if strangers:
        raise ValueError(f"owners given for paths not at the head: {sorted(strangers)}")
    owned: dict[str, list[bytes]] = defaultdict(list)
    for file in sorted(history.head_lines):
        for owner in dict.fromkeys(owners.get(file, ())):
            owned[owner].append(file)
    unowned = [file for file in sorted(history.head_lines) if not owners.get(file)]
    return {
        "teams": [
            {"owner": owner, **history.team_figures(files)}
            for owner, files in sorted(owned.items())
        ],
        "unowned": history.team_figures(unowned),
    }


# -- the fixture repository ---------------------------------------------------------------

ALICE: Author = ("Alice Liddell", "alice@example.com")
ALICE_OLD: Author = ("alice", "Alice@Old.example")  # the mailmap makes her ALICE
BOB: Author = ("Bob Builder", "bob@example.org")
CAROL: Author = ("Carol", "carol@example.net")
DAN: Author = ("Dan", "dan@example.com")
ERIN: Author = ("Erin", "erin@example.com")
FRANK: Author = ("Frank", "frank@example.com")
GRACE: Author = ("Grace Hopper", "grace@example.com")  # a co-author, never an author
DEPENDABOT: Author = ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")

# H, the default head's committer time; its author time is ten days earlier.
HEAD_COMMITTED = "2024-06-30T12:00:00+00:00"
WINDOW_START = "2024-04-01T12:00:00+00:00"  # H - 90 days, inside the window

MAILMAP = "Alice Liddell <alice@example.com> <alice@old.example>\n"
GITATTRIBUTES = "data/** linguist-documentation\nlib/config/local/** linguist-generated\n"
CODEOWNERS = (
    "*                  @acme/core\n"
    "*.md               @acme/docs @alice\n"
    "/docs/             @acme/docs\n"
    "/src/core/engine/  @acme/engine @bob\n"
    "/vendor/\n"
    "/lib/config/local/\n"
)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(16))
ICON = bytes(range(256))
CAFE_LATIN1 = b"data/caf\xe9.txt"
CAFE_OTHER = b"data/caf\xe8.txt"  # decoded with errors="replace", the same text as CAFE_LATIN1
RESUME_DIR = b"r\xe9sum\xe9"


def numbered(prefix: str, count: int) -> str:
    return "".join(f"{prefix} {i}\n" for i in range(count))


# Each file's successive contents, so that every count in the tests can be checked by hand.
PARSER = [
    numbered("parse", 20),
    numbered("parse", 18) + numbered("parse v2", 4),  # -2 +4
    numbered("parse:", 18) + numbered("parse v2", 4),  # reformatted: -18 +18
    numbered("parse:", 18) + numbered("parse v2", 3) + "parse v3\n",  # -1 +1
    numbered("parse:", 18) + numbered("parse v2", 3) + "parse v3\nfuture\n",  # +1
]
UTIL = [
    numbered("util", 8),
    numbered("util", 8) + numbered("more", 2),  # +2
    numbered("util:", 8) + numbered("more", 2),  # reformatted: -8 +8
    numbered("util:", 8) + numbered("more", 2) + "edge\n",  # +1
]
TOKENS = [numbered("token", 10), numbered("token", 10) + numbered("keyword", 3)]
RULES = [numbered("rule", 7), numbered("rule", 6) + numbered("rule v2", 2)]


def recommit_at(repo: GitRepo, committed: str) -> str:
    """Give the checked-out head commit this committer time, its author time unchanged."""
    env = {"GIT_COMMITTER_DATE": git_date(committed)}
    repo.run("commit", "--amend", "--no-edit", "-q", "--no-verify", env=env)
    return repo.head()


@dataclass
class PathsRepo:
    repo: GitRepo
    shas: dict[str, str]  # the commits the checks name


def build_paths_repo(path: Path) -> PathsRepo:
    """The fixture repository: `main` checked out and clean, history from October 2023 to a head
    committed on HEAD_COMMITTED. What each case is for is said where it is built."""
    repo = GitRepo.init(path)
    shas: dict[str, str] = {}

    def commit(
        name: str,
        files: Mapping[RepoPath, Content] | None,
        message: str,
        author: Author,
        when: str,
    ) -> None:
        shas[name] = repo.commit(files, message, author, when, allow_empty=not files)

    # Four levels of directories: src/core/engine/lexer.
    commit(
        "root",
        {
            "README.md": "# Fixture\n\nPaths and teams.\n",
            "src/core/engine/parser.py": PARSER[0],
            "src/core/engine/lexer/tokens.py": TOKENS[0],
            "src/core/util.py": UTIL[0],
            "lib/config": numbered("key=value", 4),  # a file, later a directory
            "docs/old.md": numbered("old", 5),  # deleted, later added again
            "scripts/build.sh": "#!/bin/sh\nmake\n",
            "assets/logo.png": PNG,
        },
        "Initial commit",
        ALICE,
        "2023-10-02T09:00:00+02:00",
    )
    commit(
        "vendor",
        {
            "vendor/left-pad/index.js": numbered("pad", 12),
            "vendor/left-pad/README.md": numbered("pad doc", 3),
            "package-lock.json": numbered('  "dep":', 15),
            "requirements.txt": "requests==2.28.0\n",
        },
        "Vendor left-pad, pin dependencies",
        BOB,
        "2023-10-09T10:00:00-04:00",
    )
    commit(
        "non_utf8",
        {
            CAFE_LATIN1: numbered("latin-1", 3),
            CAFE_OTHER: numbered("also latin-1", 2),
            RESUME_DIR + b"/notes.txt": numbered("note", 4),
        },
        "Names in Latin-1",
        CAROL,
        "2023-10-16T08:00:00+00:00",
    )
    commit(
        "delete_doc",
        {"docs/old.md": None, "src/core/util.py": UTIL[1]},
        "Drop the old doc",
        DAN,
        "2023-11-06T08:00:00+00:00",
    )
    repo.chmod("scripts/build.sh")  # a change of 0 lines that still counts a commit
    commit("chmod", None, "Make build.sh executable", ERIN, "2023-11-20T08:00:00+00:00")
    commit(
        "file_to_dir",
        {
            "lib/config": None,
            "lib/config/defaults.py": numbered("default", 6),
            "lib/config/local/override.py": numbered("override", 2),
        },
        "Config becomes a package",
        BOB,
        "2023-12-04T08:00:00+00:00",
    )

    # A side branch merged into main: the merge's first-parent diff carries its changes again.
    repo.branch("feature/lexer")
    repo.checkout("feature/lexer")
    commit(
        "side",
        {"src/core/engine/lexer/tokens.py": TOKENS[1], "src/core/engine/lexer/rules.py": RULES[0]},
        "Lexer rules",
        FRANK,
        "2024-01-08T08:00:00+00:00",
    )
    repo.checkout("main")
    commit(
        "main_during_side",
        {"src/core/engine/parser.py": PARSER[1]},
        "Parser v2",
        ALICE_OLD,
        "2024-01-10T08:00:00-08:00",
    )
    repo.checkout("feature/lexer")
    commit(
        "side_co_authored",
        {"src/core/engine/lexer/rules.py": RULES[1]},
        f"Rules v2\n\nCo-authored-by: {GRACE[0]} <{GRACE[1]}>\n",
        FRANK,
        "2024-01-15T08:00:00+00:00",
    )
    repo.checkout("main")
    shas["merge"] = repo.merge(
        "feature/lexer", message="Merge feature/lexer", author=ALICE, date="2024-02-05T08:00:00Z"
    )
    commit(
        "bot",
        {
            "requirements.txt": "requests==2.31.0\nurllib3==2.0.0\n",
            "vendor/left-pad/index.js": numbered("pad", 13),
        },
        "Bump requests from 2.28.0 to 2.31.0",
        DEPENDABOT,
        "2024-02-12T08:00:00+00:00",
    )
    commit(
        "reformat",  # listed in .git-blame-ignore-revs below
        {"src/core/engine/parser.py": PARSER[2], "src/core/util.py": UTIL[2]},
        "Reformat",
        BOB,
        "2024-03-04T08:00:00+00:00",
    )

    # The window's edge: one second before H - 90 days, and H - 90 days exactly.
    commit(
        "before_window",
        {"docs/guide.md": numbered("guide", 6)},
        "Guide",
        ERIN,
        "2024-04-01T11:59:59+00:00",
    )
    commit(
        "window_start",
        {"src/core/util.py": UTIL[3]},
        "Edge case",
        DAN,
        "2024-04-01T14:00:00+02:00",
    )
    commit(
        "co_authored",
        {"src/core/engine/parser.py": PARSER[3], CAFE_LATIN1: numbered("latin-1", 2) + "v2\n"},
        "Parser v3\n\n"
        f"Co-authored-by: {DAN[0]} <{DAN[1]}>\n"
        f"Co-authored-by: {GRACE[0]} <{GRACE[1]}>\n"
        f"Co-authored-by: {DEPENDABOT[0]} <{DEPENDABOT[1]}>\n",  # a bot: not among the people
        CAROL,
        "2024-04-15T08:00:00+00:00",
    )
    commit(
        "readd_doc",
        {"docs/old.md": numbered("new", 3)},
        "The old doc again",
        ERIN,
        "2024-05-06T08:00:00+00:00",
    )
    commit(
        "binary",
        {"assets/logo.png": PNG + b"\x01", "assets/icon.bin": ICON},
        "Icons",
        BOB,
        "2024-05-13T08:00:00+00:00",
    )
    commit("empty", None, "Retrigger CI", ALICE, "2024-05-20T08:00:00+00:00")

    # Force-pushed: its second commit is dropped, so tools/dropped.py is in no commit of the set.
    repo.branch("topic/rewrite")
    repo.checkout("topic/rewrite")
    commit("kept", {"tools/gen.py": numbered("gen", 3)}, "Gen", FRANK, "2024-05-22T08:00:00Z")
    commit(
        "dropped",
        {"tools/gen.py": numbered("gen", 4), "tools/dropped.py": numbered("drop", 5)},
        "Dropped",
        FRANK,
        "2024-05-23T08:00:00+00:00",
    )
    repo.reset_branch("topic/rewrite", shas["kept"])
    commit(
        "rewritten",
        {"tools/gen.py": numbered("gen", 3) + "regen\n"},
        "Regen",
        FRANK,
        "2024-05-24T08:00:00+00:00",
    )
    repo.checkout("main")

    commit(
        "rules",
        {
            ".mailmap": MAILMAP,
            ".gitattributes": GITATTRIBUTES,
            ".git-blame-ignore-revs": f"# Reformat\n{shas['reformat']}\n",
            ".github/CODEOWNERS": CODEOWNERS,
        },
        "Mailmap, attributes, ignored revisions, owners",
        ALICE,
        "2024-06-03T08:00:00+00:00",
    )
    commit(
        "future",  # a wrong clock: authored after H
        {"src/core/engine/parser.py": PARSER[4]},
        "From the future",
        ALICE,
        "2024-07-15T00:00:00+00:00",
    )
    # The head: authored ten days before it was committed (a rebase, say); H is the latter.
    commit(
        "head",
        {"src/core/engine/lexer/tokens.py": TOKENS[1] + "head\n", "src/app.py": numbered("app", 5)},
        "App",
        CAROL,
        "2024-06-20T12:00:00+00:00",
    )
    shas["head"] = recommit_at(repo, HEAD_COMMITTED)
    if repo.current_branch() != "main" or not repo.is_clean():
        raise AssertionError("the fixture must end on a clean main")
    return PathsRepo(repo, shas)
