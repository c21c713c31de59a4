"""The authored figures (DESIGN.md definitions 9-13, as notes/spec9.md settles them) computed
from git's own output and go-enry, independently of the engine.

What each input is read from:
- the per-file changes: `git log --numstat` (lines) and `git log -p` (bytes, definition 3) over
  the commit set (tests/support/gitrepos.py);
- co-authors: `git log --format=%(trailers:key=Co-authored-by,valueonly,unfold)`;
- identities: `git check-mailmap` for every author and co-author as recorded;
- path classes: `git check-attr` in the working tree for every path ever changed, and enry on
  the first 128 KiB of the default head's blob where the path is a regular file there;
- ignored revisions: `.git-blame-ignore-revs` in the default head's tree.

git reads `.mailmap` and `.gitattributes` from the working tree: the repository must be a
non-bare one with its default branch checked out and clean.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

import enry

from tests.support.gitrepos import (
    GitRepo,
    git_numstat_by_file,
    git_patch_stats_by_file,
    git_per_commit,
)

# Linguist reads at most this much of a blob (LazyBlob::MAX_SIZE's role in go-enry's callers).
ENRY_PREFIX = 128 * 1024
ATTRIBUTES = ("linguist-vendored", "linguist-generated", "linguist-documentation")
TRAILER = re.compile(r"^\s*(.*?)\s*<([^<>]*)>\s*$")
OBJECT_NAME = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
REGULAR_FILE_MODES = {"100644", "100755"}


class PathClass(StrEnum):
    VENDORED = "vendored"
    GENERATED = "generated"
    DOCUMENTATION = "documentation"
    SOURCE = "source"


class Reason(StrEnum):
    """Why a change is excluded, in the order the first that applies is taken."""

    IGNORED_REVISIONS = "ignored_revisions"
    BOTS = "bots"
    VENDORED = "vendored"
    GENERATED = "generated"


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    @property
    def key(self) -> str:
        return self.email.lower()

    def contact(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True)
class Figures:
    """Lines and bytes added and removed."""

    added_lines: int = 0
    deleted_lines: int = 0
    added_bytes: int = 0
    deleted_bytes: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.added_lines + other.added_lines,
            self.deleted_lines + other.deleted_lines,
            self.added_bytes + other.added_bytes,
            self.deleted_bytes + other.deleted_bytes,
        )

    def share(self, n: int, author: bool) -> Figures:
        """One of n people's part: floor(x / n) each, the author also the remainder."""
        values = (self.added_lines, self.deleted_lines, self.added_bytes, self.deleted_bytes)
        each = [x // n for x in values]
        if author:
            each = [x - (n - 1) * part for x, part in zip(values, each, strict=True)]
        return Figures(*each)

    @property
    def churn(self) -> int:
        return self.added_lines + self.deleted_lines


@dataclass(frozen=True)
class Change:
    """One row of `git log --numstat` (a binary file counts 0) with its bytes and class."""

    path: bytes
    path_class: PathClass
    binary: bool
    figures: Figures


@dataclass(frozen=True)
class Commit:
    sha: str
    raw_author: Identity
    author: Identity  # after the mailmap
    time: datetime  # author time, UTC
    raw_co_authors: tuple[Identity, ...]  # the trailers as parsed, in commit order
    co_authors: tuple[Identity, ...]  # mapped, deduplicated by key, the author left out
    changes: tuple[Change, ...]
    ignored: bool
    by_bot: bool
    people: tuple[Identity, ...]  # the author, then the co-authors that are not bots

    @property
    def authored(self) -> bool:
        return not (self.ignored or self.by_bot)

    def reason(self, change: Change) -> Reason | None:
        """The reason a change of this commit is excluded, or None when it is authored."""
        if self.ignored:
            return Reason.IGNORED_REVISIONS
        if self.by_bot:
            return Reason.BOTS
        if change.path_class is PathClass.VENDORED:
            return Reason.VENDORED
        if change.path_class is PathClass.GENERATED:
            return Reason.GENERATED
        return None

    def authored_figures(self) -> Figures:
        """The sums of the authored changes (none unless the commit is authored)."""
        return sum(
            (c.figures for c in self.changes if self.authored and self.reason(c) is None),
            Figures(),
        )

    def all_in(self) -> Figures:
        return sum((c.figures for c in self.changes), Figures())

    def share_of(self, key: str) -> Figures:
        """The authored figures' part of the person `key` (nothing unless among the people)."""
        keys = [p.key for p in self.people]
        if not self.authored or key not in keys:
            return Figures()
        return self.authored_figures().share(len(keys), author=(key == self.author.key))


def week_start(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def month_start(moment: datetime) -> date:
    return moment.astimezone(UTC).date().replace(day=1)


def is_bot_identity(identity: Identity, bot_authors: Sequence[str]) -> bool:
    """Definition 10 on one identity after the mailmap."""
    local = identity.email.rpartition("@")[0] if "@" in identity.email else identity.email
    if identity.name.lower().endswith("[bot]") or local.lower().endswith("[bot]"):
        return True
    values = (identity.name.lower(), identity.email.lower())
    return any(fnmatchcase(value, glob.lower()) for glob in bot_authors for value in values)


def parse_ignore_revs(text: str) -> set[str]:
    """The object names of a .git-blame-ignore-revs, each line taken whole (spec9.md)."""
    names = set()
    for line in text.splitlines():
        line = line.strip().lower()
        if line and not line.startswith("#") and OBJECT_NAME.fullmatch(line):
            names.add(line)
    return names


def parse_co_author(value: str) -> Identity | None:
    match = TRAILER.match(value)
    if match is None or not match.group(2).strip():
        return None
    return Identity(match.group(1).strip(), match.group(2).strip())


def git_co_author_trailers(repo: GitRepo) -> dict[str, list[str]]:
    """Per commit of the commit set: its Co-authored-by values as git's trailer rules read them."""
    fmt = "--format=%x00%H%x00%(trailers:key=Co-authored-by,valueonly,unfold)"
    fields = repo.run("log", "--branches", fmt).split(b"\x00")[1:]
    return {
        sha.decode("ascii"): value.decode("utf-8", "surrogateescape").splitlines()
        for sha, value in zip(fields[::2], fields[1::2], strict=True)
    }


def git_mailmap(repo: GitRepo, identities: Iterable[Identity]) -> dict[Identity, Identity]:
    """Each identity as `git check-mailmap` maps it."""
    raw = sorted(set(identities), key=Identity.contact)
    contacts = "".join(f"{identity.contact()}\n" for identity in raw).encode()
    out = repo.run("check-mailmap", "--stdin", input=contacts).decode()
    mapped = {}
    for identity, line in zip(raw, out.splitlines(), strict=True):
        # check-mailmap writes "<email>" alone for an empty name.
        match = re.fullmatch(r"(?:(.*) )?<(.*)>", line)
        assert match is not None, line
        mapped[identity] = Identity(match.group(1) or "", match.group(2))
    return mapped


def git_attributes(repo: GitRepo, paths: Iterable[bytes]) -> dict[bytes, dict[str, str]]:
    """`git check-attr` of ATTRIBUTES for each path, from the working tree's .gitattributes
    files only (no system, global or info/attributes file)."""
    paths = sorted(set(paths))
    out = repo.run(
        "check-attr",
        "-z",
        "--stdin",
        *ATTRIBUTES,
        input=b"".join(p + b"\x00" for p in paths),
        env={"GIT_ATTR_NOSYSTEM": "1"},
    )
    fields = out.split(b"\x00")[:-1]
    answers: dict[bytes, dict[str, str]] = defaultdict(dict)
    for path, attribute, value in zip(fields[::3], fields[1::3], fields[2::3], strict=True):
        answers[path][attribute.decode()] = value.decode()
    assert set(answers) == set(paths)
    return dict(answers)


def head_blobs(repo: GitRepo) -> dict[bytes, tuple[str, str]]:
    """Every entry of HEAD's tree, recursively: path -> (mode, object name)."""
    entries = repo.run("ls-tree", "-r", "-z", "HEAD").split(b"\x00")[:-1]
    blobs = {}
    for entry in entries:
        meta, path = entry.split(b"\t", 1)
        mode, _kind, name = meta.decode().split()
        blobs[path] = (mode, name)
    return blobs


_BLAME_LINE = re.compile(rb"([0-9a-f]{40}) \d+ \d+")


def git_surviving(repo: GitRepo, blobs: dict[bytes, tuple[str, str]]) -> dict[str, int]:
    """Per commit, the lines at the head git blame (--line-porcelain) gives it, over the
    regular text files (git's binary test: numstat against the empty tree)."""
    empty = repo.run("hash-object", "-t", "tree", "/dev/null").strip().decode()
    numstat = repo.run("diff", "--numstat", "-z", "--no-renames", empty, "HEAD").split(b"\x00")
    binary = {entry.split(b"\t", 2)[2] for entry in numstat if entry.startswith(b"-\t-\t")}
    counts: dict[str, int] = defaultdict(int)
    for path, (mode, _name) in blobs.items():
        if mode not in ("100644", "100755") or path in binary:
            continue
        for line in repo.run("blame", "--line-porcelain", "HEAD", "--", path).splitlines():
            match = None if line.startswith(b"\t") else _BLAME_LINE.match(line)
            if match is not None:
                counts[match.group(1).decode()] += 1
    return dict(counts)


def _decide(value: str, enry_says: bool) -> bool:
    """An attribute overrides enry when specified: set or any value but false means yes."""
    if value == "unspecified":
        return enry_says
    return value not in ("unset", "false")


def classify(attributes: dict[str, str], path: bytes, content: bytes) -> PathClass:
    name = path.decode("utf-8", "replace")
    if _decide(attributes["linguist-vendored"], enry.is_vendor(name)):
        return PathClass.VENDORED
    if _decide(attributes["linguist-generated"], enry.is_generated(name, content)):
        return PathClass.GENERATED
    if _decide(attributes["linguist-documentation"], enry.is_documentation(name)):
        return PathClass.DOCUMENTATION
    return PathClass.SOURCE


def path_classes(repo: GitRepo, paths: Iterable[bytes]) -> dict[bytes, PathClass]:
    """Definition 9 for each path: the head's attributes, then enry on the head's content."""
    attributes = git_attributes(repo, paths)
    blobs = head_blobs(repo)
    classes = {}
    for path, answers in attributes.items():
        mode, name = blobs.get(path, ("", ""))
        content = (
            repo.run("cat-file", "blob", name)[:ENRY_PREFIX] if mode in REGULAR_FILE_MODES else b""
        )
        classes[path] = classify(answers, path, content)
    return classes


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _person(identity: Identity) -> dict[str, Any]:
    """name, email, email_sha256 as EMAIL_MODE=plain publishes them."""
    return {
        "name": identity.name,
        "email": identity.email,
        "email_sha256": hashlib.sha256(identity.key.encode()).hexdigest(),
    }


@dataclass
class AuthoredOracle:
    """Every authored figure of one repository, from git's output (see the module's doc)."""

    commits: dict[str, Commit]
    classes: dict[bytes, PathClass]
    ignore_revs: set[str]  # as listed at the head, whether in the commit set or not
    bot_keys: set[str]  # contributors (by key) that are bots
    trailers: dict[str, list[str]] = field(repr=False)  # raw Co-authored-by values per commit
    # Per contributor (by key): the lines at the head git blame gives their commits.
    surviving: dict[str, int] = field(default_factory=dict)

    # -- overview --------------------------------------------------------------------------

    def authored_commits(self) -> list[Commit]:
        return [c for c in self.commits.values() if c.authored]

    def authored_people(self) -> set[str]:
        return {p.key for c in self.authored_commits() for p in c.people}

    def overview_authored(self) -> dict[str, int]:
        total = sum((c.authored_figures() for c in self.commits.values()), Figures())
        return {
            "commits": len(self.authored_commits()),
            "contributors": len(self.authored_people()),
            "additions_lines": total.added_lines,
            "deletions_lines": total.deleted_lines,
            "addition_bytes": total.added_bytes,
            "deletion_bytes": total.deleted_bytes,
        }

    def overview_excluded(self) -> dict[str, dict[str, int]]:
        excluded = {}
        for reason in Reason:
            commits = lines_added = lines_deleted = 0
            for commit in self.commits.values():
                changes = [c for c in commit.changes if commit.reason(c) is reason]
                commits += bool(changes)
                lines_added += sum(c.figures.added_lines for c in changes)
                lines_deleted += sum(c.figures.deleted_lines for c in changes)
            excluded[reason.value] = {
                "commits": commits,
                "additions_lines": lines_added,
                "deletions_lines": lines_deleted,
            }
        return excluded

    def all_in(self) -> Figures:
        return sum((c.all_in() for c in self.commits.values()), Figures())

    # -- activity --------------------------------------------------------------------------

    def activity(self, unit: str) -> list[dict[str, Any]]:
        """The weekly ("week") or monthly ("month") series, every field of every period."""
        start = week_start if unit == "week" else month_start
        periods: dict[date, list[Commit]] = defaultdict(list)
        for commit in self.commits.values():
            periods[start(commit.time)].append(commit)
        rows = []
        for period, commits in sorted(periods.items()):
            all_in = sum((c.all_in() for c in commits), Figures())
            authored = sum((c.authored_figures() for c in commits), Figures())
            rows.append(
                {
                    "period_start": period.isoformat(),
                    "commits": len(commits),
                    "additions_lines": all_in.added_lines,
                    "deletions_lines": all_in.deleted_lines,
                    "addition_bytes": all_in.added_bytes,
                    "deletion_bytes": all_in.deleted_bytes,
                    "contributors": len({c.author.key for c in commits}),
                    "authored_additions_lines": authored.added_lines,
                    "authored_deletions_lines": authored.deleted_lines,
                }
            )
        return rows

    # -- people ----------------------------------------------------------------------------

    def shares(self, key: str) -> Figures:
        return sum((c.share_of(key) for c in self.commits.values()), Figures())

    def co_authored(self, key: str) -> list[Commit]:
        return [c for c in self.commits.values() if key in {p.key for p in c.co_authors}]

    def shown_identity(self, key: str) -> Identity:
        """Whose name and email a person shows: as an author, those of their latest commit;
        someone who only co-authored, as their latest co-authored commit names them."""
        authored = [c for c in self.commits.values() if c.author.key == key]
        if authored:
            return max(authored, key=lambda c: (c.time, c.sha)).author
        latest = max(self.co_authored(key), key=lambda c: (c.time, c.sha))
        return next(p for p in latest.co_authors if p.key == key)

    def ownership(self) -> list[dict[str, Any]]:
        """Every contributor row (EMAIL_MODE=plain): authors by churn, then co-authors only."""
        total = self.all_in()
        by_author: dict[str, list[Commit]] = defaultdict(list)
        for commit in self.commits.values():
            by_author[commit.author.key].append(commit)
        rows = []
        for key, commits in by_author.items():
            figures = sum((c.all_in() for c in commits), Figures())
            times = [c.time for c in commits]
            rows.append(
                self._contributor(key, len(commits), figures, times)
                | {
                    "share_of_commits": _share(len(commits), len(self.commits)),
                    "share_of_churn": _share(figures.churn, total.churn),
                    "surviving_lines": self.surviving.get(key, 0),
                    "share_of_lines": _share(
                        self.surviving.get(key, 0), sum(self.surviving.values())
                    ),
                }
            )
        rows.sort(
            key=lambda r: (-(r["additions_lines"] + r["deletions_lines"]), -r["commits"], r["key"])
        )
        co_only = []
        for key in {p.key for c in self.commits.values() for p in c.co_authors} - set(by_author):
            times = [c.time for c in self.co_authored(key)]
            co_only.append(
                self._contributor(key, 0, Figures(), times)
                | {
                    "share_of_commits": 0.0,
                    "share_of_churn": 0.0,
                    "surviving_lines": 0,
                    "share_of_lines": 0.0,
                }
            )
        co_only.sort(
            key=lambda r: (
                -(r["authored_additions_lines"] + r["authored_deletions_lines"]),
                -r["co_authored_commits"],
                r["key"],
            )
        )
        return [{k: v for k, v in row.items() if k != "key"} for row in rows + co_only]

    def _contributor(
        self, key: str, commits: int, figures: Figures, times: list[datetime]
    ) -> dict[str, Any]:
        shares = self.shares(key)
        return {
            "key": key,
            **_person(self.shown_identity(key)),
            "is_bot": key in self.bot_keys,
            "commits": commits,
            "co_authored_commits": len(self.co_authored(key)),
            "additions_lines": figures.added_lines,
            "deletions_lines": figures.deleted_lines,
            "addition_bytes": figures.added_bytes,
            "deletion_bytes": figures.deleted_bytes,
            "authored_additions_lines": shares.added_lines,
            "authored_deletions_lines": shares.deleted_lines,
            "authored_addition_bytes": shares.added_bytes,
            "authored_deletion_bytes": shares.deleted_bytes,
            "first_commit_at": _utc(min(times)),
            "last_commit_at": _utc(max(times)),
        }

    def contributor_activity(self) -> list[dict[str, Any]]:
        """The contributor_activity document's contributors, in order (EMAIL_MODE=plain)."""
        rows = []
        for key in self.authored_people():
            commits = [c for c in self.authored_commits() if key in {p.key for p in c.people}]
            weeks: dict[date, list[Commit]] = defaultdict(list)
            for commit in commits:
                weeks[week_start(commit.time)].append(commit)
            week_rows = []
            for week, in_week in sorted(weeks.items()):
                shares = sum((c.share_of(key) for c in in_week), Figures())
                week_rows.append(
                    {
                        "week_start": week.isoformat(),
                        "commits": len(in_week),
                        "authored_additions_lines": shares.added_lines,
                        "authored_deletions_lines": shares.deleted_lines,
                    }
                )
            shares = self.shares(key)
            rows.append(
                (
                    (-shares.churn, -len(commits), key),
                    {
                        **_person(self.shown_identity(key)),
                        "commits": len(commits),
                        "authored_additions_lines": shares.added_lines,
                        "authored_deletions_lines": shares.deleted_lines,
                        "weeks": week_rows,
                    },
                )
            )
        return [row for _, row in sorted(rows, key=lambda pair: pair[0])]

    def authored_contributor_keys(self) -> set[str]:
        return {hashlib.sha256(key.encode()).hexdigest() for key in self.authored_people()}


def authored_oracle(repo: GitRepo, bot_authors: Sequence[str] = ()) -> AuthoredOracle:
    """The oracle over `repo`'s commit set, its default branch checked out and clean."""
    if not repo.is_clean():
        raise AssertionError("the oracle reads the working tree: it must be clean")
    facts = git_per_commit(repo.path)
    numstat = git_numstat_by_file(repo.path)
    patch = git_patch_stats_by_file(repo.path)
    trailers = git_co_author_trailers(repo)
    assert set(facts) == set(numstat) == set(patch) == set(trailers)

    raw_co_authors = {
        sha: tuple(i for i in map(parse_co_author, values) if i is not None)
        for sha, values in trailers.items()
    }
    raw_authors = {sha: Identity(f.raw_author_name, f.raw_author_email) for sha, f in facts.items()}
    everyone = [*raw_authors.values(), *(i for ids in raw_co_authors.values() for i in ids)]
    mailmap = git_mailmap(repo, everyone)
    for sha, fact in facts.items():
        # check-mailmap and log --use-mailmap read the same mailmap.
        assert mailmap[raw_authors[sha]] == Identity(fact.author_name, fact.author_email), sha
    bot_keys = {m.key for m in mailmap.values() if is_bot_identity(m, bot_authors)}

    classes = path_classes(repo, (path for files in numstat.values() for path in files))
    blobs = head_blobs(repo)
    ignore_revs = set()
    if b".git-blame-ignore-revs" in blobs:
        text = repo.run("cat-file", "blob", blobs[b".git-blame-ignore-revs"][1]).decode()
        ignore_revs = parse_ignore_revs(text)

    commits = {}
    for sha, fact in facts.items():
        author = mailmap[raw_authors[sha]]
        co_authors: dict[str, Identity] = {}
        for raw in raw_co_authors[sha]:
            mapped = mailmap[raw]
            if mapped.key != author.key:
                co_authors.setdefault(mapped.key, mapped)
        changes = []
        for path, lines in numstat[sha].items():
            stats = patch[sha][path]
            assert (stats.added_lines, stats.removed_lines) == (lines or (0, 0)), (sha, path)
            figures = Figures(*(lines or (0, 0)), stats.added_bytes, stats.removed_bytes)
            changes.append(Change(path, classes[path], lines is None, figures))
        assert set(patch[sha]) == set(numstat[sha]), sha
        commits[sha] = Commit(
            sha=sha,
            raw_author=raw_authors[sha],
            author=author,
            time=_utc(fact.author_date),
            raw_co_authors=raw_co_authors[sha],
            co_authors=tuple(co_authors.values()),
            changes=tuple(changes),
            ignored=sha in ignore_revs,
            by_bot=author.key in bot_keys,
            people=(author, *(p for p in co_authors.values() if p.key not in bot_keys)),
        )
    surviving: dict[str, int] = defaultdict(int)
    for sha, held in git_surviving(repo, blobs).items():
        surviving[commits[sha].author.key] += held
    return AuthoredOracle(commits, classes, ignore_revs, bot_keys, trailers, dict(surviving))
