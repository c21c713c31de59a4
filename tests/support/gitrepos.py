"""Real git repositories built by the tests, and git itself as the oracle.

`GitRepo` drives the git CLI in an isolated, deterministic environment, so neither the
user's nor the system's git configuration can change a result. `build_edge_case_repo`
builds one repository holding every awkward case we know of. The `git_*` functions are
the oracles: each number comes from git's own output over the commit set "every commit
reachable from a branch (refs/heads/*)", diffed against its first parent, renames off.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

StrPath = str | os.PathLike[str]
RepoPath = str | bytes
Author = tuple[str, str]
Content = bytes | str | None

COMMITTER: Author = ("Test Committer", "committer@example.com")
DEFAULT_AUTHOR: Author = ("Alice", "alice@example.com")
DEFAULT_DATE = "2024-01-01T12:00:00+00:00"

# Passed through GIT_CONFIG_COUNT/KEY/VALUE: it outranks every config file and, unlike
# `-c`, reaches the git processes that git itself spawns (the clone in `submodule add`).
_CONFIG: tuple[tuple[str, str], ...] = (
    ("init.defaultBranch", "main"),
    ("user.name", COMMITTER[0]),
    ("user.email", COMMITTER[1]),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("log.showSignature", "false"),
    ("core.autocrlf", "false"),
    ("core.safecrlf", "false"),
    ("core.fileMode", "true"),
    ("core.symlinks", "true"),
    # GIT_CONFIG_GLOBAL does not cover these two: they default to files under
    # $XDG_CONFIG_HOME, and a global attributes file could mark text as binary.
    ("core.excludesFile", "/dev/null"),
    ("core.attributesFile", "/dev/null"),
    ("core.hooksPath", "/dev/null"),
    ("core.pager", "cat"),
    ("color.ui", "false"),
    # Local-path submodules are refused by default since git 2.38.1 (CVE-2022-39253).
    ("protocol.file.allow", "always"),
    # No background gc/maintenance process racing with the tests.
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("advice.detachedHead", "false"),
)

_home: str | None = None


def _isolated_home() -> str:
    """An empty HOME shared by every git call of this process, removed at exit."""
    global _home
    if _home is None:
        _home = tempfile.mkdtemp(prefix="gitstats-git-home-")
        atexit.register(shutil.rmtree, _home, True)
    return _home


def git_env(
    repo: StrPath | None = None, extra: Mapping[str, str | bytes] | None = None
) -> dict[str, str | bytes]:
    """The environment for every git call: no inherited GIT_*, no user or system config."""
    env: dict[str, str | bytes] = {
        k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "LANGUAGE"
    }
    home = _isolated_home()
    env.update(
        HOME=home,
        XDG_CONFIG_HOME=os.path.join(home, ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_SYSTEM="/dev/null",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        LC_ALL="C",
        TZ="UTC",
        GIT_CONFIG_COUNT=str(len(_CONFIG)),
    )
    for i, (key, value) in enumerate(_CONFIG):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    if repo is not None:
        # If `repo` is not a repository, git must fail instead of walking up and
        # silently answering for an enclosing repository (such as this checkout).
        env["GIT_CEILING_DIRECTORIES"] = str(Path(repo).resolve().parent)
    if extra:
        env.update(extra)
    return env


class GitError(RuntimeError):
    """A git command failed; the message carries its arguments and stderr."""

    def __init__(self, args: list[str | bytes], returncode: int, stderr: bytes) -> None:
        shown = " ".join(os.fsdecode(a) for a in args)
        text = stderr.decode("utf-8", "replace").strip()
        super().__init__(f"git {shown} exited {returncode}: {text}")
        self.returncode = returncode
        self.stderr = stderr


def _run_git(
    cwd: StrPath,
    args: tuple[str | bytes, ...] | list[str | bytes],
    *,
    input: bytes | None = None,
    env: Mapping[str, str | bytes] | None = None,
) -> bytes:
    argv: list[str | bytes] = ["git", *args]
    proc = subprocess.run(
        argv,
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        env=git_env(cwd, env),
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(list(args), proc.returncode, proc.stderr)
    return proc.stdout


def git_date(date: str | datetime) -> str:
    """An aware ISO 8601 date as git's unambiguous raw form `@<epoch> +hhmm`; a date already in
    that form (one Python cannot represent, such as the year 10000) as it is."""
    if isinstance(date, str) and date.startswith("@"):
        return date
    dt = datetime.fromisoformat(date) if isinstance(date, str) else date
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError(f"date must carry a UTC offset: {date!r}")
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"@{int(dt.timestamp())} {sign}{hours:02d}{mins:02d}"


def _ident_env(author: Author, date: str | datetime) -> dict[str, str | bytes]:
    raw = git_date(date)
    return {
        "GIT_AUTHOR_NAME": author[0].encode(),
        "GIT_AUTHOR_EMAIL": author[1].encode(),
        "GIT_AUTHOR_DATE": raw,
        "GIT_COMMITTER_NAME": COMMITTER[0],
        "GIT_COMMITTER_EMAIL": COMMITTER[1],
        "GIT_COMMITTER_DATE": raw,
    }


class GitRepo:
    """A non-bare repository at `path`, driven through the git CLI."""

    def __init__(self, path: StrPath) -> None:
        self.path = Path(path).resolve()

    def __repr__(self) -> str:
        return f"GitRepo({str(self.path)!r})"

    @classmethod
    def init(cls, path: StrPath) -> GitRepo:
        """Create an empty repository (branch `main`, no template hooks) at `path`."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        _run_git(p, ["init", "-q", "--template=", "."])
        return cls(p)

    # -- plumbing ---------------------------------------------------------------------

    def run(
        self,
        *args: str | bytes,
        input: bytes | None = None,
        env: Mapping[str, str | bytes] | None = None,
    ) -> bytes:
        """Run git in the work tree and return stdout; raise GitError with stderr."""
        return _run_git(self.path, args, input=input, env=env)

    def git(self, *args: str | bytes) -> str:
        """Run git and return stdout decoded (non-UTF-8 bytes kept as surrogates), stripped."""
        return self.run(*args).decode("utf-8", "surrogateescape").strip()

    def _abs(self, path: RepoPath) -> bytes:
        return os.path.join(os.fsencode(self.path), os.fsencode(path))

    # -- working tree -----------------------------------------------------------------

    def write(self, path: RepoPath, content: Content) -> None:
        """Write `content` exactly (str as UTF-8) at `path`; None deletes it."""
        target = self._abs(path)
        if content is None:
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            else:
                os.unlink(target)
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(target):
            # open() would follow the link and write into its target.
            os.unlink(target)
        data = content.encode("utf-8") if isinstance(content, str) else content
        with open(target, "wb") as f:
            f.write(data)

    def symlink(self, path: RepoPath, target: RepoPath) -> None:
        """Create or retarget a symlink in the work tree; the next commit() records it."""
        link = self._abs(path)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.fsencode(target), link)

    def chmod(self, path: RepoPath, executable: bool = True) -> None:
        """Set or clear the executable bits; the next commit() records the mode change."""
        p = self._abs(path)
        mode = os.stat(p).st_mode
        os.chmod(p, mode | 0o111 if executable else mode & ~0o111)

    # -- history ----------------------------------------------------------------------

    def commit(
        self,
        files: Mapping[RepoPath, Content] | None = None,
        message: str = "commit",
        author: Author = DEFAULT_AUTHOR,
        date: str | datetime = DEFAULT_DATE,
        allow_empty: bool = False,
    ) -> str:
        """Write `files`, stage everything (`add -A`) and commit; return the new sha."""
        for path, content in (files or {}).items():
            self.write(path, content)
        self.run("add", "-A")
        args = ["commit", "-q", "--no-verify", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        self.run(*args, env=_ident_env(author, date))
        return self.head()

    def write_commit(
        self,
        parent: str | None,
        message: bytes = b"message\n",
        author: bytes = b"A <a@example.com> 1700000000 +0000",
        headers: bytes = b"",
    ) -> str:
        """Write a commit object of exactly these bytes on the index's tree (identities, dates,
        headers and messages git's porcelain would refuse or rewrite) and return its sha; no ref
        moves."""
        tree = self.git("write-tree")
        body = (
            f"tree {tree}\n".encode()
            + (f"parent {parent}\n".encode() if parent else b"")
            + b"author "
            + author
            + b"\ncommitter C <c@example.com> 1700000000 +0000\n"
            + headers
            + b"\n"
            + message
        )
        return self.run("hash-object", "-t", "commit", "-w", "--stdin", input=body).decode().strip()

    def merge(
        self,
        *branches: str,
        message: str = "merge",
        author: Author = DEFAULT_AUTHOR,
        date: str | datetime = DEFAULT_DATE,
        allow_unrelated: bool = False,
    ) -> str:
        """Merge into the current branch, always with a merge commit; several = octopus."""
        if not branches:
            raise ValueError("merge() needs at least one branch")
        args = ["merge", "-q", "--no-ff", "--no-edit", "--no-stat", "-m", message]
        if allow_unrelated:
            args.append("--allow-unrelated-histories")
        self.run(*args, "--", *branches, env=_ident_env(author, date))
        return self.head()

    def branch(self, name: str, start: str = "HEAD") -> None:
        self.run("branch", "--no-track", name, start)

    def checkout(self, name: str) -> None:
        # --recurse-submodules re-populates a submodule that an orphan branch removed.
        self.run("checkout", "-q", "--recurse-submodules", name)

    def orphan(self, name: str) -> None:
        """Start branch `name` with no parent and an empty index and work tree."""
        self.run("checkout", "-q", "--orphan", name)
        self.run("read-tree", "--empty")
        # -ff: also remove nested repositories (submodule work trees).
        self.run("clean", "-ffdxq")

    def delete_branch(self, name: str) -> None:
        self.run("branch", "-q", "-D", name)

    def reset_branch(self, name: str, sha: str) -> None:
        """Force-move branch `name` to `sha`, as a force-push would."""
        if self.current_branch() == name:
            self.run("reset", "-q", "--hard", sha)
        else:
            self.run("update-ref", f"refs/heads/{name}", sha)

    def current_branch(self) -> str | None:
        try:
            return self.git("symbolic-ref", "--short", "-q", "HEAD") or None
        except GitError:
            return None

    def head(self, ref: str = "HEAD") -> str:
        """The commit sha `ref` points to."""
        return self.git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}")

    def branches(self) -> list[str]:
        """Local branch names, sorted."""
        out = self.git("for-each-ref", "--format=%(refname)", "refs/heads/")
        return sorted(line.removeprefix("refs/heads/") for line in out.splitlines())

    def is_clean(self) -> bool:
        return self.run("status", "--porcelain", "--ignored").strip() == b""

    def refs(self) -> dict[str, str]:
        """Every ref (and HEAD's symbolic target) → sha, to detect changes."""
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)")
        refs = dict(line.split(" ", 1) for line in out.splitlines())
        refs["HEAD"] = self.git("symbolic-ref", "-q", "HEAD")
        return refs

    def add_submodule(
        self,
        path: str,
        source_repo: GitRepo,
        message: str = "Add submodule",
        author: Author = DEFAULT_AUTHOR,
        date: str | datetime = DEFAULT_DATE,
    ) -> str:
        """Add `source_repo` (at its HEAD) as a real submodule at `path` and commit."""
        url = os.path.relpath(source_repo.path, self.path)
        # A relative URL keeps .gitmodules (and so every sha) identical across runs; git
        # resolves it against the superproject's own directory when it has no remote.
        url = url if url.startswith("../") else f"./{url}"
        self.run("submodule", "add", "-q", url, path)
        return self.commit(message=message, author=author, date=date)

    def update_submodule(
        self,
        path: str,
        sha: str,
        message: str = "Update submodule",
        author: Author = DEFAULT_AUTHOR,
        date: str | datetime = DEFAULT_DATE,
    ) -> str:
        """Move submodule `path` to commit `sha` (fetched from its source) and commit."""
        self.run("-C", path, "fetch", "-q", "origin")
        self.run("-C", path, "checkout", "-q", sha)
        return self.commit(message=message, author=author, date=date)

    def clone_bare(self, dest: StrPath) -> Path:
        """A bare clone (all branches, as refs/heads/*) at `dest`."""
        _run_git(Path(dest).parent, ["clone", "-q", "--bare", str(self.path), str(dest)])
        return Path(dest)


