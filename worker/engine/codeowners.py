"""Code owners (DESIGN.md definition 15): who owns each file at the default head, by the rules
of GitHub's page "About code owners" (docs.github.com, repositories > customizing your
repository > about code owners), quoted below as "the docs".

- Where: the first found of `.github/CODEOWNERS`, `CODEOWNERS`, `docs/CODEOWNERS`.
- Lines: blank lines and `#` comments are skipped; every other line is a pattern followed by
  owners (`@user`, `@org/team`, an email address). A line with invalid syntax is skipped and
  reported, as GitHub does ("that line will be skipped"); it changes no file's owners.
- Patterns follow gitignore's rules except where the docs say otherwise: no `!` negation, no
  `[ ]` character ranges, no `\\#` for a pattern starting with `#`, and `docs/*` matches the
  files directly in `docs` only (gitignore's would match `docs/build-app/troubleshooting.md`,
  since it matches the directory `docs/build-app`). Paths are case sensitive.
- The last matching line wins; a matching line without owners leaves its files unowned.

Paths and patterns are bytes and are matched as bytes: a path that is not UTF-8 matches a
pattern written with the same bytes, and nothing is decoded on the way.

Not in the docs, and decided here (each said again where it is done): a UTF-8 byte order mark
at the start is dropped; lines end at LF, CRLF or CR; blanks (spaces and tabs) around words are
dropped; a backslash escapes any byte, so `\\ ` puts a space in a pattern; `#` opens a comment
only at the start of a word (`a#b` is a pattern); a pattern with an unescaped `[` is invalid
even without a closing `]`; the 3 MB limit is 3 MiB; an oversized file at the first location
is not replaced by a later one; a `CODEOWNERS` that is a symlink, a folder or a submodule is
not found, so the next location is looked at; owners are kept as written (GitHub compares
names case-insensitively: group them so).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from itertools import chain
from typing import NamedTuple

import pygit2
from pygit2.enums import FileMode

# "create a new file called CODEOWNERS in the .github/, root, or docs/ directory [...] If
# CODEOWNERS files exist in more than one of those locations, GitHub will search for them in
# that order and use the first one it finds."
CODEOWNERS_PATHS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")

# "CODEOWNERS files must be under 3 MB in size. A CODEOWNERS file over this limit will not be
# loaded". The docs do not say which megabyte: taken as a MiB.
MAX_CODEOWNERS_BYTES = 3 * 1024 * 1024

_FILE_MODES = (FileMode.BLOB, FileMode.BLOB_EXECUTABLE)
_BOM = b"\xef\xbb\xbf"
# A word of a line: blank-separated, where a backslash takes the next byte into the word (so
# `\ ` is a space in it), and a lone backslash may end the line.
_WORD = re.compile(rb"(?:[^ \t\\]|\\.|\\$)+", re.DOTALL)
# "the standard @username or @org/team-name format": logins of letters, digits and hyphens
# (and underscores, which managed users' logins carry); team slugs likewise, dots allowed.
_USER = re.compile(r"@[A-Za-z0-9][A-Za-z0-9_-]*")
_TEAM = re.compile(r"@[A-Za-z0-9][A-Za-z0-9_-]*/[A-Za-z0-9_.-]+")
# "You can also refer to a user by an email address [...] for example user@example.com".
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# One piece of a pattern's segment: an escaped byte, a run of stars, `?`, or a plain byte.
_PIECE = re.compile(rb"\\(.)|(\*+)|(\?)|(.)", re.DOTALL)
# A byte of a pattern, with the backslash that escapes it.
_BYTE = re.compile(rb"\\.|.", re.DOTALL)


@dataclass(frozen=True)
class CodeownersFile:
    """The CODEOWNERS file GitHub uses: where it was found and its content."""

    path: str
    data: bytes


class ProblemKind(StrEnum):
    """Why a line, or the whole file, is not used."""

    FILE_TOO_LARGE = "file too large"
    INVALID_OWNER = "invalid owner"
    NEGATION = "negated pattern"
    CHARACTER_RANGE = "character range"
    ESCAPED_HASH = "pattern starts with an escaped #"
    INVALID_PATTERN = "invalid pattern"


@dataclass(frozen=True)
class Problem:
    """A line GitHub skips (line: 1-based, as GitHub numbers them), or the whole file (None)."""

    line: int | None
    kind: ProblemKind
    source: bytes


@dataclass(frozen=True)
class Rule:
    """A line in use: its pattern as written (escapes included) and its owners, none when the
    line unsets the owners of what it matches."""

    line: int
    pattern: bytes
    owners: tuple[str, ...]


def find_codeowners(tree: pygit2.Tree) -> CodeownersFile | None:
    """The CODEOWNERS file of `tree`: the first of `CODEOWNERS_PATHS` that is a file there.

    Not documented: a symlink, a folder or a submodule by that name is passed over, as no
    file to read.
    """
    for path in CODEOWNERS_PATHS:
        try:
            entry = tree[path]
        except KeyError:
            continue
        if isinstance(entry, pygit2.Blob) and entry.filemode in _FILE_MODES:
            return CodeownersFile(path, entry.data)
    return None


def parse_codeowners(data: bytes) -> Codeowners:
    """The rules of a CODEOWNERS file's content, and the lines skipped for invalid syntax.

    A file of 3 MB or more has no rules ("will not be loaded").
    """
    if len(data) >= MAX_CODEOWNERS_BYTES:
        return Codeowners((), (Problem(None, ProblemKind.FILE_TOO_LARGE, b""),))
    rules: list[Rule] = []
    problems: list[Problem] = []
    # Not documented: a UTF-8 byte order mark would otherwise be part of the first pattern.
    lines = data.removeprefix(_BOM).splitlines()
    for number, line in enumerate(lines, start=1):
        parsed = _parse_line(line)
        if isinstance(parsed, ProblemKind):
            problems.append(Problem(number, parsed, line))
        elif parsed is not None:
            rules.append(Rule(number, *parsed))
    return Codeowners(rules, problems)


def _parse_line(line: bytes) -> tuple[bytes, tuple[str, ...]] | ProblemKind | None:
    """A line's pattern and owners; None for a blank line or a comment; else the problem that
    makes GitHub skip it."""
    # Not documented: blanks before the pattern are dropped (a pattern that starts with a
    # blank must escape it), so an indented `#` starts a comment too.
    words = _WORD.findall(line)
    # "*.js @js-owner #This is an inline comment.": a word that starts with `#` ends the line.
    comment = next((i for i, word in enumerate(words) if word.startswith(b"#")), len(words))
    if comment == 0:
        return None
    pattern, *owners = words[:comment]
    problem = _pattern_problem(pattern)
    if problem is not None:
        return problem
    named = [_owner(word) for word in owners]
    if None in named:
        return ProblemKind.INVALID_OWNER
    # A name written twice on a line is one owner.
    return pattern, tuple(dict.fromkeys(name for name in named if name is not None))


def _owner(word: bytes) -> str | None:
    """The owner a word names, or None if it is no user, team or email address."""
    try:
        name = word.decode()
    except UnicodeDecodeError:
        return None
    return name if any(form.fullmatch(name) for form in (_USER, _TEAM, _EMAIL)) else None


def _pattern_problem(pattern: bytes) -> ProblemKind | None:
    """Why GitHub rejects `pattern` (a line's first word, escapes included), or None.

    The docs' exceptions to gitignore: "Using `!` to negate a pattern", "Using `[ ]` to define
    a character range" and "Escaping a pattern starting with `#` using `\\` so it is treated as
    a pattern and not a comment" do not work. Not documented: a pattern of slashes alone (it
    would match nothing) and one that ends in a lone backslash (git's never matches) are
    invalid too.
    """
    if pattern.startswith(b"!"):
        return ProblemKind.NEGATION
    if pattern.startswith(b"\\#"):
        return ProblemKind.ESCAPED_HASH
    if b"[" in re.sub(rb"\\.", b"", pattern, flags=re.DOTALL):
        return ProblemKind.CHARACTER_RANGE
    lone_backslash = (len(pattern) - len(pattern.rstrip(b"\\"))) % 2 == 1
    if lone_backslash or not pattern.strip(b"/"):
        return ProblemKind.INVALID_PATTERN
    return None


class _Kind(Enum):
    """How a name (one path segment) is matched."""

    ANY = 0  # `*`
    EXACT = 1  # no wildcard: equal bytes
    ENDING = 2  # `*` then no wildcard: ends with the bytes
    GLOB = 3  # anything else: a regular expression


class _Name(NamedTuple):
    kind: _Kind
    value: bytes  # EXACT, ENDING: the bytes; GLOB: the expression
    head: bytes = b""  # GLOB: the bytes before its first wildcard
    tail: bytes = b""  # GLOB: the bytes after its last wildcard


class _Folders(NamedTuple):
    """Directories matched by expression. A path's directory is looked for only among the
    rules whose first (or else last) literal segment it has: `first`, `last` (None: either
    may be anything)."""

    regex: re.Pattern[bytes]
    first: bytes | None
    last: bytes | None


class _Shape(NamedTuple):
    """A pattern taken apart at its last slash: it matches a path whose directory matches
    `directory` (None: any directory; bytes: that directory, b"" for the root) and whose last
    segment matches `name`. Applied to files if `files`; to directories if `covers`, a match
    there covering every file below."""

    directory: bytes | _Folders | None
    name: _Name
    files: bool
    covers: bool


def _shape(pattern: bytes) -> _Shape:
    """What `pattern` matches, by gitignore's rules ("A CODEOWNERS file uses a pattern that
    follows most of the same rules used in gitignore files") and the docs' exception.

    gitignore: a slash at the start or in the middle anchors a pattern at the root, else it
    matches at any depth (`*.js`, `apps/`); a trailing slash matches directories only; `*` and
    `?` match anything but a slash; `**` as a whole segment matches any number of directories
    (`**/logs`, `a/**/b`; `a/**` is everything in `a`), and as part of one is `*` (as
    gitignore's page says; git's code lets it cross slashes after a literal beginning:
    `src**/test` matches `src/a/test` there); a matched directory covers every file below it.

    The docs' exception: a last segment `*` matches the files directly in its directory only
    ("The `docs/*` pattern will match files like `docs/getting-started.md` but not further
    nested files like `docs/build-app/troubleshooting.md`").
    """
    problem = _pattern_problem(pattern)
    if problem is not None:
        raise ValueError(f"{problem}: {pattern!r}")
    segments = _segments(pattern)
    anchored = segments[0] == b""
    if anchored:
        segments.pop(0)
    directory_only = len(segments) > 1 and segments[-1] == b""
    if directory_only:
        segments.pop()
    anchored = anchored or len(segments) > 1
    # `**/**` matches what `**` does.
    segments = [
        s for i, s in enumerate(segments) if not (i and _globstar(s) and _globstar(segments[i - 1]))
    ]
    if _globstar(segments[-1]):
        if directory_only:  # `a/**/` covers what `a/*/` does: everything below a's folders
            segments[-1] = b"*"
        elif len(segments) > 1:  # `a/**` is everything in `a`: `a/`, kept anchored
            segments.pop()
            directory_only = True
        else:  # `**` alone is every file
            segments, anchored = [b"*"], False
    *parents, last = segments
    return _Shape(
        directory=_directory(parents) if anchored else None,
        name=_name(last),
        files=not directory_only,
        covers=directory_only or last != b"*",
    )


def _segments(pattern: bytes) -> list[bytes]:
    """`pattern` split at its slashes; git reads an escaped slash as one too."""
    segments = [b""]
    for piece in _BYTE.findall(pattern):
        if piece in (b"/", b"\\/"):
            segments.append(b"")
        else:
            segments[-1] += piece
    return segments


def _globstar(segment: bytes) -> bool:
    """Whether a segment is `**` (git reads a run of two stars or more alone so)."""
    return len(segment) >= 2 and not segment.strip(b"*")


def _directory(parents: list[bytes]) -> bytes | _Folders | None:
    """What the directory of a path matching an anchored pattern must be, given the segments
    before the pattern's last."""
    if len(parents) == 1 and _globstar(parents[0]):
        return None
    names = [_name(segment) for segment in parents]
    if all(name.kind is _Kind.EXACT for name in names):
        return b"/".join(name.value for name in names)
    parts: list[bytes] = []
    for index, (segment, name) in enumerate(zip(parents, names, strict=True)):
        if _globstar(segment):
            # Leading, it brings the slash after it; else the one before it.
            parts.append(rb"(?:.*/)?" if index == 0 else rb"(?:/.*)?")
            continue
        if index > 0 and not (index == 1 and _globstar(parents[0])):
            parts.append(b"/")
        parts.append(_name_regex(name))
    first, last = names[0], names[-1]
    return _Folders(
        re.compile(b"".join(parts), re.DOTALL),
        first.value if first.kind is _Kind.EXACT else None,
        last.value if last.kind is _Kind.EXACT and first.kind is not _Kind.EXACT else None,
    )


def _name(segment: bytes) -> _Name:
    """How a segment matches a name: `*` and `?` never match a slash."""
    pieces = [
        (b"*" if stars else b"?" if question else None, escaped or plain)
        for escaped, stars, question, plain in _PIECE.findall(segment)
    ]
    literal = b"".join(byte for wild, byte in pieces if wild is None)
    wild = [i for i, (w, _byte) in enumerate(pieces) if w is not None]
    if not wild:
        return _Name(_Kind.EXACT, literal)
    if wild == [0] and pieces[0][0] == b"*":
        return _Name(_Kind.ENDING, literal) if literal else _Name(_Kind.ANY, b"")
    regex = b"".join(
        rb"[^/]*" if w == b"*" else rb"[^/]" if w == b"?" else re.escape(byte) for w, byte in pieces
    )
    head = b"".join(byte for _w, byte in pieces[: wild[0]])
    tail = b"".join(byte for _w, byte in pieces[wild[-1] + 1 :])
    return _Name(_Kind.GLOB, regex, head, tail)


def _name_regex(name: _Name) -> bytes:
    """A name's match as a regular expression, to put in a folder's."""
    if name.kind is _Kind.GLOB:
        return name.value
    return (rb"[^/]*" if name.kind is not _Kind.EXACT else b"") + re.escape(name.value)


class _Globs:
    """Glob names (`test_*.py`, `a?c`), latest first in one expression."""

    def __init__(self, globs: Sequence[tuple[int, bytes]], ending: int = -1) -> None:
        self.ending = ending  # the last `*<tail>` rule of a group by tail
        ordered = sorted(globs, reverse=True)
        self.latest = ordered[0][0] if ordered else -1
        self.rules = [index for index, _ in ordered]
        self.regex = re.compile(b"|".join(b"(" + r + b")" for _, r in ordered), re.DOTALL)

    def last(self, name: bytes, found: int) -> int:
        """The later of `found` and the last glob matching `name` (its expression runs only
        when it could be later)."""
        if self.ending > found:
            found = self.ending
        if self.latest > found:
            matched = self.regex.fullmatch(name)
            if matched is not None and matched.lastindex is not None:
                found = max(found, self.rules[matched.lastindex - 1])
        return found


class _Names:
    """Which of some rules (given by index, in file order) matches a name last.

    Exact names are looked up, and so are endings (`*.js`) and the globs by their literal
    ending (`test_*.py`) or else beginning (`Dockerfile*`): per name, a few lookups and the
    expressions of the globs that can match it.
    """

    def __init__(self, rules: Sequence[tuple[int, _Name]]) -> None:
        self.latest = max((index for index, _ in rules), default=-1)
        self.any = max((i for i, name in rules if name.kind is _Kind.ANY), default=-1)
        self.exact: dict[bytes, int] = {}
        endings: dict[bytes, int] = {}
        by_tail: dict[bytes, list[tuple[int, bytes]]] = {}
        by_head: dict[bytes, list[tuple[int, bytes]]] = {}
        for index, (kind, value, head, tail) in sorted(rules):
            if kind is _Kind.EXACT:
                self.exact[value] = index
            elif kind is _Kind.ENDING:
                endings[value] = index
                by_tail.setdefault(value, [])
            elif kind is _Kind.GLOB:
                group = by_tail.setdefault(tail, []) if tail else by_head.setdefault(head, [])
                group.append((index, value))
        rest = by_head.pop(b"", [])
        self.tails = {tail: _Globs(g, endings.get(tail, -1)) for tail, g in by_tail.items()}
        self.heads = {head: _Globs(g) for head, g in by_head.items()}
        self.tail_lengths = sorted({len(tail) for tail in self.tails})
        self.head_lengths = sorted({len(head) for head in self.heads})
        self.rest = _Globs(rest)

    def last(self, name: bytes, found: int = -1) -> int:
        """The later of `found` and the index of the last rule that matches `name`."""
        if found >= self.latest:
            return found
        found = max(found, self.any, self.exact.get(name, -1))
        for length in self.tail_lengths:
            group = self.tails.get(name[-length:])
            if group is not None:
                found = group.last(name, found)
        for length in self.head_lengths:
            group = self.heads.get(name[:length])
            if group is not None:
                found = group.last(name, found)
        return self.rest.last(name, found)


class _Rules:
    """Some rules, by where they apply: what applies in one directory is found once."""

    def __init__(self, shapes: Sequence[tuple[int, _Shape]]) -> None:
        self.anywhere: list[tuple[int, _Name]] = []
        self.exact: dict[bytes, list[tuple[int, _Name]]] = {}
        # Matched by expression, by the directory's first segment, its last, or neither.
        self.by_first: dict[bytes, list[tuple[re.Pattern[bytes], int, _Name]]] = {}
        self.by_last: dict[bytes, list[tuple[re.Pattern[bytes], int, _Name]]] = {}
        self.matched: list[tuple[re.Pattern[bytes], int, _Name]] = []
        for index, (directory, name, _files, _covers) in shapes:
            if directory is None:
                self.anywhere.append((index, name))
            elif isinstance(directory, bytes):
                self.exact.setdefault(directory, []).append((index, name))
            elif directory.first is not None:
                self.by_first.setdefault(directory.first, []).append((directory.regex, index, name))
            elif directory.last is not None:
                self.by_last.setdefault(directory.last, []).append((directory.regex, index, name))
            else:
                self.matched.append((directory.regex, index, name))
        self.everywhere = _Names(self.anywhere)
        self.local = bool(self.exact or self.by_first or self.by_last or self.matched)
        self._names: dict[tuple[int, ...], _Names] = {}
        self._in: dict[bytes, _Names] = {}

    def last(self, directory: bytes, name: bytes, found: int = -1) -> int:
        """The later of `found` and the index of the last rule matching the entry `name` of
        `directory` ("" for the root)."""
        found = self.everywhere.last(name, found)
        if self.local:
            found = self._in_directory(directory).last(name, found)
        return found

    def _in_directory(self, directory: bytes) -> _Names:
        """The rules that apply in `directory` only (those that apply anywhere apart)."""
        found = self._in.get(directory)
        if found is None:
            rules = list(self.exact.get(directory, ()))
            # An expression stands for a folder or more (`*/a` is not `a`): never the root.
            if directory:
                first = self.by_first.get(directory.partition(b"/")[0], ())
                last = self.by_last.get(directory.rpartition(b"/")[2], ())
                for regex, index, name in chain(first, last, self.matched):
                    if regex.fullmatch(directory):
                        rules.append((index, name))
            # A rule has one place in these lists, so a set of rules always comes in one order.
            key = tuple(index for index, _ in rules)
            found = self._names.get(key)
            if found is None:
                found = self._names[key] = _Names(rules)
            self._in[directory] = found
        return found


class Codeowners:
    """A parsed CODEOWNERS file: its rules in file order, and the problems of what was skipped.

    `owners_of` answers GitHub's question for one path; "the last matching pattern takes the
    most precedence". What applies in each directory is worked out once and kept, so matching
    every file of a head costs little more than a lookup per file. `parse_codeowners` builds
    it; built by hand, a rule whose pattern GitHub rejects raises ValueError.
    """

    def __init__(self, rules: Sequence[Rule], problems: Sequence[Problem] = ()) -> None:
        self.rules = tuple(rules)
        self.problems = tuple(problems)
        shapes = [(index, _shape(rule.pattern)) for index, rule in enumerate(self.rules)]
        self._files = _Rules([(i, shape) for i, shape in shapes if shape.files])
        self._folders = _Rules([(i, shape) for i, shape in shapes if shape.covers])
        # For each directory: the last rule that matches it or one above it (-1: none).
        self._covered: dict[bytes, int] = {b"": -1}

    def rule_for(self, path: bytes) -> Rule | None:
        """The last rule whose pattern matches `path` (a file's path from the root, `/`
        separated, no leading `/`), or None."""
        directory, _, name = path.rpartition(b"/")
        index = self._files.last(directory, name, self._cover(directory))
        return self.rules[index] if index >= 0 else None

    def owners_of(self, path: bytes) -> tuple[str, ...] | None:
        """The owners of `path`: None if no rule matches it, `()` if the rule that decides
        has no owners. Either way GitHub shows the file with no code owner."""
        rule = self.rule_for(path)
        return None if rule is None else rule.owners

    def _cover(self, directory: bytes) -> int:
        """The last rule that matches `directory` or a directory above it."""
        found = self._covered.get(directory)
        if found is not None:
            return found
        # Down from the nearest directory already known, without recursion: paths are deep.
        pending = [directory]
        parent = directory.rpartition(b"/")[0]
        while parent not in self._covered:
            pending.append(parent)
            parent = parent.rpartition(b"/")[0]
        found = self._covered[parent]
        for below in reversed(pending):
            parent, _, name = below.rpartition(b"/")
            found = self._folders.last(parent, name, found)
            self._covered[below] = found
        return found
