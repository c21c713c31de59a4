"""A synthetic repository to try the benchmarks on in seconds: `python -m
tests.benchmarks.make_repo DEST [--commits 2000] [--branches 4] [--seed 1] [--shape mixed|small]`.

Built by `git fast-import`, deterministic for a given seed, in one of two shapes:

- `mixed` (the default): a `main` line with topic branches that fork, get a few commits and are
  merged back (real merges, so first-parent diffs matter), a few branches left unmerged, files
  added, modified, deleted, and the occasional binary file.
- `small`: a busy monorepo's history, one line of one small file changed per commit, on `main`
  only, over 2,000 files in 100 folders. 400,000 commits take about half a minute: what a push
  costs as history grows, with every commit as cheap to extract as it gets.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

from tests.benchmarks._common import bench_env, git

_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")
_PEOPLE = [(f"Dev {i}", f"dev{i}@example.com") for i in range(12)]


class _Stream:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.out: list[bytes] = []
        self.mark = 0
        self.time = 1_600_000_000

    def _data(self, payload: bytes) -> None:
        self.out.append(b"data %d\n" % len(payload) + payload + b"\n")

    def commit(
        self,
        branch: str,
        parent: int | None,
        merge: int | None,
        changes: dict[str, bytes | None],
        message: str,
    ) -> int:
        self.mark += 1
        self.time += self.rng.randint(60, 7200)
        name, email = self.rng.choice(_PEOPLE)
        offset = self.rng.choice(["+0000", "+0200", "-0500", "+0530"])
        head = f"commit refs/heads/{branch}\nmark :{self.mark}\n"
        head += f"author {name} <{email}> {self.time} {offset}\n"
        head += f"committer {name} <{email}> {self.time} {offset}\n"
        self.out.append(head.encode())
        self._data(message.encode())
        if parent is not None:
            self.out.append(b"from :%d\n" % parent)
        if merge is not None:
            self.out.append(b"merge :%d\n" % merge)
        for path, content in sorted(changes.items()):
            if content is None:
                self.out.append(f"D {path}\n".encode())
            else:
                self.out.append(f"M 100644 inline {path}\n".encode())
                self._data(content)
        self.out.append(b"\n")
        return self.mark

    def line(self) -> bytes:
        return (" ".join(self.rng.choices(_WORDS, k=self.rng.randint(1, 12))) + "\n").encode()

    def edit(self, files: dict[str, bytes], prefix: str) -> dict[str, bytes | None]:
        """One to three changes to the files under `prefix` (applied to `files` too)."""
        rng = self.rng
        changes: dict[str, bytes | None] = {}
        own = sorted(p for p in files if p.startswith(prefix))
        for _ in range(rng.randint(1, 3)):
            roll = rng.random()
            if not own or roll < 0.15:
                path = f"{prefix}f{rng.randrange(10**6)}.{rng.choice(['c', 'py', 'md', 'txt'])}"
                content = b"".join(self.line() for _ in range(rng.randint(1, 60)))
            elif roll < 0.20 and len(own) > 3:
                path = rng.choice(own)
                files.pop(path, None)
                changes[path] = None
                own.remove(path)
                continue
            elif roll < 0.23:
                path = f"{prefix}blob{rng.randrange(100)}.bin"
                content = rng.randbytes(rng.randint(64, 4096)) + b"\0"
            else:
                path = rng.choice(own)
                lines = files[path].splitlines(keepends=True) or [b""]
                for _ in range(rng.randint(1, 5)):
                    i = rng.randrange(len(lines) + 1)
                    if rng.random() < 0.5 and i < len(lines):
                        lines[i] = self.line()
                    else:
                        lines.insert(i, self.line())
                if rng.random() < 0.2 and len(lines) > 2:
                    del lines[rng.randrange(len(lines))]
                content = b"".join(lines)
            files[path] = content
            changes[path] = content
            if path not in own:
                own.append(path)
        return changes


def _small_commits(s: _Stream, commits: int) -> None:
    """`commits` commits on main, each changing one line of one small file."""
    rng = s.rng
    files: dict[str, list[bytes]] = {}
    names = [f"pkg{d:02d}/mod{f:02d}.txt" for d in range(100) for f in range(20)]
    parent = None
    for n in range(commits):
        path = rng.choice(names)
        lines = files.setdefault(path, [])
        if len(lines) < 12 or rng.random() < 0.3:
            lines.insert(rng.randrange(len(lines) + 1), f"line {n}\n".encode())
        else:
            lines[rng.randrange(len(lines))] = f"line {n}, changed\n".encode()
        parent = s.commit("main", parent, None, {path: b"".join(lines)}, f"change {n}")


def build(dest: Path, commits: int, branches: int, seed: int, shape: str = "mixed") -> None:
    dest.mkdir(parents=True, exist_ok=False)
    git("init", "-q", "--template=", "-b", "main", ".", cwd=dest)
    s = _Stream(seed)
    if shape == "small":
        _small_commits(s, commits)
        _import(dest, s)
        return
    files: dict[str, bytes] = {}
    main = s.commit("main", None, None, s.edit(files, "src/"), "root")
    made = 1
    topic = 0
    unmerged_left = branches
    while made < commits:
        if s.rng.random() < 0.08 and commits - made > 25:
            # A topic branch: its own folder, so merging it is a union of trees.
            topic += 1
            name = f"topic/{topic}"
            prefix = f"topic{topic}/"
            theirs = dict(files)
            tip = main
            for i in range(s.rng.randint(2, 15)):
                tip = s.commit(name, tip, None, s.edit(theirs, prefix), f"{name} #{i}")
                made += 1
            keep = unmerged_left > 0 and s.rng.random() < 0.3
            if keep:
                unmerged_left -= 1
                continue
            # A commit on main meanwhile, so the merge is not a fast-forward.
            main = s.commit("main", main, None, s.edit(files, "src/"), "meanwhile")
            merged = {p: c for p, c in theirs.items() if p.startswith(prefix)}
            files.update(merged)
            main = s.commit("main", main, tip, dict(merged), f"Merge {name}")
            made += 2
            # Merged branches are deleted, as on a real forge.
            s.out.append(f"reset refs/heads/{name}\nfrom {'0' * 40}\n\n".encode())
        else:
            main = s.commit("main", main, None, s.edit(files, "src/"), f"change {made}")
            made += 1
    _import(dest, s)


def _import(dest: Path, s: _Stream) -> None:
    proc = subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=dest,
        input=b"".join(s.out),
        env=bench_env(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.decode(errors="replace"))
    git("checkout", "-q", "main", cwd=dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.make_repo", description=__doc__
    )
    parser.add_argument("dest", type=Path, help="a new folder")
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--branches", type=int, default=4, help="unmerged topic branches, at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shape", choices=("mixed", "small"), default="mixed")
    args = parser.parse_args(argv)
    build(args.dest, args.commits, args.branches, args.seed, args.shape)
    count = git("rev-list", "--branches", "--count", cwd=args.dest)
    heads = git("for-each-ref", "--format=%(refname:short)", "refs/heads/", cwd=args.dest)
    print(f"{args.dest}: {count} commits on {len(heads.split())} branches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