# -- the edge-case repository ---------------------------------------------------------

ALICE_WORK: Author = ("Alice Liddell", "alice@work.example")
ALICE_HOME: Author = ("alice", "alice@home.example")
ZOE: Author = ("Zoë Ünal", "zoe@example.com")
JOSE: Author = ("José", "jose@example.com")
JOSE_UPPER: Author = ("José", "Jose@Example.COM")  # same address, different case
BOB: Author = ("bob", "bob@example.com")
BOB_UPPER: Author = ("Bob B.", "BOB@example.com")
OLGA: Author = ("Olga Legacy", "olga@legacy.example")

EDGE_MAILMAP = (
    "# Two addresses of one person -> one canonical identity.\n"
    "Alice Liddell <alice@example.org> <alice@work.example>\n"
    "Alice Liddell <alice@example.org> alice <alice@home.example>\n"
    "# Name only: fixes the name, keeps the address (matched case-insensitively).\n"
    "Bob Builder <bob@example.com>\n"
)

TRICKY_LINES = (
    "++x\n"
    "--y\n"
    "+++ b/fake\n"
    "--- a/fake\n"
    "diff --git a/fake b/fake\n"
    "@@ -1,2 +1,2 @@\n"
    "\\ No newline at end of file\n"
    "\r\n"  # a line holding a lone CR
    "a\rb\n"  # a CR inside a line: git splits lines on LF only
    "-\n"
    "+\n"
    " \n"
)

