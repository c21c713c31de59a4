"""CODEOWNERS (DESIGN.md definition 15) by GitHub's page "About code owners"
(docs.github.com/en/repositories/managing-your-repositorys-settings-and-features/
customizing-your-repository/about-code-owners), quoted in the comments: every example the page
gives, the edges it leaves to gitignore's rules with `git check-ignore` as their oracle, the
parsing of the file, and where GitHub finds it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import pygit2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pygit2.enums import FileMode

from tests.support.gitrepos import Content, GitRepo, RepoPath, git_env
from worker.engine.codeowners import (
    MAX_CODEOWNERS_BYTES,
    Codeowners,
    CodeownersFile,
    Problem,
    ProblemKind,
    Rule,
    find_codeowners,
    parse_codeowners,
)


class Case(NamedTuple):
    pattern: bytes
    path: bytes
    matches: bool


def matches(pattern: bytes, path: bytes) -> bool:
    """Whether a CODEOWNERS file of the one line `pattern @owner` gives `path` an owner."""
    return parse_codeowners(pattern + b" @owner\n").owners_of(path) == ("@owner",)


# Every example of the page's example file, on paths its comments name or imply.
DOCS_CASES = [
    # "These owners will be the default owners for everything in the repo."
    Case(b"*", b"README.md", True),
    Case(b"*", b"src/deep/main.c", True),
    # "When someone opens a pull request that only modifies JS files, only @js-owner [...]
    # will be requested for a review."
    Case(b"*.js", b"index.js", True),
    Case(b"*.js", b"web/src/app.js", True),
    Case(b"*.js", b"index.jsx", False),
    Case(b"*.js", b"index.js.map", False),
    # "*.go docs@example.com"
    Case(b"*.go", b"cmd/main.go", True),
    # "the octocats team in the octo-org organization owns all .txt files."
    Case(b"*.txt", b"notes.txt", True),
    Case(b"*.txt", b"a/b/notes.txt", True),
    # "@doctocat owns any files in the build/logs directory at the root of the repository and
    # any of its subdirectories."
    Case(b"/build/logs/", b"build/logs/out.log", True),
    Case(b"/build/logs/", b"build/logs/2024/01.log", True),
    Case(b"/build/logs/", b"src/build/logs/out.log", False),
    Case(b"/build/logs/", b"build/out.log", False),
    Case(b"/build/logs/", b"build/logs", False),  # a file: a trailing slash matches folders
    # "The `docs/*` pattern will match files like `docs/getting-started.md` but not further
    # nested files like `docs/build-app/troubleshooting.md`."
    Case(b"docs/*", b"docs/getting-started.md", True),
    Case(b"docs/*", b"docs/build-app/troubleshooting.md", False),
    Case(b"docs/*", b"guide/docs/intro.md", False),  # gitignore: a middle slash anchors
    # "@octocat owns any file in an apps directory anywhere in your repository."
    Case(b"apps/", b"apps/web/index.js", True),
    Case(b"apps/", b"services/apps/api.py", True),
    Case(b"apps/", b"apps", False),
    Case(b"apps/", b"myapps/api.py", False),
    # "@doctocat owns any file in the `/docs` directory in the root of your repository and any
    # of its subdirectories."
    Case(b"/docs/", b"docs/index.md", True),
    Case(b"/docs/", b"docs/build-app/troubleshooting.md", True),
    Case(b"/docs/", b"guide/docs/index.md", False),
    # "any change inside the `/scripts` directory will require approval from @doctocat or
    # @octocat."
    Case(b"/scripts/", b"scripts/deploy.sh", True),
    # "@octocat owns any file in a `/logs` directory such as `/build/logs`, `/scripts/logs`,
    # and `/deeply/nested/logs`."
    Case(b"**/logs", b"build/logs/a.log", True),
    Case(b"**/logs", b"scripts/logs/a.log", True),
    Case(b"**/logs", b"deeply/nested/logs/a.log", True),
    Case(b"**/logs", b"logs/a.log", True),
    Case(b"**/logs", b"catalogs/a.log", False),
    # "CODEOWNERS paths are case sensitive"
    Case(b"README.md", b"readme.md", False),
    Case(b"/Docs/", b"docs/index.md", False),
]

# What the page leaves to "most of the same rules used in gitignore files".
GITIGNORE_CASES = [
    # A name without a slash, at any depth, of a file or of a folder (covering what is in it).
    Case(b"Makefile", b"Makefile", True),
    Case(b"Makefile", b"src/Makefile", True),
    Case(b"Makefile", b"Makefile.in", False),
    Case(b"build", b"build/x.o", True),
    Case(b"build", b"src/build/x.o", True),
    # A leading or middle slash anchors at the root; no trailing slash: a file or a folder.
    Case(b"/Makefile", b"Makefile", True),
    Case(b"/Makefile", b"src/Makefile", False),
    Case(b"src/util", b"src/util/a.c", True),
    Case(b"src/util", b"src/util", True),
    Case(b"src/util", b"lib/src/util/a.c", False),
    Case(b"/docs", b"docs/a.md", True),
    Case(b"/docs", b"docs", True),
    # `*` at the start, in the middle, at the end; it never matches a slash.
    Case(b"*.min.js", b"dist/app.min.js", True),
    Case(b"src/*/index.js", b"src/a/index.js", True),
    Case(b"src/*/index.js", b"src/a/b/index.js", False),
    Case(b"test_*", b"tests/test_a.py", True),
    Case(b"lib*", b"libfoo/x.c", True),
    Case(b"/a*c", b"a/c", False),
    Case(b"/*", b"README.md", True),
    Case(b"/*", b"src/main.c", False),
    Case(b"src/*", b"src/a.c", True),
    Case(b"src/*", b"src/a/b.c", False),
    Case(b"*/", b"a/b", True),
    Case(b"*/", b"a", False),
    Case(b"/*/", b"a/b/c", True),
    Case(b"/*/", b"a", False),
    # `?`: one byte, never a slash.
    Case(b"?.md", b"a.md", True),
    Case(b"?.md", b"docs/a.md", True),
    Case(b"?.md", b"ab.md", False),
    Case(b"a?c", b"a/c", False),
    Case(b"/a?c/x", b"abc/x", True),
    # `**` at the start, in the middle (zero folders or more), at the end, alone.
    Case(b"**/foo/bar", b"foo/bar", True),
    Case(b"**/foo/bar", b"x/foo/bar/baz", True),
    Case(b"**/foo/bar", b"foo/baz/bar", False),
    Case(b"a/**/b", b"a/b", True),
    Case(b"a/**/b", b"a/x/y/b", True),
    Case(b"a/**/b", b"a/x/b/c.txt", True),
    Case(b"a/**/b", b"x/a/b", False),
    Case(b"a/**/b", b"a/xb", False),
    Case(b"src/**", b"src/a.c", True),
    Case(b"src/**", b"src/a/b/c.c", True),
    Case(b"src/**", b"src", False),
    Case(b"src/**", b"lib/src/a.c", False),
    Case(b"a/**/", b"a/b/c", True),
    Case(b"a/**/", b"a/b", False),
    Case(b"**", b"a", True),
    Case(b"**", b"a/b/c", True),
    Case(b"**/", b"a/b", True),
    Case(b"**/", b"a", False),
    # "Other consecutive asterisks are considered regular asterisks" (gitignore's page).
    Case(b"src**/test", b"srcx/test", True),
    Case(b"src**/test", b"src/a/test", False),
    # A backslash escapes what follows: a space, a wildcard, `!`, a bracket.
    Case(b"My\\ Docs/", b"My Docs/a.md", True),
    Case(b"f\\*o", b"f*o", True),
    Case(b"f\\*o", b"foo", False),
    Case(b"\\!important", b"!important", True),
    Case(b"\\[id\\].js", b"pages/[id].js", True),
    # Bytes as they are: a path that is not UTF-8 (Latin-1 here), a newline in a name.
    Case(b"caf\xe9/", b"caf\xe9/menu.txt", True),
    Case(b"caf\xe9/", b"caf\xc3\xa9/menu.txt", False),
    Case(b"*.txt", b"caf\xe9/\xff.txt", True),
    Case(b"*.md", b"a\nb.md", True),
]

# Where git matches what GitHub does not: the page's exception (through a folder that a last
# `*` matches), and git's code against gitignore's page (after a literal beginning, its `**`
# crosses slashes).
GIT_DIFFERS = {
    Case(b"docs/*", b"docs/build-app/troubleshooting.md", False),
    Case(b"/*", b"src/main.c", False),
    Case(b"src/*", b"src/a/b.c", False),
    Case(b"src**/test", b"src/a/test", False),
}


@pytest.mark.parametrize("case", DOCS_CASES + GITIGNORE_CASES, ids=str)
def test_a_pattern_matches_what_github_says(case: Case) -> None:
    assert matches(case.pattern, case.path) is case.matches


@pytest.fixture(scope="module")
def ignore_repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    return GitRepo.init(tmp_path_factory.mktemp("check-ignore") / "repo")


def git_ignores(repo: GitRepo, pattern: bytes, paths: list[bytes]) -> list[bool]:
    """Whether git, given `.gitignore` of the one line `pattern`, ignores each path (none of
    them exists, so each is a file, and each folder above it a folder)."""
    repo.write(".gitignore", pattern + b"\n")
    found = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-z", "-v", "-n"],
        cwd=repo.path,
        input=b"".join(path + b"\0" for path in paths),
        capture_output=True,
        env=git_env(repo.path),
        check=False,
    )
    assert found.returncode in (0, 1), found.stderr  # 1: none ignored
    fields = found.stdout.split(b"\0")[:-1]
    records = [fields[i : i + 4] for i in range(0, len(fields), 4)]
    assert [path for *_, path in records] == paths
    return [source != b"" for source, *_ in records]


@pytest.mark.parametrize("case", DOCS_CASES + GITIGNORE_CASES, ids=str)
def test_git_agrees_but_where_github_says_otherwise(ignore_repo: GitRepo, case: Case) -> None:
    (ignored,) = git_ignores(ignore_repo, case.pattern, [case.path])
    assert ignored is (case.matches if case not in GIT_DIFFERS else not case.matches)


# Patterns and paths of a few names, wildcards and `**`, for git to judge.
NAMES = st.sampled_from(["a", "b", "ab", "a.b", ".a", "ba", "a*"])
SEGMENTS = st.sampled_from(
    ["a", "b", "*", "?", "**", "***", "a*", "*b", "**b", "a?", "*.b", "a\\*"]
)
PATHS = st.lists(st.lists(NAMES, min_size=1, max_size=4).map("/".join), min_size=1, max_size=12)


@st.composite
def patterns(draw: st.DrawFn) -> bytes:
    segments = draw(st.lists(SEGMENTS, min_size=1, max_size=4))
    lead = draw(st.sampled_from(["", "/"]))
    trail = draw(st.sampled_from(["", "/"]))
    return (lead + "/".join(segments) + trail).encode()


def differs_from_git(pattern: bytes) -> bool:
    """A last segment `*`, the page's exception (where git matches what its folders hold)."""
    return pattern.rsplit(b"/", 1)[-1] == b"*"


