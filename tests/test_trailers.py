"""Co-authored-by trailers: both extractors store, for every commit, the values git's own trailer
rules give (`git log --format=%(trailers:key=Co-authored-by,valueonly,unfold)`, the oracle),
each read as `Name <email>` by the spec's regex, whatever bytes the message holds."""

from __future__ import annotations

import re

import pygit2
import pytest

from tests.support.gitrepos import GitRepo
from worker.engine import extract
from worker.engine.extract import MAX_IDENTITY_CHARS, SHORTENED, co_authors, extract_chunk
from worker.engine.gitlog import extract_with_git

ANN = b"Co-authored-by: Ann <ann@example.com>\n"

# A message a case, named by what it tries: what git reads as trailers and what it does not.
MESSAGES: dict[str, bytes] = {
    "none": b"no trailers\n\nJust a body.\n",
    "one": b"one\n\n" + ANN,
    "several": (
        b"several, one repeated, keys in any case, another trailer between\n\n"
        + ANN
        + b"Signed-off-by: Sig <sig@example.com>\n"
        b"co-authored-by: Bo <bo@example.com>\n"
        b"CO-AUTHORED-BY:Cy <cy@example.com>\n" + ANN
    ),
    "folded": (
        b"folded values\n\nCo-authored-by: Long\n   Name <long@example.com>\n"
        b"Co-authored-by: Dee\n\t<dee@example.com>\n"
    ),
    "not in the last paragraph": b"not last\n\n" + ANN + b"\nA paragraph after it.\n",
    "subject only": ANN,
    "subject and body": ANN + b"\nbody\n",
    "malformed": (
        b"malformed\n\n"
        b"Co-authored-by: no email at all\n"
        b"Co-authored-by: <>\n"
        b"Co-authored-by: Blank <   >\n"
        b"Co-authored-by: After <after@example.com> trailing words\n"
        b"Co-authored-by: <nameless@example.com>\n"
        b"Co-authored-by: Two <a@example.com> <b@example.com>\n"
        b"Co-authored-by: Open <<x@example.com>\n"
        b"Co-authored-by: Shut <x@example.com>>\n"
        b"Co-authored-by:    Spaced   Out   <  spaced@example.com  >\n"
        b"Co-authored-by:\n"
    ),
    "not utf-8": b"bytes\n\nCo-authored-by: Bad \xff\xfe UTF-8 <b\xffd@example.com>\n",
    "marks": (
        b"\x01marks \x01 in the subject\n\n\x01 a body line\n\n"
        b"Co-authored-by: \x01Mark\x1f\x01 <\x01m@example.com>\n"
        b"Co-authored-by: Folded\n \x01 <f@example.com>\n"
        b"Co-authored-by: Ctl\x1c\x1d\x1e\x7f\r <ctl@example.com>\n"
    ),
    "crlf": b"crlf\r\n\r\nCo-authored-by: Ann <ann@example.com>\r\nCo-authored-by: Bo <bo@x>\r\n",
    "patch divider": b"divider\n\n" + ANN + b"---\nCo-authored-by: Bo <bo@example.com>\n",
    "mixed paragraph": b"mixed\n\nSome words that are not a trailer\n" + ANN,
    "git's own trailer": b"mixed\n\nSigned-off-by: S <s@example.com>\nnot one\nnot two\n" + ANN,
    "long": b"long\n\nCo-authored-by: " + b"N" * 5000 + b" <" + b"e" * 300 + b"@example.com>\n",
}
# A commit whose encoding header says ISO-8859-1: git gives its values in UTF-8.
LATIN_1 = b"latin-1\n\nCo-authored-by: Ren\xe9 <ren\xe9@example.com>\n"

SPEC = re.compile(rb"^\s*(.*?)\s*<([^<>]*)>\s*$")