BIG_FILE_MIN_BYTES = 10 * 1024 * 1024


def _big_file(rows: int) -> str:
    return "".join(f"{i:07d},row {i},{'x' * (i % 61)}\n" for i in range(rows))


def build_edge_case_repo(path: StrPath, submodule_source: StrPath | None = None) -> GitRepo:
    """Build one repository holding every edge case; `main` is checked out and clean.

    The submodule's source repository goes to `submodule_source` (default: a sibling
    directory named `<path>-submodule-source`). Branches left at the end:
    main, feature/i18n-données, topic/a, topic/b, topic/c, import/legacy (merged);
    wip/unmerged, gh-pages (own root), rewritten (unmerged). Two more commits exist
    in the object database but are reachable from no branch (deleted or force-moved).
    """
    repo = GitRepo.init(path)
    src_path = submodule_source or Path(repo.path).with_name(repo.path.name + "-submodule-source")
    sub = GitRepo.init(src_path)
    sub_v1 = sub.commit({"lib.txt": "v1\n"}, "lib v1", OLGA, "2018-01-01T00:00:00+00:00")
    sub_v2 = sub.commit({"lib.txt": "v2\n"}, "lib v2", OLGA, "2018-02-01T00:00:00+00:00")
    sub.reset_branch("main", sub_v1)  # the submodule is added at v1, then moved to v2

    # Root 1: main.
    repo.commit(
        {
            "README.md": "# Edge case repository\n\nBuilt by tests/support/gitrepos.py.\n",
            "src/app.py": "def main():\n    return 42\n",
            "scripts/run.sh": "#!/bin/sh\necho run\n",
            "eol-then-none.txt": "alpha\nbeta\n",
            "none-then-eol.txt": "first",
            "to-delete.txt": "delete me\nplease\n",
            "old-name.txt": "renamed content\n",
            "typechange": "a regular file, later a symlink\n",
        },
        "Initial import",
        ALICE_WORK,
        "2019-03-04T09:15:00+05:30",
    )
    repo.commit(
        {
            "assets/logo.bin": bytes(range(256)) * 4,
            "windows.txt": "line one\r\nline two\r\n",
            "tricky.diff": TRICKY_LINES,
            # Text for git: its only NUL lies past the 8000 bytes git sniffs for binary.
            "late-nul.txt": b"x" * 9000 + b"\n" + b"\x00 after the sniff window\n",
        },
        "Binary, CRLF and lines that look like patch headers",
        ZOE,
        "2019-03-11T17:40:00-08:00",
    )
    repo.commit(
        {
            "assets/logo.bin": bytes(range(256)) * 4 + b"\x00more",
            "windows.txt": "line one\r\nline 2\r\nline three\r\n",
            "none-then-eol.txt": "first\nsecond\n",
            "eol-then-none.txt": "alpha\nbeta",
            "tricky.diff": TRICKY_LINES.replace("--- a/fake\n", "---- gone\n+++ added\n"),
        },
        "Modify binary, CRLF and final newlines",
        JOSE,
        "2019-04-02T08:00:00+00:00",
    )
    repo.commit(None, "An empty commit", BOB, "2020-01-15T06:30:00+13:45", allow_empty=True)
    repo.chmod("scripts/run.sh")
    repo.commit(None, "chmod +x only", JOSE_UPPER, "2020-02-29T23:59:59-03:30")
    repo.symlink("link-to-readme", "README.md")
    repo.symlink("typechange", "README.md")  # regular file -> symlink
    repo.commit(
        {"src/app.py": "def main():\n\treturn 42 \n"},
        "Symlinks and a whitespace-only change",
        ALICE_HOME,
        "2020-06-01T12:00:00+05:30",
    )
    repo.symlink("link-to-readme", "src/app.py")
    repo.commit(
        {
            "old-name.txt": None,
            "docs/new-name.txt": "renamed content\n",
            "to-delete.txt": None,
            "assets/logo.bin": None,
        },
        "Retarget symlink, rename, delete text and binary",
        ZOE,
        "2020-06-08T10:00:00-08:00",
    )
    repo.branch("wip/unmerged")
    repo.commit(
        {"README.md": "# Edge case repository\n\nBuilt by tests/support/gitrepos.py.\n\n--\n"},
        "Year end",
        BOB_UPPER,
        "2020-12-31T23:30:00+00:00",
    )

    # An unmerged branch that merged main into itself (first parent: the branch).
    repo.checkout("wip/unmerged")
    repo.commit({"wip.txt": "work in progress\n"}, "WIP", BOB, "2021-01-05T09:00:00+13:45")
    repo.merge("main", message="Back-merge main", author=BOB, date="2021-01-06T09:00:00+13:45")
    repo.commit(None, "Empty WIP commit", BOB, "2021-01-07T09:00:00+13:45", allow_empty=True)
    repo.checkout("main")

    repo.branch("feature/i18n-données")
    repo.checkout("feature/i18n-données")
    repo.commit(
        {
            "données/naïve.txt": "café crème\n",
            "日本語.md": "# 日本語\n",
            b"latin1-\xe9.txt": b"caf\xe9 in latin-1\n",
        },
        "Ajout de données non ASCII",
        ZOE,
        "2021-03-14T03:14:15-03:30",
    )
    repo.commit({"日本語.md": "# 日本語\n\nテキスト\n"}, "更新", JOSE, "2021-03-21T12:00:00+05:30")
    repo.checkout("main")
    repo.merge(
        "feature/i18n-données",
        message="Merge i18n",
        author=JOSE_UPPER,
        date="2021-04-01T12:00:00+05:30",
    )

    # Octopus: main plus three topics → a merge commit with four parents.
    for name, author, date in (
        ("a", ALICE_WORK, "2021-05-03T08:00:00-08:00"),
        ("b", ZOE, "2021-05-10T08:00:00+00:00"),
        ("c", ALICE_HOME, "2021-05-17T08:00:00+13:45"),
    ):
        repo.branch(f"topic/{name}", "main")
        repo.checkout(f"topic/{name}")
        repo.commit({f"topics/{name}.txt": f"topic {name}\n"}, f"Topic {name}", author, date)
        repo.checkout("main")
    repo.merge(
        "topic/a",
        "topic/b",
        "topic/c",
        message="Octopus merge",
        author=ALICE_WORK,
        date="2021-06-01T00:00:00-03:30",
    )

    # Root 2: imported history with older dates, merged as unrelated history.
    repo.orphan("import/legacy")
    repo.commit({"legacy/notes.txt": "old\n"}, "Legacy root", OLGA, "2015-07-04T10:00:00-08:00")
    repo.commit({"legacy/notes.txt": "old\nolder\n"}, "Legacy 2", OLGA, "2015-08-01T10:00:00+05:30")
    repo.checkout("main")
    repo.merge(
        "import/legacy",
        message="Merge legacy history",
        author=ALICE_WORK,
        date="2021-09-01T10:00:00+13:45",
        allow_unrelated=True,
    )

    # Root 3: an unrelated branch that is never merged.
    repo.orphan("gh-pages")
    repo.commit({"index.html": "<h1>Pages</h1>\n"}, "Pages root", ZOE, "2022-02-02T02:02:02-03:30")
    repo.commit({"index.html": "<h1>Pages!</h1>\n"}, "Pages 2", ZOE, "2022-02-09T02:02:02+00:00")
    repo.checkout("main")

    repo.add_submodule("vendor/lib", sub, "Add submodule", JOSE, "2022-05-05T05:05:05+05:30")
    sub.reset_branch("main", sub_v2)
    repo.update_submodule("vendor/lib", sub_v2, "Bump submodule", ZOE, "2022-08-08T08:08:08-08:00")

    repo.commit({"data/big.csv": _big_file(230_000)}, "Big file", BOB, "2023-01-09T00:00:00+00:00")
    big = _big_file(231_000).replace("0100000,row 100000,", "0100000,ROW 100000,")
    repo.commit({"data/big.csv": big}, "Modify big file", BOB, "2023-03-20T18:00:00+13:45")

    # A force-pushed branch: its first tip becomes unreachable.
    repo.branch("rewritten")
    repo.checkout("rewritten")
    kept = repo.commit({"rw.txt": "1\n"}, "Kept", ZOE, "2023-06-05T10:00:00-03:30")
    repo.commit({"rw.txt": "1\n2\n"}, "Dropped", ZOE, "2023-06-06T10:00:00-03:30")
    repo.reset_branch("rewritten", kept)
    repo.commit({"rw.txt": "1\ntwo\n"}, "Rewritten", ZOE, "2023-06-07T10:00:00-03:30")
    repo.checkout("main")

    # A deleted branch: its commit becomes unreachable.
    repo.branch("tmp/deleted")
    repo.checkout("tmp/deleted")
    repo.commit({"gone.txt": "gone\n"}, "Gone", BOB, "2023-07-01T10:00:00+00:00")
    repo.checkout("main")
    repo.delete_branch("tmp/deleted")

    repo.commit({".mailmap": EDGE_MAILMAP}, "Add .mailmap", ALICE_WORK, "2024-02-29T12:00:00-03:30")
    if repo.current_branch() != "main" or not repo.is_clean():
        raise AssertionError("edge-case repository must end on a clean main")
    return repo