@settings(max_examples=300, deadline=None)
@given(pattern=patterns(), paths=PATHS)
def test_a_pattern_matches_what_git_ignores(
    ignore_repo: GitRepo, pattern: bytes, paths: list[str]
) -> None:
    assume(not differs_from_git(pattern))
    encoded = [path.encode() for path in dict.fromkeys(paths)]
    assert [matches(pattern, path) for path in encoded] == git_ignores(
        ignore_repo, pattern, encoded
    )


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(patterns(), min_size=1, max_size=12), paths=PATHS)
def test_the_last_matching_line_wins(lines: list[bytes], paths: list[str]) -> None:
    text = b"".join(b"%s @owner%d\n" % (pattern, i) for i, pattern in enumerate(lines))
    codeowners = parse_codeowners(text)
    for path in (path.encode() for path in paths):
        alone = [rule for rule in codeowners.rules if matches(rule.pattern, path)]
        assert codeowners.rule_for(path) == (alone[-1] if alone else None)


# The page's example file as it shows it.
DOCS_EXAMPLE = b"""\
# This is a comment.
# Each line is a file pattern followed by one or more owners.

# These owners will be the default owners for everything in
# the repo. Unless a later match takes precedence,
# @global-owner1 and @global-owner2 will be requested for
# review when someone opens a pull request.
*       @global-owner1 @global-owner2

# Order is important; the last matching pattern takes the most
# precedence. When someone opens a pull request that only
# modifies JS files, only @js-owner and not the global
# owner(s) will be requested for a review.
*.js    @js-owner #This is an inline comment.

# You can also use email addresses if you prefer. They'll be
# used to look up users just like we do for commit author
# emails.
*.go docs@example.com

# Teams can be specified as code owners as well. Teams should
# be identified in the format @org/team-name. Teams must have
# explicit write access to the repository. In this example,
# the octocats team in the octo-org organization owns all .txt files.
*.txt @octo-org/octocats

# In this example, @doctocat owns any files in the build/logs
# directory at the root of the repository and any of its
# subdirectories.
/build/logs/ @doctocat

# The `docs/*` pattern will match files like
# `docs/getting-started.md` but not further nested files like
# `docs/build-app/troubleshooting.md`.
docs/*  docs@example.com

# In this example, @octocat owns any file in an apps directory
# anywhere in your repository.
apps/ @octocat

# In this example, @doctocat owns any file in the `/docs`
# directory in the root of your repository and any of its
# subdirectories.
/docs/ @doctocat

# In this example, any change inside the `/scripts` directory
# will require approval from @doctocat or @octocat.
/scripts/ @doctocat @octocat

# In this example, @octocat owns any file in a `/logs` directory such as
# `/build/logs`, `/scripts/logs`, and `/deeply/nested/logs`. Any changes
# in a `/logs` directory will require approval from @octocat.
**/logs @octocat

# In this example, @octocat owns any file in the `/apps`
# directory in the root of your repository except for the `/apps/github`
# subdirectory, as its owners are left empty.
/apps/ @octocat
/apps/github

# In this example, @octocat owns any file in the `/apps`
# directory in the root of your repository except for the `/apps/github`
# subdirectory, as this subdirectory has its own owner @doctocat
/apps/ @octocat
/apps/github @doctocat
"""