def shown(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= MAX_IDENTITY_CHARS else text[: MAX_IDENTITY_CHARS - 1] + SHORTENED


def oracle(repo: GitRepo) -> dict[str, list[bytes]]:
    """Every commit's Co-authored-by values as git prints them, one a line after the commit's
    sha and a NUL (a value holds neither a NUL nor, unfolded, a newline)."""
    out = repo.run(
        "log", "--branches", "--format=%H%x00%(trailers:key=Co-authored-by,valueonly,unfold)"
    )
    values: dict[str, list[bytes]] = {}
    sha = ""
    for line in out.split(b"\n"):
        if b"\0" in line:
            head, line = line.split(b"\0")
            sha = head.decode()
            values[sha] = []
        if line:
            values[sha].append(line)
    return values


def expected_rows(values: list[bytes]) -> list[dict[str, str]]:
    people = []
    for value in values:
        if (match := SPEC.match(value)) and match.group(2).strip():
            name, email = match.group(1).strip(), match.group(2).strip()
            people.append({"name": shown(name), "email": shown(email)})
    return people


@pytest.fixture
def trailers_repo(git_repo: GitRepo) -> dict[str, str]:
    """A commit per message on main, each written as it is (`git commit` would clean it up and
    turn bytes that are not UTF-8 into UTF-8); the name of each commit's case by its sha."""
    cases: dict[str, str] = {}
    sha = None
    for name, message in MESSAGES.items():
        sha = git_repo.write_commit(sha, message)
        cases[sha] = name
    sha = git_repo.write_commit(sha, LATIN_1, headers=b"encoding ISO-8859-1\n")
    cases[sha] = "latin-1"
    git_repo.run("update-ref", "refs/heads/main", sha)
    return cases


def extracted(repo: GitRepo, shas: list[str], with_git: str) -> list[list[dict[str, str]]]:
    if with_git == "git log -p":
        (tables,) = extract_with_git(str(repo.path), shas)
        commits = tables[0]
    else:
        commits, _ = extract_chunk(pygit2.Repository(str(repo.path)), shas)
    assert commits.column("sha").to_pylist() == shas
    return commits.column("co_authors").to_pylist()


@pytest.mark.parametrize("with_git", ["git log -p", "libgit2 and git for trailers"])
def test_both_extractors_store_gits_trailers(
    git_repo: GitRepo, trailers_repo: dict[str, str], with_git: str
) -> None:
    values = oracle(git_repo)
    by_case = {trailers_repo[sha]: found for sha, found in values.items()}
    # The oracle itself: git finds what these cases are about (so they test something).
    ann, bo, cy = b"Ann <ann@example.com>", b"Bo <bo@example.com>", b"Cy <cy@example.com>"
    assert by_case["several"] == [ann, bo, cy, ann]
    assert by_case["folded"] == [b"Long Name <long@example.com>", b"Dee <dee@example.com>"]
    assert by_case["subject only"] == by_case["subject and body"] == []
    assert by_case["not in the last paragraph"] == by_case["none"] == []
    assert b"Ren\xc3\xa9 <ren\xc3\xa9@example.com>" in by_case["latin-1"]
    assert any(b"\x01" in value for value in by_case["marks"])

    shas = list(values)
    rows = extracted(git_repo, shas, with_git)
    assert rows == [expected_rows(values[sha]) for sha in shas]
    assert sum(map(len, rows)) >= 15  # most cases name someone
    # Any order and any subset: a commit's values stay its own.
    assert extracted(git_repo, shas[::-3], with_git) == rows[::-3]


def test_without_git_libgit2_reads_the_plain_cases(
    git_repo: GitRepo, trailers_repo: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """libgit2's trailers are the fallback when git is not installed: not git's in the corner
    cases (a dict keeps one value per key, other rules), the same in the plain ones."""
    monkeypatch.setattr(extract, "git_available", lambda: False)
    values = oracle(git_repo)
    plain = [sha for sha, case in trailers_repo.items() if case in {"none", "one", "not utf-8"}]
    rows, _ = extract_chunk(pygit2.Repository(str(git_repo.path)), plain)
    assert rows.column("co_authors").to_pylist() == [expected_rows(values[sha]) for sha in plain]


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"Ann <ann@example.com>",
        b"  \t Ann  B. \x0b<\x0c ann@example.com \r>\t ",
        b"\x1cAnn\x1f <\x85ann@example.com\xa0>",  # not ASCII blanks: kept
        b"<>",
        b"a <b> <c>",
        b"a <b <c>",
        b"a <b>>",
        b"a > b <c>",
        b"<a> b",
        b"a <b> c",
    ],
)
def test_a_value_is_read_as_the_spec_regex_reads_it(value: bytes) -> None:
    assert co_authors([value]) == expected_rows([value])


def test_a_long_run_of_blanks_costs_one_pass() -> None:
    """The spec's regex backtracks quadratically over blanks: about 45 minutes for this value."""
    value = b"x" + b" " * 1_000_000 + b"y <" + b" " * 1_000_000 + b"z>"
    assert co_authors([value, value[:-1]]) == [
        {"name": shown(b"x" + b" " * 1_000_000 + b"y"), "email": "z"}
    ]