# -- oracles ----------------------------------------------------------------------------


def _git(path: StrPath, *args: str) -> bytes:
    return _run_git(path, args)


def git_commit_count(path: StrPath) -> int:
    """Commits reachable from any branch."""
    return int(_git(path, "rev-list", "--count", "--branches"))


def git_merge_count(path: StrPath) -> int:
    """Commits with two or more parents reachable from any branch."""
    return int(_git(path, "rev-list", "--count", "--merges", "--branches"))


def git_branch_count(path: StrPath) -> int:
    return len(_git(path, "for-each-ref", "--format=%(refname)", "refs/heads/").splitlines())


# Shared by both diff oracles: every commit once, merges diffed against their first
# parent, root commits against the empty tree, and nothing a config or attribute driver
# could rewrite (external diff, textconv) or regroup (rename detection).
_LOG_DIFF_ARGS = (
    "log",
    "--branches",
    "--diff-merges=first-parent",
    "--no-renames",
    "--root",
    "--no-ext-diff",
    "--no-textconv",
    "--submodule=short",
    "--format=%x00%H",
)


def git_numstat(path: StrPath) -> dict[str, tuple[int, int]]:
    """Per commit sha: (added lines, deleted lines) from `git log --numstat`; binary is 0."""
    out = _git(path, *_LOG_DIFF_ARGS, "--numstat")
    stats: dict[str, list[int]] = {}
    current: list[int] | None = None
    for line in out.split(b"\n"):
        if not line:
            continue
        if line.startswith(b"\x00"):
            current = stats.setdefault(line[1:].decode("ascii"), [0, 0])
            continue
        if current is None:
            raise ValueError(f"numstat line before any commit: {line!r}")
        added, deleted, _path = line.split(b"\t", 2)
        if added != b"-":  # "-\t-" is a binary file
            current[0] += int(added)
            current[1] += int(deleted)
    return {sha: (a, d) for sha, (a, d) in stats.items()}