@pytest.mark.parametrize(
    ("path", "owners", "line"),
    [
        (b"README.md", ("@global-owner1", "@global-owner2"), 8),
        (b"src/app.js", ("@js-owner",), 14),
        (b"cmd/main.go", ("docs@example.com",), 19),
        (b"notes.txt", ("@octo-org/octocats",), 25),
        # `**/logs` comes after `/build/logs/` and `*.txt`.
        (b"build/logs/out.txt", ("@octocat",), 53),
        # `/docs/` comes after `docs/*`.
        (b"docs/getting-started.md", ("@doctocat",), 44),
        (b"docs/build-app/troubleshooting.md", ("@doctocat",), 44),
        (b"services/apps/api.py", ("@octocat",), 39),
        (b"apps/web/index.js", ("@octocat",), 64),
        (b"apps/github/main.go", ("@doctocat",), 65),
        (b"scripts/deploy.sh", ("@doctocat", "@octocat"), 48),
        (b"scripts/logs/run.log", ("@octocat",), 53),
    ],
)
def test_the_docs_example_file(path: bytes, owners: tuple[str, ...], line: int) -> None:
    codeowners = parse_codeowners(DOCS_EXAMPLE)
    assert codeowners.problems == ()
    assert codeowners.owners_of(path) == owners
    rule = codeowners.rule_for(path)
    assert rule is not None and rule.line == line


