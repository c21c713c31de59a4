"""The git oracles of tests/support/gitrepos.py, checked against numbers computed by hand.

Tiny repositories pin each counting rule to a hand-computed number; the edge-case
repository is then checked to really contain every case it claims, and the oracles
are cross-checked against each other and against blob sizes on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.gitrepos import (
    BIG_FILE_MIN_BYTES,
    CommitFacts,
    GitError,
    GitRepo,
    PatchStats,
    git_branch_count,
    git_byte_totals,
    git_commit_count,
    git_contributors,
    git_line_totals,
    git_merge_count,
    git_numstat,
    git_numstat_by_file,
    git_patch_bytes,
    git_patch_stats,
    git_patch_stats_by_file,
    git_per_commit,
    parse_log_patch,
)

SHA = "0123456789abcdef0123456789abcdef01234567"


def only(mapping: dict[str, tuple[int, int]], sha: str) -> tuple[int, int]:
    assert sha in mapping, f"{sha} missing from the oracle"
    return mapping[sha]


# -- counting rules on tiny repositories --------------------------------------------


def test_simple_add_counts_lines_and_terminators(git_repo: GitRepo) -> None:
    sha = git_repo.commit({"a.txt": "a\nb\n", "x.txt": "x"})
    # a.txt: "a\n" + "b\n" = 2 lines, 4 bytes; x.txt: "x" without terminator = 1 line, 1 byte.
    assert git_numstat(git_repo.path) == {sha: (3, 0)}
    assert git_patch_bytes(git_repo.path) == {sha: (5, 0)}
    assert git_line_totals(git_repo.path) == (3, 0)
    assert git_byte_totals(git_repo.path) == (5, 0)
    assert git_commit_count(git_repo.path) == 1
    assert git_merge_count(git_repo.path) == 0
    assert git_branch_count(git_repo.path) == 1


def test_final_newline_added_and_removed(git_repo: GitRepo) -> None:
    git_repo.commit({"x.txt": "x", "y.txt": "a\nb\n"})
    sha = git_repo.commit({"x.txt": "x\ny\n", "y.txt": "a\nb"})
    # x.txt: -"x" (1 byte) +"x\n" +"y\n" (4 bytes); y.txt: -"b\n" (2) +"b" (1).
    assert only(git_numstat(git_repo.path), sha) == (3, 2)
    assert only(git_patch_bytes(git_repo.path), sha) == (5, 3)


def test_crlf_terminator_counts_two_bytes(git_repo: GitRepo) -> None:
    first = git_repo.commit({"w.txt": "one\r\ntwo\r\n"})
    second = git_repo.commit({"w.txt": "one\r\n2\r\n"})
    assert git_repo.run("cat-file", "blob", "HEAD:w.txt") == b"one\r\n2\r\n"
    bytes_ = git_patch_bytes(git_repo.path)
    assert only(bytes_, first) == (10, 0)  # "one\r\n" 5 + "two\r\n" 5
    assert only(bytes_, second) == (3, 5)  # +"2\r\n" 3, -"two\r\n" 5
    assert only(git_numstat(git_repo.path), second) == (1, 1)


def test_content_lines_that_look_like_patch_headers(git_repo: GitRepo) -> None:
    lines = [
        "++x\n",  # 4
        "--y\n",  # 4
        "+++ b/f\n",  # 8
        "--- a/f\n",  # 8
        "diff --git a/f b/f\n",  # 19
        "@@ -1 +1 @@\n",  # 12
        "\\ No newline at end of file\n",  # 28
        "-\n",  # 2
        "+\n",  # 2
    ]
    first = git_repo.commit({"t.txt": "".join(lines)})
    # Keep the first line, drop the other eight (83 bytes), add "--- z" without "\n".
    second = git_repo.commit({"t.txt": "++x\n--- z"})
    assert only(git_numstat(git_repo.path), first) == (9, 0)
    assert only(git_patch_bytes(git_repo.path), first) == (87, 0)
    assert only(git_numstat(git_repo.path), second) == (1, 8)
    assert only(git_patch_bytes(git_repo.path), second) == (5, 83)


def test_lone_cr_late_nul_and_binary(git_repo: GitRepo) -> None:
    sha = git_repo.commit(
        {
            "cr.txt": "\r\na\rb\n",  # "\r\n" 2 + "a\rb\n" 4: lines split on LF only
            # git sniffs only the first 8000 bytes for NUL, so this is text: a line of
            # 9001 bytes, then NUL + 40 hex digits + "\n" (42) mimicking our commit header.
            "late.txt": b"x" * 9000 + b"\n" + b"\x00" + b"0" * 40 + b"\n",
            "bin.dat": b"\x00\x01\x02\n",  # binary: 0
        }
    )
    assert only(git_numstat(git_repo.path), sha) == (4, 0)
    assert only(git_patch_bytes(git_repo.path), sha) == (2 + 4 + 9001 + 42, 0)


def test_binary_added_modified_deleted_count_zero(git_repo: GitRepo) -> None:
    shas = [
        git_repo.commit({"b.bin": b"\x00\x01"}),
        git_repo.commit({"b.bin": b"\x00\x02"}),
        git_repo.commit({"b.bin": None}),
    ]
    numstat, bytes_ = git_numstat(git_repo.path), git_patch_bytes(git_repo.path)
    for sha in shas:
        assert only(numstat, sha) == (0, 0)
        assert only(bytes_, sha) == (0, 0)
    assert git_commit_count(git_repo.path) == 3


def test_empty_commit_and_mode_change_count_zero(git_repo: GitRepo) -> None:
    git_repo.commit({"s.sh": "echo\n"})
    empty = git_repo.commit(allow_empty=True)
    git_repo.chmod("s.sh")
    chmod = git_repo.commit()
    assert git_repo.git("ls-tree", "HEAD", "s.sh").startswith("100755 ")
    for sha in (empty, chmod):
        assert only(git_numstat(git_repo.path), sha) == (0, 0)
        assert only(git_patch_bytes(git_repo.path), sha) == (0, 0)


def test_symlink_and_typechange(git_repo: GitRepo) -> None:
    git_repo.commit({"t": "hello\n"})
    git_repo.symlink("l", "README.md")
    added = git_repo.commit()
    git_repo.symlink("l", "docs/x")
    git_repo.symlink("t", "a")  # regular file -> symlink
    changed = git_repo.commit()
    assert git_repo.git("ls-tree", "HEAD", "l").startswith("120000 ")
    assert only(git_numstat(git_repo.path), added) == (1, 0)
    assert only(git_patch_bytes(git_repo.path), added) == (9, 0)  # "README.md", no "\n"
    # l: +"docs/x" 6 -"README.md" 9; t: +"a" 1 -"hello\n" 6.
    assert only(git_numstat(git_repo.path), changed) == (2, 2)
    assert only(git_patch_bytes(git_repo.path), changed) == (7, 15)


def test_submodule_gitlink_counts_as_a_line(tmp_path: Path) -> None:
    source = GitRepo.init(tmp_path / "src")
    v1 = source.commit({"f": "1\n"})
    repo = GitRepo.init(tmp_path / "repo")
    added = repo.add_submodule("sub", source)
    v2 = source.commit({"f": "2\n"})
    moved = repo.update_submodule("sub", v2)
    gitmodules = '[submodule "sub"]\n\tpath = sub\n\turl = ../src\n'  # 18 + 12 + 14 bytes
    assert repo.run("cat-file", "blob", f"{added}:.gitmodules") == gitmodules.encode()
    assert repo.git("rev-parse", f"{added}:sub") == v1
    assert repo.git("ls-tree", moved, "sub").startswith("160000 commit ")
    # "Subproject commit " (18) + 40 hex + "\n" = 59 bytes per gitlink line.
    assert only(git_numstat(repo.path), added) == (4, 0)
    assert only(git_patch_bytes(repo.path), added) == (44 + 59, 0)
    assert only(git_numstat(repo.path), moved) == (1, 1)
    assert only(git_patch_bytes(repo.path), moved) == (59, 59)


def test_merges_are_diffed_against_their_first_parent(git_repo: GitRepo) -> None:
    git_repo.commit({"base.txt": "base\n"})
    git_repo.branch("feat")
    git_repo.checkout("feat")
    feat = git_repo.commit({"feat.txt": "feat\n"})
    git_repo.checkout("main")
    main = git_repo.commit({"main.txt": "main!\n"})
    merge = git_repo.merge("feat")
    git_repo.checkout("feat")
    back = git_repo.merge("main")  # first parent: feat, so main's side is the diff
    facts = git_per_commit(git_repo.path)
    assert facts[merge].parents == (main, feat)
    assert facts[back].parents == (feat, merge)
    assert only(git_numstat(git_repo.path), merge) == (1, 0)
    assert only(git_patch_bytes(git_repo.path), merge) == (5, 0)  # "feat\n"
    assert only(git_patch_bytes(git_repo.path), back) == (6, 0)  # "main!\n"
    assert git_commit_count(git_repo.path) == 5
    assert git_merge_count(git_repo.path) == 2


def test_octopus_merge(git_repo: GitRepo) -> None:
    git_repo.commit({"base.txt": "base\n"})
    for name in "abc":
        git_repo.branch(name)
        git_repo.checkout(name)
        git_repo.commit({f"{name}.txt": f"{name}\n"})
        git_repo.checkout("main")
    octopus = git_repo.merge("a", "b", "c")
    assert len(git_per_commit(git_repo.path)[octopus].parents) == 4
    assert git_merge_count(git_repo.path) == 1
    assert git_commit_count(git_repo.path) == 5
    assert git_branch_count(git_repo.path) == 4
    assert only(git_numstat(git_repo.path), octopus) == (3, 0)
    assert only(git_patch_bytes(git_repo.path), octopus) == (6, 0)


def test_commit_set_is_everything_reachable_from_branches(git_repo: GitRepo) -> None:
    base = git_repo.commit({"f": "1\n"})
    git_repo.branch("side")
    git_repo.checkout("side")
    side = git_repo.commit({"side": "s\n"})
    git_repo.branch("gone")
    git_repo.checkout("gone")
    gone = git_repo.commit({"gone": "g\n"})
    git_repo.checkout("main")
    git_repo.delete_branch("gone")
    git_repo.branch("forced")
    git_repo.checkout("forced")
    kept = git_repo.commit({"forced": "1\n"})
    dropped = git_repo.commit({"forced": "2\n"})
    git_repo.checkout("main")
    git_repo.reset_branch("forced", kept)  # not checked out: moved by update-ref
    assert git_repo.head("forced") == kept
    expected = {base, side, kept}
    assert set(git_numstat(git_repo.path)) == expected
    assert set(git_patch_bytes(git_repo.path)) == expected
    assert set(git_per_commit(git_repo.path)) == expected
    assert git_commit_count(git_repo.path) == 3
    assert git_branch_count(git_repo.path) == 3
    assert git_repo.branches() == ["forced", "main", "side"]
    for sha in (gone, dropped):  # still stored, just unreachable
        git_repo.run("cat-file", "-e", sha)


def test_reset_of_the_checked_out_branch(git_repo: GitRepo) -> None:
    first = git_repo.commit({"f": "1\n"})
    git_repo.commit({"f": "2\n"})
    git_repo.reset_branch("main", first)
    assert git_repo.head() == first
    assert (git_repo.path / "f").read_bytes() == b"1\n"
    assert git_repo.is_clean()


def test_mailmap_merges_identities(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "repo")
    repo.commit({"1": "1\n"}, author=("Al", "al@work.example"))
    repo.commit({"2": "2\n"}, author=("Al", "al@home.example"))
    repo.commit({"3": "3\n"}, author=("Zed", "zed@example.com"))
    zed_upper = repo.commit({"4": "4\n"}, author=("Zed", "ZED@Example.com"))
    repo.branch("before-mailmap")
    # Different case only: lower-casing already merges it.
    assert git_contributors(repo.path) == {"al@work.example", "al@home.example", "zed@example.com"}
    mailmap = (
        "Al Canonical <al@example.org> <al@work.example>\n"
        "Al Canonical <al@example.org> <al@home.example>\n"
        "Zed Proper <zed@example.com>\n"  # name only
    )
    repo.commit({".mailmap": mailmap}, author=("Zed", "zed@example.com"))
    assert git_contributors(repo.path) == {"al@example.org", "zed@example.com"}
    facts = git_per_commit(repo.path)
    assert {f.author_name for f in facts.values()} == {"Al Canonical", "Zed Proper"}
    assert facts[zed_upper].author_email == "ZED@Example.com"  # name-only keeps the address
    assert facts[zed_upper].raw_author_name == "Zed"

    bare = repo.clone_bare(tmp_path / "bare.git")
    assert git_contributors(bare) == {"al@example.org", "zed@example.com"}
    # A bare repository reads HEAD:.mailmap ...
    GitRepo(bare).run("symbolic-ref", "HEAD", "refs/heads/before-mailmap")
    assert len(git_contributors(bare)) == 3
    # ... a non-bare one its work tree: the caller must have the default branch out.
    repo.checkout("before-mailmap")
    assert len(git_contributors(repo.path)) == 3


def test_per_commit_dates_keep_their_offsets(git_repo: GitRepo) -> None:
    dates = [
        "2019-03-04T09:15:00+05:30",
        "2020-02-29T23:59:59-03:30",
        "2021-05-17T08:00:00+13:45",
        "2022-08-08T08:08:08-08:00",
    ]
    shas = [git_repo.commit(allow_empty=True, date=d, author=("Zoë Ünal", "z@x")) for d in dates]
    facts = git_per_commit(git_repo.path)
    for sha, date in zip(shas, dates, strict=True):
        fact = facts[sha]
        assert fact.author_date == datetime.fromisoformat(date)
        assert fact.author_date.utcoffset() == datetime.fromisoformat(date).utcoffset()
        assert fact.committer_date == fact.author_date
        assert fact.author_name == "Zoë Ünal"
    assert facts[shas[1]].parents == (shas[0],)
    assert facts[shas[0]].parents == ()


def test_deletion_rename_and_whitespace(git_repo: GitRepo) -> None:
    first = git_repo.commit({"d.txt": "a\nb\n", "old.txt": "r\n", "w.txt": "a b\n"})
    deleted = git_repo.commit({"d.txt": None})
    renamed = git_repo.commit({"old.txt": None, "new.txt": "r\n"})
    spaced = git_repo.commit({"w.txt": "a  b\n"})
    assert git_repo.git("diff", "--name-status", "-M", deleted, renamed).startswith("R100")
    numstat, bytes_ = git_numstat(git_repo.path), git_patch_bytes(git_repo.path)
    assert (only(numstat, deleted), only(bytes_, deleted)) == ((0, 2), (0, 4))
    assert (only(numstat, renamed), only(bytes_, renamed)) == ((1, 1), (2, 2))
    assert (only(numstat, spaced), only(bytes_, spaced)) == ((1, 1), (5, 4))
    assert only(numstat, first) == (4, 0)  # 2 + 1 + 1


def test_empty_repository(git_repo: GitRepo) -> None:
    assert git_commit_count(git_repo.path) == 0
    assert git_merge_count(git_repo.path) == 0
    assert git_branch_count(git_repo.path) == 0
    assert git_numstat(git_repo.path) == {}
    assert git_patch_bytes(git_repo.path) == {}
    assert git_contributors(git_repo.path) == set()
    assert git_line_totals(git_repo.path) == (0, 0)
    assert git_byte_totals(git_repo.path) == (0, 0)


def test_oracle_refuses_a_directory_that_is_not_a_repository(tmp_path: Path) -> None:
    # Must not walk up into an enclosing repository and answer for it.
    with pytest.raises(GitError):
        git_commit_count(tmp_path)


def test_user_configuration_cannot_change_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "attributes").write_text("* binary\n")
    hostile = home / ".gitconfig"
    hostile.write_text(
        "[core]\n\tautocrlf = true\n"
        "[init]\n\tdefaultBranch = trunk\n"
        "[log]\n\tshowRoot = false\n\tmailmap = false\n"
        "[diff]\n\trenames = copies\n\tnoprefix = true\n\tsuppressBlankEmpty = true\n"
        "[commit]\n\tgpgSign = true\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(hostile))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Intruder")
    repo = GitRepo.init(tmp_path / "repo")
    sha = repo.commit({"w.txt": "one\r\ntwo\r\n"}, author=("Zoë", "z@x"))
    assert repo.branches() == ["main"]
    assert repo.run("cat-file", "blob", "HEAD:w.txt") == b"one\r\ntwo\r\n"
    assert git_per_commit(repo.path)[sha].raw_author_name == "Zoë"
    assert git_numstat(repo.path) == {sha: (2, 0)}
    assert git_patch_bytes(repo.path) == {sha: (10, 0)}


def test_per_file_oracles_name_each_path_as_git_stores_it(git_repo: GitRepo) -> None:
    odd = 'sp ace/é"q\\\t.txt'  # git quotes it in a patch header, C escapes and octal
    raw = odd.encode()
    first = git_repo.commit({odd: "a\nb\n", "t": "hello\n", "bin.dat": b"\x00\x01"})
    empty = git_repo.commit(allow_empty=True)
    git_repo.symlink("t", "bin.dat")  # a type change: a deletion and an addition in a patch
    second = git_repo.commit({odd: "a\n"})
    assert git_numstat_by_file(git_repo.path) == {
        first: {raw: (2, 0), b"t": (1, 0), b"bin.dat": None},
        empty: {},
        second: {raw: (0, 1), b"t": (1, 1)},
    }
    assert git_patch_stats_by_file(git_repo.path) == {
        first: {
            raw: PatchStats(2, 0, 4, 0),
            b"t": PatchStats(1, 0, 6, 0),
            b"bin.dat": PatchStats(),
        },
        empty: {},
        # t: +"bin.dat" without "\n" (7), -"hello\n" (6).
        second: {raw: PatchStats(0, 1, 0, 2), b"t": PatchStats(1, 1, 7, 6)},
    }


# -- the patch parser on crafted input ----------------------------------------------


def test_parser_counts_by_hunk_header_not_by_prefix() -> None:
    patch = (
        b"\x00" + SHA.encode() + b"\n\n"
        b"diff --git a/f b/f\n--- a/f\n+++ b/f\n"
        b"@@ -1,3 +1,3 @@\n"
        b" ctx\n"
        b"---- a/f\n"  # removed line "--- a/f"
        b"-diff --git a/x b/x\n"
        b"++++ b/f\n"  # added line "+++ b/f"
        b"+@@ -1 +1 @@\n"
        b"\\ No newline at end of file\n"
        b"\x00" + b"1" * 40 + b"\n"
    )
    stats = parse_log_patch(patch)
    assert stats[SHA] == PatchStats(
        added_lines=2, removed_lines=2, added_bytes=19, removed_bytes=27
    )
    assert stats["1" * 40] == PatchStats()


def test_parser_missing_count_means_one_and_blank_context() -> None:
    patch = b"\x00" + SHA.encode() + b"\n@@ -1 +1,2 @@\n\n+x\n"  # "" = blank context line
    assert parse_log_patch(patch)[SHA] == PatchStats(added_lines=1, added_bytes=2)


@pytest.mark.parametrize(
    "patch",
    [
        b"\x00" + SHA.encode() + b"\n@@ -1,2 +1,2 @@\n-a\n+b\n",  # ends inside the hunk
        b"\x00" + SHA.encode() + b"\n@@ -1 +1 @@\n+a\n+b\n",  # more new lines than declared
        b"\x00" + SHA.encode() + b"\nsomething else\n",  # unknown header line
        b"@@ -0,0 +1 @@\n+a\n",  # hunk before any commit
    ],
)
def test_parser_rejects_malformed_input(patch: bytes) -> None:
    with pytest.raises(ValueError):
        parse_log_patch(patch)


# -- the edge-case repository ---------------------------------------------------------

EXPECTED_BRANCHES = {
    "main",
    "feature/i18n-données",
    "topic/a",
    "topic/b",
    "topic/c",
    "import/legacy",
    "wip/unmerged",
    "gh-pages",
    "rewritten",
}
MERGED = {"feature/i18n-données", "topic/a", "topic/b", "topic/c", "import/legacy"}
EXPECTED_CONTRIBUTORS = {
    "alice@example.org",
    "zoe@example.com",
    "jose@example.com",
    "bob@example.com",
    "olga@legacy.example",
}
OFFSETS = {timedelta(hours=h, minutes=m) for h, m in ((5, 30), (-8, 0), (0, 0), (13, 45))}
OFFSETS.add(-timedelta(hours=3, minutes=30))


@dataclass
class EdgeOracles:
    numstat: dict[str, tuple[int, int]]
    patch: dict[str, PatchStats]
    facts: dict[str, CommitFacts]


@pytest.fixture(scope="module")
def edge(edge_repo: GitRepo) -> EdgeOracles:
    """Oracle results on the edge repository, computed once for this module."""
    return EdgeOracles(
        git_numstat(edge_repo.path), git_patch_stats(edge_repo.path), git_per_commit(edge_repo.path)
    )


def log_lines(repo: GitRepo, *args: str) -> list[str]:
    return repo.git("log", "--branches", "--no-renames", "--format=", *args).splitlines()


def test_edge_branches_and_clean_main(edge_repo: GitRepo) -> None:
    assert set(edge_repo.branches()) == EXPECTED_BRANCHES
    assert edge_repo.current_branch() == "main"
    assert edge_repo.is_clean()
    merged = set(edge_repo.git("branch", "--merged", "main", "--format=%(refname:short)").split())
    assert merged == MERGED | {"main"}
    # Commits by hand: main 8 + i18n 3 + octopus 4 + legacy 3 + submodule 2 + big 2 + mailmap
    # 1 = 23; wip/unmerged 3; gh-pages 2; rewritten 2. Merges: i18n, octopus, legacy, back.
    assert git_commit_count(edge_repo.path) == 30
    assert git_merge_count(edge_repo.path) == 4
    assert git_branch_count(edge_repo.path) == len(EXPECTED_BRANCHES)


def test_edge_shape_of_history(edge_repo: GitRepo, edge: EdgeOracles) -> None:
    parents = {sha: f.parents for sha, f in edge.facts.items()}
    assert max(len(p) for p in parents.values()) >= 3
    roots = [sha for sha, p in parents.items() if not p]
    assert len(roots) >= 3
    unmerged_roots = []
    for root in roots:
        try:
            edge_repo.run("merge-base", "--is-ancestor", root, "main")
        except GitError:
            unmerged_roots.append(root)
    assert unmerged_roots == [edge_repo.git("rev-list", "--max-parents=0", "gh-pages")]
    trees: dict[str, str] = {}
    for line in edge_repo.git("log", "--branches", "--format=%H %T").splitlines():
        commit, tree = line.split()
        trees[commit] = tree
    empty = [s for s, p in parents.items() if len(p) == 1 and trees[s] == trees[p[0]]]
    assert len(empty) >= 2


def test_edge_unreachable_commits_are_outside_the_commit_set(
    edge_repo: GitRepo, edge: EdgeOracles
) -> None:
    out = edge_repo.git("fsck", "--unreachable", "--no-reflogs", "--no-progress")
    unreachable = {line.split()[2] for line in out.splitlines() if line.split()[1] == "commit"}
    assert len(unreachable) >= 2  # the deleted branch's tip and the force-moved one
    assert not unreachable & set(edge.numstat)
    assert not unreachable & set(edge.facts)


def test_edge_paths_links_and_submodule(edge_repo: GitRepo) -> None:
    entries = edge_repo.run("ls-tree", "-r", "-z", "main").split(b"\x00")[:-1]
    tree = {e.split(b"\t", 1)[1]: e.split(b" ", 2) for e in entries}
    assert b"latin1-\xe9.txt" in tree
    assert "données/naïve.txt".encode() in tree
    assert "日本語.md".encode() in tree
    assert tree[b"vendor/lib"][:2] == [b"160000", b"commit"]
    assert tree[b"link-to-readme"][0] == b"120000"
    assert tree[b"typechange"][0] == b"120000"
    assert tree[b"scripts/run.sh"][0] == b"100755"
    gitlink = log_lines(edge_repo, "--raw", "--", "vendor/lib")
    assert [line.split()[1] + line.split()[-2] for line in gitlink] == ["160000M", "160000A"]
    link = log_lines(edge_repo, "--raw", "--", "link-to-readme")
    assert [line.split()[1] + line.split()[-2] for line in link] == ["120000M", "120000A"]


def test_edge_file_kinds(edge_repo: GitRepo, edge: EdgeOracles) -> None:
    for status in "AMD":
        numstat = log_lines(edge_repo, "--numstat", f"--diff-filter={status}")
        assert any(line.startswith("-\t-\t") for line in numstat), status
    assert [x.split()[-2] for x in log_lines(edge_repo, "--raw", "--", "windows.txt")] == ["M", "A"]
    crlf = edge_repo.run("show", "main:windows.txt")
    assert crlf.count(b"\r\n") == crlf.count(b"\n") >= 2
    none_then_eol = edge_repo.git("log", "--format=%H", "--", "none-then-eol.txt").split()
    assert len(none_then_eol) == 2
    versions = [edge_repo.run("show", f"{sha}:none-then-eol.txt") for sha in none_then_eol]
    assert versions[0].endswith(b"\n") and not versions[1].endswith(b"\n")  # newest first
    eol_then_none = edge_repo.git("log", "--format=%H", "--", "eol-then-none.txt").split()
    assert len(eol_then_none) == 2
    versions = [edge_repo.run("show", f"{sha}:eol-then-none.txt") for sha in eol_then_none]
    assert not versions[0].endswith(b"\n") and versions[1].endswith(b"\n")

    size = int(edge_repo.git("cat-file", "-s", "main:data/big.csv"))
    assert size > BIG_FILE_MIN_BYTES
    big = log_lines(edge_repo, "--numstat", "--", "data/big.csv")
    assert len(big) == 2 and all(int(line.split()[0]) > 0 for line in big)
    assert int(big[-1].split()[0]) > 100_000  # the add: many lines

    mode = log_lines(edge_repo, "--raw", "--", "scripts/run.sh")
    assert any(line.startswith(":100644 100755 ") for line in mode)
    assert "0\t0\tscripts/run.sh" in log_lines(edge_repo, "--numstat", "--", "scripts/run.sh")


def test_edge_tricky_content(edge_repo: GitRepo) -> None:
    shas = edge_repo.git("log", "--branches", "--format=%H", "--", "tricky.diff").split()
    lines = {
        line for sha in shas for line in edge_repo.run("show", f"{sha}:tricky.diff").split(b"\n")
    }
    for prefix in (b"++", b"--", b"+++ ", b"--- ", b"diff --git ", b"@@ "):
        assert any(line.startswith(prefix) for line in lines), prefix
    assert b"\\ No newline at end of file" in lines
    assert b"\r" in lines
    assert b"\x00" in edge_repo.run("show", "main:late-nul.txt")[8000:]
    # Rename: a delete plus an add without rename detection, a rename with it.
    added = edge_repo.git("log", "--format=%H", "--diff-filter=A", "--", "docs/new-name.txt")
    renames = edge_repo.git("show", "--format=", "--name-status", "-M", added).splitlines()
    assert "R100\told-name.txt\tdocs/new-name.txt" in renames
    no_renames = edge_repo.git("show", "--format=", "--name-status", "--no-renames", added)
    assert {"A\tdocs/new-name.txt", "D\told-name.txt"} <= set(no_renames.splitlines())
    # Whitespace-only: a change to src/app.py that `diff -w` does not see.
    app = edge_repo.git("log", "--format=%H", "--diff-filter=M", "--", "src/app.py").split()
    assert any(
        edge_repo.git("diff", f"{sha}^", sha, "--", "src/app.py")
        and not edge_repo.git("diff", "-w", f"{sha}^", sha, "--", "src/app.py")
        for sha in app
    )


def test_edge_people_and_dates(edge_repo: GitRepo, edge: EdgeOracles) -> None:
    assert git_contributors(edge_repo.path) == EXPECTED_CONTRIBUTORS
    raw_emails = {f.raw_author_email for f in edge.facts.values()}
    assert {"jose@example.com", "Jose@Example.COM"} <= raw_emails  # differ only by case
    assert {"alice@work.example", "alice@home.example"} <= raw_emails
    assert {"Zoë Ünal", "José"} <= {f.raw_author_name for f in edge.facts.values()}
    bobs = [f for f in edge.facts.values() if f.raw_author_email.lower() == "bob@example.com"]
    assert len({f.raw_author_name for f in bobs}) == 2
    assert {f.author_name for f in bobs} == {"Bob Builder"}
    dates = [f.author_date for f in edge.facts.values()]
    assert {d.utcoffset() for d in dates} >= OFFSETS
    assert len({d.year for d in dates}) >= 4
    assert len({(d.year, d.month) for d in dates}) >= 10
    assert len({d.isocalendar()[:2] for d in dates}) >= 15


def test_edge_oracles_agree_with_each_other(edge_repo: GitRepo, edge: EdgeOracles) -> None:
    assert set(edge.numstat) == set(edge.patch) == set(edge.facts)
    assert len(edge.facts) == git_commit_count(edge_repo.path)
    for sha, (added, deleted) in edge.numstat.items():
        stats = edge.patch[sha]
        assert (stats.added_lines, stats.removed_lines) == (added, deleted), sha
    assert git_line_totals(edge_repo.path) == (
        sum(a for a, _ in edge.numstat.values()),
        sum(d for _, d in edge.numstat.values()),
    )


def test_edge_per_file_oracles_add_up_to_the_per_commit_ones(
    edge_repo: GitRepo, edge: EdgeOracles
) -> None:
    numstat, patch = git_numstat_by_file(edge_repo.path), git_patch_stats_by_file(edge_repo.path)
    assert set(numstat) == set(patch) == set(edge.numstat)
    for sha, files in numstat.items():
        assert set(patch[sha]) == set(files), sha
        for name, lines in files.items():
            stats = patch[sha][name]
            assert (stats.added_lines, stats.removed_lines) == (lines or (0, 0)), (sha, name)
        stats = edge.patch[sha]
        assert sum(s.added_bytes for s in patch[sha].values()) == stats.added_bytes, sha
        assert sum(s.removed_bytes for s in patch[sha].values()) == stats.removed_bytes, sha
        assert sum(lines[0] for lines in files.values() if lines) == edge.numstat[sha][0], sha
    changed = {name for files in numstat.values() for name in files}
    assert {b"latin1-\xe9.txt", "données/naïve.txt".encode(), b"vendor/lib"} <= changed


def _blob_bytes(repo: GitRepo, mode: str, sha: str) -> int:
    """What a whole added or deleted file contributes, by git's rules, from the blob."""
    if mode == "160000":
        return len(f"Subproject commit {sha}\n")
    data = repo.run("cat-file", "blob", sha)
    return 0 if b"\x00" in data[:8000] else len(data)