def git_numstat_by_file(path: StrPath) -> dict[str, dict[bytes, tuple[int, int] | None]]:
    """Per commit sha, per path changed (raw bytes): (added lines, deleted lines) from
    `git log --numstat -z`, None for a binary file; a commit that changes nothing maps to {}."""
    out = _git(path, *_LOG_DIFF_ARGS, "--numstat", "-z")
    commits: dict[str, dict[bytes, tuple[int, int] | None]] = {}
    files: dict[bytes, tuple[int, int] | None] | None = None
    # Each commit is "\0<sha>\0", then (after a "\n") one "added\tdeleted\tpath\0" per file:
    # split on NUL, an empty field comes before each sha and nowhere else but at the end.
    fields = iter(out.split(b"\x00"))
    for field in fields:
        if not field:
            sha = next(fields, None)
            files = None if sha is None else commits.setdefault(sha.decode("ascii"), {})
            continue
        if files is None:
            raise ValueError(f"numstat line before any commit: {field!r}")
        added, deleted, name = field.removeprefix(b"\n").split(b"\t", 2)
        if name in files:
            raise ValueError(f"path twice in one commit: {name!r}")
        files[name] = None if added == b"-" else (int(added), int(deleted))
    return commits


def git_line_totals(path: StrPath) -> tuple[int, int]:
    """(added lines, deleted lines) summed over the whole commit set."""
    per_commit = git_numstat(path).values()
    return sum(a for a, _ in per_commit), sum(d for _, d in per_commit)