def test_a_line_without_owners_unsets_and_no_line_is_none() -> None:
    # "@octocat owns any file in the /apps directory [...] except for the /apps/github
    # subdirectory, as its owners are left empty."
    codeowners = parse_codeowners(b"/apps/ @octocat\n/apps/github\n")
    assert codeowners.owners_of(b"apps/web/index.js") == ("@octocat",)
    assert codeowners.owners_of(b"apps/github/index.js") == ()
    assert codeowners.rule_for(b"apps/github/index.js") == Rule(2, b"/apps/github", ())
    assert codeowners.owners_of(b"README.md") is None
    assert codeowners.rule_for(b"README.md") is None


def test_owners_on_two_lines_leave_the_last() -> None:
    # "If the code owners are not on the same line, the pattern matches only the last mentioned
    # code owner."
    assert parse_codeowners(b"*.js @a\n*.js @b\n").owners_of(b"x.js") == ("@b",)


@pytest.mark.parametrize(
    ("text", "owners"),
    [
        (b"/src/ @folder\n*.py @python\n", ("@python",)),
        (b"*.py @python\n/src/ @folder\n", ("@folder",)),
        (b"src/ @folder\nsrc/deep/ @deep\n/src/ @root\n", ("@root",)),
        (b"/src/*.py @py\nsrc/deep @deep\n", ("@deep",)),
    ],
)
def test_the_last_match_wins_whether_it_names_the_file_or_a_folder(
    text: bytes, owners: tuple[str, ...]
) -> None:
    assert parse_codeowners(text).owners_of(b"src/deep/a.py") == owners