def test_edge_bytes_of_whole_file_changes_equal_blob_sizes(
    edge_repo: GitRepo, edge: EdgeOracles
) -> None:
    """For commits that only add or delete files, the bytes are the blobs' sizes."""
    checked = 0
    big_add = edge_repo.git("log", "--format=%H", "--diff-filter=A", "--", "data/big.csv")
    for sha, fact in edge.facts.items():
        base = [fact.parents[0]] if fact.parents else ["--root"]
        raw = edge_repo.run("diff-tree", "-r", "-z", "--no-renames", *base, sha)
        fields = raw.split(b"\x00")
        if not fact.parents:
            fields = fields[1:]  # --root prints the commit id first
        changes = [fields[i].decode().lstrip(":").split() for i in range(0, len(fields) - 1, 2)]
        if not changes or any(c[4] not in ("A", "D") for c in changes):
            continue
        added = sum(_blob_bytes(edge_repo, c[1], c[3]) for c in changes if c[4] == "A")
        removed = sum(_blob_bytes(edge_repo, c[0], c[2]) for c in changes if c[4] == "D")
        stats = edge.patch[sha]
        assert (stats.added_bytes, stats.removed_bytes) == (added, removed), sha
        checked += 1
        if sha == big_add:
            assert added > BIG_FILE_MIN_BYTES
    assert checked >= 10
    assert big_add in edge.patch


def test_edge_bare_clone_gives_the_same_answers(
    edge_repo: GitRepo, edge: EdgeOracles, tmp_path: Path
) -> None:
    bare = edge_repo.clone_bare(tmp_path / "edge.git")
    assert git_numstat(bare) == edge.numstat
    assert git_patch_stats(bare) == edge.patch
    assert git_per_commit(bare) == edge.facts
    assert git_contributors(bare) == git_contributors(edge_repo.path)
    assert git_commit_count(bare) == git_commit_count(edge_repo.path)
    assert git_merge_count(bare) == git_merge_count(edge_repo.path)
    assert git_branch_count(bare) == git_branch_count(edge_repo.path)
    assert git_byte_totals(bare) == git_byte_totals(edge_repo.path)