@dataclass
class PatchStats:
    """What one commit's patch adds and removes, parsed from `git log -p`."""

    added_lines: int = 0
    removed_lines: int = 0
    added_bytes: int = 0
    removed_bytes: int = 0


_HUNK = re.compile(rb"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
# Every line git may print between the commit header and the first hunk of a file.
_FILE_HEADERS = (
    b"diff --git ",
    b"index ",
    b"--- ",
    b"+++ ",
    b"old mode ",
    b"new mode ",
    b"deleted file mode ",
    b"new file mode ",
    b"Binary files ",
    b"similarity index ",
    b"dissimilarity index ",
    b"rename from ",
    b"rename to ",
    b"copy from ",
    b"copy to ",
)


def _c_unquote(quoted: bytes) -> bytes:
    """A path as git quotes it (core.quotePath): `"..."` with C escapes and octal bytes."""
    escapes = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13}
    escapes |= {b'"': 34, b"\\": 92}
    out = bytearray()
    i = 1
    while quoted[i : i + 1] != b'"':
        if quoted[i : i + 1] != b"\\":
            out.append(quoted[i])
            i += 1
        elif (code := quoted[i + 1 : i + 2]) in escapes:
            out.append(escapes[code])
            i += 2
        else:
            out.append(int(quoted[i + 1 : i + 4], 8))
            i += 4
    return bytes(out)