def test_comments_blank_lines_and_inline_comments() -> None:
    codeowners = parse_codeowners(
        b"# a comment\n\n   \n\t# an indented comment\n*.js @a #c @b\n*.md #no owners\na#b @c\n"
    )
    assert codeowners.rules == (
        Rule(5, b"*.js", ("@a",)),
        Rule(6, b"*.md", ()),
        Rule(7, b"a#b", ("@c",)),
    )
    assert codeowners.owners_of(b"a#b") == ("@c",)


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        # "Escaping a pattern starting with `#` using `\` so it is treated as a pattern and not
        # a comment" does not work.
        (b"\\#notes.txt @a", ProblemKind.ESCAPED_HASH),
        # "Using `!` to negate a pattern" does not work.
        (b"!*.js @a", ProblemKind.NEGATION),
        # "Using `[ ]` to define a character range" does not work.
        (b"*.[ch] @a", ProblemKind.CHARACTER_RANGE),
        (b"a[b @a", ProblemKind.CHARACTER_RANGE),
        # The API's example error: "Invalid owner on line 7: * user".
        (b"* user", ProblemKind.INVALID_OWNER),
        (b"* @a @", ProblemKind.INVALID_OWNER),
        (b"* @org/", ProblemKind.INVALID_OWNER),
        (b"* @caf\xe9", ProblemKind.INVALID_OWNER),
        (b"/ @a", ProblemKind.INVALID_PATTERN),
        (b"docs\\", ProblemKind.INVALID_PATTERN),
    ],
)
def test_a_line_github_rejects_is_skipped_and_unsets_nothing(
    line: bytes, kind: ProblemKind
) -> None:
    # "If any line in your CODEOWNERS file contains invalid syntax, that line will be skipped."
    codeowners = parse_codeowners(b"* @everyone\n" + line + b"\n")
    assert codeowners.rules == (Rule(1, b"*", ("@everyone",)),)
    assert codeowners.problems == (Problem(2, kind, line),)
    for path in (b"#notes.txt", b"notes.txt", b"a.c", b"a[b", b"docs/a", b"app.js"):
        assert codeowners.owners_of(path) == ("@everyone",)


def test_the_owners_github_accepts() -> None:
    # "the standard @username or @org/team-name format", "an email address [...] for example
    # user@example.com"
    text = b"* @octocat @octo-org/octocats user@example.com @Mixed-Case_1 @o/t.x @octocat\n"
    assert parse_codeowners(text).owners_of(b"a") == (
        "@octocat",
        "@octo-org/octocats",
        "user@example.com",
        "@Mixed-Case_1",
        "@o/t.x",
    )


