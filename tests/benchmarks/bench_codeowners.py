"""The owners of every file of a head: `Codeowners.owners_of` over N paths and R rules.

    python -m tests.benchmarks.bench_codeowners [REPO] [--paths 100000] [--rules 200]
                                                [--seed 1]

Paths: the files of REPO's HEAD (copied under `copy<k>/` folders until there are --paths), or
without REPO a generated tree of about eight files and three subfolders a folder; and, as the
worst case, as many paths each in two folders of its own (every lookup a new folder). Rules:
`* @default`, then R - 1 lines made from those paths' folders and names, in turn of eight shapes
(an anchored folder, an extension anywhere, a folder name anywhere, `/dir/*`, `**/name/*.py`,
`/top/**/name/`, `/dir/*.so`, `*abc*.txt`).

Each set is matched by a fresh object (cold: every folder met for the first time), then again
(warm: folders known), and against the baseline of the one-line file `* @default` on the same
paths (a lookup a path, nothing to search), in the same run. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import time
from collections.abc import Sequence

from tests.benchmarks._common import bench_env, describe_machine, say, table
from worker.engine.codeowners import Codeowners, parse_codeowners

SHAPES = (
    "/{dir}/",
    "*.{ext}",
    "{last}/",
    "/{dir}/*",
    "**/{last}/*.py",
    "/{first}/**/{last}/",
    "/{dir}/*.so",
    "*{head}*.txt",
)


def head_paths(repo: str, count: int) -> list[bytes]:
    listed = subprocess.run(
        ["git", "-C", repo, "ls-tree", "-r", "-z", "--name-only", "HEAD"],
        capture_output=True,
        check=True,
        env=bench_env(),
    ).stdout.split(b"\0")[:-1]
    paths = list(listed)
    copy = 0
    while len(paths) < count:
        copy += 1
        paths += [b"copy%d/" % copy + path for path in listed]
    return paths[:count]


def generated_paths(count: int, rng: random.Random) -> list[bytes]:
    exts = [b"py", b"js", b"md", b"c", b"h", b"json", b"txt", b"so", b"yml", b"go"]
    paths: list[bytes] = []
    folders = [b""]
    while len(paths) < count:
        folder = folders.pop(0)
        prefix = folder + b"/" if folder else b""
        for i in range(8):
            paths.append(prefix + b"file%d.%s" % (rng.randrange(10**4), exts[i % len(exts)]))
        folders += [prefix + b"dir%d" % rng.randrange(10**4) for _ in range(3)]
    return paths[:count]


def own_folders(count: int) -> list[bytes]:
    return [b"a%d/b%d/file%d.py" % (i, i, i) for i in range(count)]


def make_rules(paths: Sequence[bytes], count: int, rng: random.Random) -> bytes:
    folders = sorted({p.rpartition(b"/")[0] for p in paths if b"/" in p})
    names = sorted({p.rpartition(b"/")[2] for p in paths})
    exts = sorted({n.rpartition(b".")[2] for n in names if b"." in n}) or [b"txt"]
    lines = [b"* @default"]
    for i in range(count - 1):
        folder = rng.choice(folders)
        fields = {
            "dir": folder,
            "first": folder.partition(b"/")[0],
            "last": folder.rpartition(b"/")[2],
            "ext": rng.choice(exts),
            "head": rng.choice(names)[:3],
        }
        pattern = SHAPES[i % len(SHAPES)].encode()
        for key, value in fields.items():
            escaped = value.replace(b"\\", b"\\\\").replace(b" ", b"\\ ")
            pattern = pattern.replace(b"{%s}" % key.encode(), escaped)
        lines.append(pattern + b" @org/team-%d" % (i % 40))
    return b"\n".join(lines) + b"\n"


def timed(codeowners: Codeowners, paths: Sequence[bytes]) -> float:
    owners_of = codeowners.owners_of
    start = time.perf_counter()
    for path in paths:
        owners_of(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", nargs="?", help="a git repository: its HEAD's files")
    parser.add_argument("--paths", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    say("listing paths")
    paths = head_paths(args.repo, args.paths) if args.repo else generated_paths(args.paths, rng)
    text = make_rules(paths, args.rules, rng)
    start = time.perf_counter()
    codeowners = parse_codeowners(text)
    parsed = time.perf_counter() - start
    rows = [["paths", "folders", "baseline", "cold", "warm", "cold/path", "cold/baseline"]]
    for label, subset in (
        ("head" if args.repo else "tree", paths),
        ("own folders", own_folders(len(paths))),
    ):
        say(f"matching {label}")
        baseline = timed(parse_codeowners(b"* @default\n"), subset)
        fresh = parse_codeowners(text)
        cold = timed(fresh, subset)
        warm = timed(fresh, subset)
        folders = len({p.rpartition(b"/")[0] for p in subset})
        rows.append(
            [
                f"{label} {len(subset):,}",
                f"{folders:,}",
                f"{baseline:.2f} s",
                f"{cold:.2f} s",
                f"{warm:.2f} s",
                f"{cold / len(subset) * 1e6:.1f} us",
                f"{cold / baseline:.1f}x",
            ]
        )
    print(describe_machine())
    print(f"{len(codeowners.rules)} rules, parsed and compiled in {parsed * 1000:.0f} ms")
    print(table(rows))


if __name__ == "__main__":
    main()