def _diff_header_path(line: bytes) -> bytes:
    """The path P of a `diff --git a/P b/P` header (renames off: both sides name P)."""
    sides = line.removeprefix(b"diff --git ")
    if sides.startswith(b'"'):
        return _c_unquote(sides).removeprefix(b"a/")
    return sides[2 : 2 + (len(sides) - 5) // 2]


def _hunk_counts(header: bytes) -> tuple[int, int]:
    """(old, new) line counts of a hunk header; a missing count means 1."""
    match = _HUNK.match(header)
    assert match is not None
    old_count, new_count = match.groups()
    return (1 if old_count is None else int(old_count)), (
        1 if new_count is None else int(new_count)
    )


def parse_log_patch_by_file(data: bytes) -> dict[str, dict[bytes | None, PatchStats]]:
    """Parse `git log -p --format=%x00%H` output, raw bytes, into per-commit, per-path stats.

    A line's bytes are its content plus its terminator ("\\n", so a CRLF line counts
    its "\\r\\n"), without the +/- marker; a following "\\ No newline at end of file"
    takes the terminator back. Hunks are consumed by the counts in their header, so a
    content line that looks like a header (or holds a NUL) is never read as one. A path is
    the one its `diff --git` header names; a type change, which git prints as a deletion and
    an addition, sums under its one path as --numstat counts it. Hunks before any such
    header (git prints none) count under the path None.
    """
    commits: dict[str, dict[bytes | None, PatchStats]] = {}
    files: dict[bytes | None, PatchStats] | None = None
    current: PatchStats | None = None
    old_left = new_left = 0
    last: bytes | None = None  # marker of the last content line: b"+", b"-" or b" "
    lines = data.split(b"\n")  # not splitlines(): a lone "\r" is content
    if lines[-1] == b"":
        # git ends every line with "\n"; the empty tail is not a (blank context) line.
        lines.pop()
    for line in lines:
        if line.startswith(b"\\"):
            # "\ No newline at end of file": the previous content line has no "\n".
            if current is None or last is None:
                raise ValueError(f"no-newline marker without a line: {line!r}")
            if last == b"+":
                current.added_bytes -= 1
            elif last == b"-":
                current.removed_bytes -= 1
            last = None
            continue
        if old_left or new_left:
            assert current is not None  # set by the hunk's header
            tag = line[:1]
            if tag == b"+" and new_left:
                current.added_lines += 1
                current.added_bytes += len(line)  # -1 for the marker, +1 for "\n"
                new_left -= 1
            elif tag == b"-" and old_left:
                current.removed_lines += 1
                current.removed_bytes += len(line)
                old_left -= 1
            elif tag in (b" ", b"") and old_left and new_left:
                # "" is a blank context line under diff.suppressBlankEmpty.
                old_left -= 1
                new_left -= 1
            else:
                raise ValueError(f"unexpected line inside a hunk: {line[:80]!r}")
            last = tag or b" "
            continue
        last = None
        if line.startswith(b"\x00"):
            files = commits.setdefault(line[1:].decode("ascii"), {})
            current = None
        elif line.startswith(b"diff --git ") or _HUNK.match(line):
            if files is None:
                raise ValueError(f"patch before any commit: {line[:80]!r}")
            if line.startswith(b"diff --git "):
                current = files.setdefault(_diff_header_path(line), PatchStats())
            else:
                if current is None:
                    current = files.setdefault(None, PatchStats())
                old_left, new_left = _hunk_counts(line)
        elif line and not line.startswith(_FILE_HEADERS):
            raise ValueError(f"unexpected line outside a hunk: {line[:80]!r}")
    if old_left or new_left:
        raise ValueError("patch ends inside a hunk")
    return commits


def parse_log_patch(data: bytes) -> dict[str, PatchStats]:
    """Per-commit stats of `git log -p --format=%x00%H` output (see parse_log_patch_by_file)."""
    return {
        sha: PatchStats(
            sum(s.added_lines for s in files.values()),
            sum(s.removed_lines for s in files.values()),
            sum(s.added_bytes for s in files.values()),
            sum(s.removed_bytes for s in files.values()),
        )
        for sha, files in parse_log_patch_by_file(data).items()
    }


def git_patch_stats(path: StrPath) -> dict[str, PatchStats]:
    """Per commit sha: lines and bytes added and removed, from `git log -p`."""
    return parse_log_patch(_git(path, *_LOG_DIFF_ARGS, "-p", "--no-color"))


def git_patch_stats_by_file(path: StrPath) -> dict[str, dict[bytes | None, PatchStats]]:
    """Per commit sha, per path changed: lines and bytes added and removed, from `git log -p`."""
    # Prefixes given explicitly: the path parser reads them back from the `diff --git` header.
    args = ("-p", "--no-color", "--src-prefix=a/", "--dst-prefix=b/")
    return parse_log_patch_by_file(_git(path, *_LOG_DIFF_ARGS, *args))


def git_patch_bytes(path: StrPath) -> dict[str, tuple[int, int]]:
    """Per commit sha: (added bytes, removed bytes), see parse_log_patch."""
    return {sha: (s.added_bytes, s.removed_bytes) for sha, s in git_patch_stats(path).items()}


def git_byte_totals(path: StrPath) -> tuple[int, int]:
    """(added bytes, removed bytes) summed over the whole commit set."""
    per_commit = git_patch_bytes(path).values()
    return sum(a for a, _ in per_commit), sum(r for _, r in per_commit)


def git_contributors(path: StrPath) -> set[str]:
    """Distinct author emails after the mailmap, lower-cased (str.lower).

    git reads the mailmap from the work tree's .mailmap in a non-bare repository and
    from HEAD:.mailmap in a bare one: for a non-bare repository the caller must have
    the default branch checked out, or the answer follows whatever is checked out.
    """
    out = _git(path, "log", "--branches", "--use-mailmap", "--format=%aE")
    # Each record ends in "\n"; keep an empty address as "" rather than dropping it.
    return {e.decode("utf-8", "surrogateescape").lower() for e in out.split(b"\n")[:-1]}


@dataclass(frozen=True)
class CommitFacts:
    """One commit as git reports it; name/email are after the mailmap, raw_* before."""

    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    raw_author_name: str
    raw_author_email: str
    author_date: datetime  # aware, in the author's own UTC offset
    committer_date: datetime


def git_per_commit(path: StrPath) -> dict[str, CommitFacts]:
    """Per commit sha reachable from a branch: parents, author and dates (see CommitFacts)."""
    fmt = "%H%x00%P%x00%aN%x00%aE%x00%an%x00%ae%x00%aI%x00%cI"
    out = _git(path, "log", "--branches", "--use-mailmap", f"--format={fmt}")
    facts: dict[str, CommitFacts] = {}
    for record in out.split(b"\n")[:-1]:
        fields = record.decode("utf-8", "surrogateescape").split("\x00")
        sha, parents, name, email, raw_name, raw_email, adate, cdate = fields
        facts[sha] = CommitFacts(
            sha=sha,
            parents=tuple(parents.split()),
            author_name=name,
            author_email=email,
            raw_author_name=raw_name,
            raw_author_email=raw_email,
            author_date=datetime.fromisoformat(adate),
            committer_date=datetime.fromisoformat(cdate),
        )
    return facts


# -- fixtures ---------------------------------------------------------------------------


def build_long_history(path: Path, commits: int) -> GitRepo:
    """A linear history of `commits` small commits, written by `git fast-import` in a second."""
    repo = GitRepo.init(path)
    authors = [
        ("Alice", "alice@example.com"),
        ("Bob", "bob@example.com"),
        ("Carol", "carol@example.org"),
    ]
    files: dict[str, list[str]] = {}
    stream: list[bytes] = []
    for n in range(commits):
        name, email = authors[n % len(authors)]
        when = 1_700_000_000 + n * 600
        file = f"src/part{n % 40}.txt"
        lines = files.setdefault(file, [])
        lines.append(f"line {n}\n")
        if n % 3 == 0 and len(lines) > 1:
            lines[0] = f"rewritten by {n}\n"
        content = "".join(lines).encode()
        message = f"change {n}".encode()
        stream.append(
            f"commit refs/heads/main\nmark :{n + 1}\n"
            f"author {name} <{email}> {when} +0000\n"
            f"committer {name} <{email}> {when} +0000\n".encode()
        )
        stream.append(b"data %d\n%s\n" % (len(message), message))
        if n:
            stream.append(b"from :%d\n" % n)
        stream.append(f"M 100644 inline {file}\n".encode())
        stream.append(b"data %d\n%s\n\n" % (len(content), content))
    repo.run("fast-import", "--quiet", input=b"".join(stream))
    repo.run("reset", "-q", "--hard", "main")
    return repo


@pytest.fixture(scope="session")
def edge_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitRepo]:
    """The edge-case repository, built once per session. Read it; never modify it."""
    repo = build_edge_case_repo(tmp_path_factory.mktemp("edge") / "repo")
    before = repo.refs()
    yield repo
    # Catch a test that moved a ref or dirtied the tree, since later tests share it.
    if repo.refs() != before or not repo.is_clean():
        raise AssertionError("a test modified the shared edge_repo; use clone_bare() instead")


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    """A fresh, empty repository for a test that builds its own history."""
    return GitRepo.init(tmp_path / "repo")