@pytest.mark.parametrize(
    "text",
    [
        b"*.md \t @a\t @b  \t\n",  # blanks between and after words
        b"*.md @a @b\r\n",  # CRLF
        b"* @z\r*.md @a @b\r",  # CR alone
        b"\xef\xbb\xbf*.md @a @b\n",  # a byte order mark
        b"*.md @a @b",  # no final newline
    ],
    ids=["blanks", "crlf", "cr", "bom", "no-newline"],
)
def test_line_ends_blanks_and_a_byte_order_mark(text: bytes) -> None:
    codeowners = parse_codeowners(text)
    assert codeowners.owners_of(b"docs/README.md") == ("@a", "@b")
    assert codeowners.rules[-1].pattern == b"*.md"
    assert codeowners.problems == ()


def test_an_escaped_blank_belongs_to_the_pattern() -> None:
    codeowners = parse_codeowners(b"/My\\ Docs/ @a\nfoo\\  @b\n")
    assert [rule.pattern for rule in codeowners.rules] == [b"/My\\ Docs/", b"foo\\ "]
    assert codeowners.owners_of(b"My Docs/x.md") == ("@a",)
    assert codeowners.owners_of(b"foo ") == ("@b",)
    assert codeowners.owners_of(b"foo") is None


def test_a_file_of_3_mb_or_more_is_not_loaded() -> None:
    # "CODEOWNERS files must be under 3 MB in size. A CODEOWNERS file over this limit will not
    # be loaded"
    line = b"* @a\n"
    under = line + b"#" * (MAX_CODEOWNERS_BYTES - len(line) - 2) + b"\n"
    assert len(under) == MAX_CODEOWNERS_BYTES - 1
    assert parse_codeowners(under).owners_of(b"x") == ("@a",)
    at_limit = parse_codeowners(under + b"\n")
    assert at_limit.rules == ()
    assert at_limit.problems == (Problem(None, ProblemKind.FILE_TOO_LARGE, b""),)
    assert at_limit.owners_of(b"x") is None


def test_a_rule_built_by_hand_must_have_a_pattern_github_accepts() -> None:
    assert Codeowners([Rule(1, b"src/", ("@a",))]).owners_of(b"src/x") == ("@a",)
    with pytest.raises(ValueError, match="negated pattern"):
        Codeowners([Rule(1, b"!src/", ("@a",))])


def test_many_paths_share_what_was_found_for_their_folders() -> None:
    """The folder caches answer as a fresh set of rules does, in any order of paths."""
    text = b"* @all\n/a/ @a\n/a/b/*.py @py\n**/c/ @c\n/a/b/c/d @d\n"
    paths = [b"a/b/c/d/e.py", b"a/b/x.py", b"a/b/c/x.py", b"a/x", b"x", b"a/b/c/d", b"q/c/r"]
    expected = [("@d",), ("@py",), ("@c",), ("@a",), ("@all",), ("@d",), ("@c",)]
    shared = parse_codeowners(text)
    assert [shared.owners_of(path) for path in paths] == expected
    assert [shared.owners_of(path) for path in reversed(paths)] == expected[::-1]
    assert [parse_codeowners(text).owners_of(path) for path in paths] == expected


# -- where GitHub finds the file -------------------------------------------------------------


def tree_of(repo: GitRepo, files: Mapping[RepoPath, Content]) -> pygit2.Tree:
    """The tree of a commit of `files` and a README."""
    repo.commit({"README.md": "x\n", **files})
    return pygit2.Repository(str(repo.path)).head.peel(pygit2.Tree)


