"""Every row of DESIGN.md's engine performance targets, measured side by side in one run.

    python -m tests.benchmarks.bench_scale --git REPO [--small 400000] [--resume 100000]
                                           [--sizes 4000,40000,400000] [--updates 5]
                                           [--no-read-api] [--tmp DIR] [--keep]

REPO is a clone of git/git (any local clone; a partial one is copied as bench_full_history
does). In order, each step as its own benchmark documents it (tests/benchmarks/README.md):

  1. bench_full_history on REPO: `git log --branches --numstat --diff-merges=first-parent
     --no-renames` against `gitstats analyze` from scratch, and the engine's peak summed RSS;
  2. the same on a generated repository of --small commits of the `small` shape;
  3. bench_push_cost: a 1-commit push's worker time at each of --sizes commits;
  4. bench_resume: a backfill of --resume commits killed at 58 % of its extraction, and the work
     the next run redoes;
  5. bench_read_api (needs wrk): the read API against a bare aiohttp handler.

Then it prints the table README's "Performance" section shows, every figure from this run,
with each step's full report above it. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks import bench_push_cost, bench_resume
from tests.benchmarks._common import (
    copy_branches,
    count_history,
    describe_machine,
    discard_unless_kept,
    median,
    mib,
    say,
    secs,
    warm_page_cache,
)
from tests.benchmarks.bench_full_history import Round, _one_round
from tests.benchmarks.make_repo import build

GIB_KIB = 1 << 20
# bench_read_api's judged rows; its table's columns are two or more spaces apart, the median
# a / b being the fifth.
_READ_API_ROWS = ("overview, 200", "org summary, 200")


def _met(ok: bool) -> str:
    return "yes" if ok else "no"


def full_history(repo: str, base: Path, name: str) -> tuple[Round, int]:
    commits, _ = count_history(repo)
    warm_page_cache(repo)
    say(f"{name}: git log, then gitstats analyze from scratch ({commits:,} commits)")
    (base / f"run-{name}").mkdir()
    result = _one_round(repo, repo, base / f"run-{name}", 0, 0.05)
    if result.commits_added != commits:
        raise SystemExit(
            f"{name}: the engine added {result.commits_added:,} commits, git counts {commits:,}"
        )
    shutil.rmtree(base / f"run-{name}", ignore_errors=True)
    return result, commits


def read_api(tmp: Path) -> tuple[dict[str, float], str]:
    """bench_read_api's medians (a / b) for the overview and the org summary, and its report."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_read_api", "--tmp", str(tmp)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench_read_api failed:\n{done.stderr[-2000:]}")
    ratios = {}
    for line in done.stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] in _READ_API_ROWS and len(cells) >= 5:
            ratios[cells[0].split(",")[0]] = float(cells[4].rstrip(" %")) / 100
    return ratios, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--git", required=True, help="a clone of git/git")
    parser.add_argument("--small", type=int, default=400_000, help="commits of the small shape")
    parser.add_argument("--resume", type=int, default=100_000, help="commits of the killed run")
    parser.add_argument("--sizes", type=bench_push_cost._sizes, default=[4000, 40000, 400000])
    parser.add_argument("--updates", type=int, default=5, help="one-commit updates per size")
    parser.add_argument("--no-read-api", action="store_true", help="skip bench_read_api")
    parser.add_argument("--tmp", type=Path, help="where to put the temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if not args.no_read_api and shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH (apt-get install wrk), or pass --no-read-api")

    base = Path(tempfile.mkdtemp(prefix="gitstats-bench-scale-", dir=args.tmp))
    reports: list[str] = []
    try:
        source = base / "git.git"
        say(f"copying the branches of {args.git} (a bare copy, packed afresh by git)")
        copy_branches(args.git, source)
        git_round, git_commits = full_history(str(source), base, "git")
        shutil.rmtree(source, ignore_errors=True)

        small = base / "small"
        say(f"generating {args.small:,} small commits")
        build(small, args.small, branches=0, seed=1, shape="small")
        small_round, small_commits = full_history(str(small), base, "small")
        shutil.rmtree(small, ignore_errors=True)

        pushes = bench_push_cost.measure(base, args.sizes, args.updates, 0.02)
        reports.append(bench_push_cost.report(pushes))
        for size in args.sizes:
            for name in ("repo", "storage", "work"):
                shutil.rmtree(base / f"{name}-{size}", ignore_errors=True)

        resume = bench_resume.measure(base, args.resume, 0.58)
        reports.append(bench_resume.report(resume))

        api: dict[str, float] = {}
        if not args.no_read_api:
            say("bench_read_api")
            api, api_report = read_api(base)
            reports.append(api_report)
    finally:
        discard_unless_kept(base, args.keep)

    def ratio(r: Round) -> float:
        return r.engine.wall_s / r.git.wall_s

    smallest, largest = args.sizes[0], args.sizes[-1]
    push = {size: median([run.inner_s for run in pushes[size].updates]) for size in args.sizes}
    push_ratio = push[largest] / push[smallest]
    peak = git_round.engine.tree_peak_rss_kib
    rows = [
        "| what | measured | target | met? |",
        "|---|---|---|---|",
        f"| git/git ({git_commits:,} commits), full backfill against `git log --branches "
        "--numstat --diff-merges=first-parent --no-renames` | "
        f"{secs(git_round.engine.wall_s)} against {secs(git_round.git.wall_s)}: "
        f"**{ratio(git_round):.2f}x** | ≤ 1.0x | {_met(ratio(git_round) <= 1.0)} |",
        f"| {small_commits:,} small commits (`make_repo --shape small`), full backfill against "
        f"the same `git log` | {secs(small_round.engine.wall_s)} against "
        f"{secs(small_round.git.wall_s)}: **{ratio(small_round):.2f}x** | ≤ 2.0x | "
        f"{_met(ratio(small_round) <= 2.0)} |",
        "| a 1-commit push, worker time, as history grows (median of "
        f"{args.updates}) | "
        + ", ".join(f"{secs(push[size])} at {size:,}" for size in args.sizes)
        + f": **{push_ratio:.2f}x** | ≤ 1.5x, and ≤ 0.3 s at {largest:,} | "
        f"{_met(push_ratio <= 1.5)}, {_met(push[largest] <= 0.3)} |",
        f"| git/git backfill, peak memory of the whole process tree (summed RSS) | "
        f"**{mib(peak)}** ({git_round.engine.tree_peak_processes} processes; private "
        f"{mib(git_round.engine.tree_peak_anon_kib)}) | ≤ 1 GiB | {_met(peak <= GIB_KIB)} |",
        f"| {resume.commits:,} small commits, backfill killed (SIGKILL) at "
        f"{100 * resume.killed_at / resume.commits:.0f} % of its extraction | the next run "
        f"extracted **{100 * resume.redone:.0f} %** again, took {secs(resume.resumed_wall_s)} "
        f"against a clean run's {secs(resume.clean_wall_s)}, and ended equal to it | ≤ 50 % | "
        f"{_met(resume.redone <= 0.5)} |",
    ]
    if api:
        rows.append(
            "| read API requests/s against a bare aiohttp handler answering the same bytes "
            "(wrk -t2 -c32) | "
            + ", ".join(f"{name} **{100 * value:.1f} %**" for name, value in api.items())
            + f" | ≥ 80 % | {_met(min(api.values()) >= 0.8)} |"
        )
    print("\n\n".join(reports))
    print()
    print(f"machine: {describe_machine()}")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