@pytest.mark.parametrize(
    ("present", "found"),
    [
        # "If CODEOWNERS files exist in more than one of those locations, GitHub will search for
        # them in that order and use the first one it finds."
        ([".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"], ".github/CODEOWNERS"),
        (["CODEOWNERS", "docs/CODEOWNERS"], "CODEOWNERS"),
        (["docs/CODEOWNERS", ".github/CODEOWNERS"], ".github/CODEOWNERS"),
        (["docs/CODEOWNERS"], "docs/CODEOWNERS"),
        ([], None),
        # Only those three places, by that exact name ("create a new file called CODEOWNERS").
        (["src/CODEOWNERS", ".gitlab/CODEOWNERS", "codeowners", ".github/codeowners"], None),
        # A folder by that name is no file.
        ([".github/CODEOWNERS/x", "docs/CODEOWNERS"], "docs/CODEOWNERS"),
    ],
)
def test_the_first_of_the_three_places_holds_the_file(
    git_repo: GitRepo, present: list[str], found: str | None
) -> None:
    tree = tree_of(git_repo, {path: f"* @{i}\n" for i, path in enumerate(present)})
    codeowners = find_codeowners(tree)
    if found is None:
        assert codeowners is None
    else:
        assert codeowners == CodeownersFile(found, f"* @{present.index(found)}\n".encode())


def test_a_symlink_is_passed_over_and_an_executable_file_is_read(git_repo: GitRepo) -> None:
    git_repo.symlink(".github/CODEOWNERS", "../docs/CODEOWNERS")
    git_repo.write("CODEOWNERS", "* @root\n")
    git_repo.chmod("CODEOWNERS")
    tree = tree_of(git_repo, {"docs/CODEOWNERS": "* @docs\n"})
    assert find_codeowners(tree) == CodeownersFile("CODEOWNERS", b"* @root\n")


def test_a_submodule_is_passed_over(git_repo: GitRepo) -> None:
    repo = pygit2.Repository(str(git_repo.path))
    docs = repo.TreeBuilder()
    docs.insert("CODEOWNERS", repo.create_blob(b"* @docs\n"), FileMode.BLOB)
    root = repo.TreeBuilder()
    root.insert("CODEOWNERS", pygit2.Oid(hex="12" * 20), FileMode.COMMIT)
    root.insert("docs", docs.write(), FileMode.TREE)
    tree = repo[root.write()].peel(pygit2.Tree)
    assert find_codeowners(tree) == CodeownersFile("docs/CODEOWNERS", b"* @docs\n")


def test_an_oversized_first_file_leaves_no_owners(git_repo: GitRepo) -> None:
    """Not documented: GitHub does not go on to the next place; the file found is not loaded."""
    big = b"* @big\n" + b"#" * MAX_CODEOWNERS_BYTES + b"\n"
    tree = tree_of(git_repo, {".github/CODEOWNERS": big, "CODEOWNERS": "* @small\n"})
    found = find_codeowners(tree)
    assert found is not None and found.path == ".github/CODEOWNERS"
    assert parse_codeowners(found.data).owners_of(b"README.md") is None


def _paths(tree: pygit2.Tree, prefix: bytes = b"") -> Iterator[bytes]:
    for entry in tree:
        assert entry.raw_name is not None
        path = prefix + entry.raw_name
        if isinstance(entry, pygit2.Tree):
            yield from _paths(entry, path + b"/")
        else:
            yield path


def test_owners_of_every_file_of_a_head(git_repo: GitRepo) -> None:
    """From a tree to each of its files' owners, names that are not UTF-8 included."""
    tree = tree_of(
        git_repo,
        {
            ".github/CODEOWNERS": b"* @all\n/src/ @src\n*.py @py\ncaf\xe9/ @cafe\n/src/gen/\n",
            "src/main.c": "int main;\n",
            "src/tool.py": "x = 1\n",
            "src/gen/out.c": "int x;\n",
            b"caf\xe9/menu.txt": "menu\n",
        },
    )
    found = find_codeowners(tree)
    assert found is not None
    codeowners = parse_codeowners(found.data)
    assert {path: codeowners.owners_of(path) for path in _paths(tree)} == {
        b".github/CODEOWNERS": ("@all",),
        b"README.md": ("@all",),
        b"caf\xe9/menu.txt": ("@cafe",),
        b"src/main.c": ("@src",),
        b"src/tool.py": ("@py",),
        b"src/gen/out.c": (),
    }
