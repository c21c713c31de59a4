"""What a one-commit push costs the engine, against the full backfill of the same repository.

    python -m tests.benchmarks.bench_incremental REPO [--updates K] [--branch NAME] [--file PATH]
                                                      [--profile] [--file-url] [--tmp DIR] [--keep]

REPO is never written to. The benchmark copies its branches and tags (`git clone --bare
--no-local`: packed afresh, never linked to REPO, complete even if REPO is a partial clone) into a
temporary bare repository, the source, and checks out its default branch there in a worktree. Then:

  1. `gitstats analyze SOURCE` into a fresh storage and work dir: the full backfill;
  2. K times: one new commit on the default branch modifying one file (git CLI, in the worktree,
     so the source's branch moves), then `gitstats analyze SOURCE` again on the same storage and
     work dir: the update, its fetch included.

Reported: the full run, each update, their median and max, the ratio median update / full, and the
targets (≤ 1 s of worker time per update and ≤ 2 % of the full backfill), where worker time is the
engine's own duration_ms (analyze_codebase from start to end; interpreter start and imports, which a
long-lived worker pays once, excluded). Each update must add exactly one commit and remove none:
that is checked (a correctness check, not a timing). With --profile, one more update runs inside
this process under cProfile and the top of the profile is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks._common import (
    PHASE_ORDER,
    Measurement,
    add_common_arguments,
    analyze_argv,
    bench_env,
    check_repository,
    copy_branches,
    count_history,
    describe_machine,
    discard_unless_kept,
    git,
    median,
    mib,
    read_last_run,
    run_measured,
    say,
    secs,
    status_path,
    table,
)

TARGET_UPDATE_S = 1.0
TARGET_SHARE = 0.02
_README_NAMES = ("README.md", "README", "README.rst", "README.txt")


@dataclass
class Run:
    measurement: Measurement
    inner_s: float  # status.last_run.duration_ms
    commits_added: int
    commits_removed: int


def _analyze(source: str, storage: Path, work: Path, interval: float) -> Run:
    m = run_measured(
        analyze_argv(source, storage, work),
        env=bench_env(),
        status_path=status_path(storage),
        interval=interval,
    ).check()
    last = read_last_run(storage)
    return Run(m, last["duration_ms"] / 1000, int(last["commits_added"]), last["commits_removed"])


def _is_text_file(path: Path) -> bool:
    if not path.is_file() or path.is_symlink():
        return False
    with open(path, "rb") as f:
        return b"\0" not in f.read(8000)  # git's own test for binary content


def _pick_file(checkout: Path, requested: str | None) -> str:
    if requested:
        if not (checkout / requested).is_file():
            raise SystemExit(f"--file {requested}: not a file on the default branch")
        return requested
    names = [n for n in _README_NAMES if (checkout / n).exists()]
    names += git("ls-files", cwd=checkout).splitlines()
    for name in names:
        if _is_text_file(checkout / name):
            return name
    raise SystemExit("the default branch has no regular text file to modify")


def _commit_one(checkout: Path, path: str, n: int, when: int | None = None) -> str:
    """Commit update `n` to `path`, dated `when` (a Unix time; None: now)."""
    with open(checkout / path, "a", encoding="utf-8") as f:
        f.write(f"gitstats incremental benchmark, update {n} at {time.time_ns()}\n")
    env = {
        **bench_env(),
        "GIT_AUTHOR_NAME": "Benchmark",
        "GIT_AUTHOR_EMAIL": "benchmark@example.com",
        "GIT_COMMITTER_NAME": "Benchmark",
        "GIT_COMMITTER_EMAIL": "benchmark@example.com",
    }
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{when} +0000"
    subprocess.run(
        ["git", "commit", "-q", "--no-verify", "-m", f"benchmark update {n}", "--", path],
        cwd=checkout,
        env=env,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return git("rev-parse", "HEAD", cwd=checkout)


def _check_update(run: Run, n: int) -> None:
    # Correctness, not timing: a one-commit push must extract exactly that commit.
    if run.commits_added != 1 or run.commits_removed != 0:
        raise SystemExit(
            f"update {n}: the engine added {run.commits_added} and removed "
            f"{run.commits_removed} commits; expected exactly 1 added and 0 removed"
        )


def _phase_table(runs: list[Run], total_s: float | None = None) -> str:
    """Median seconds per phase over `runs` (a phase a run did not show counts as 0)."""
    per_run = [r.measurement.phase_seconds() for r in runs]
    names = [n for n in PHASE_ORDER if any(n in p for p in per_run)]
    names += sorted({n for p in per_run for n in p} - set(PHASE_ORDER))
    rows = [["phase", "median", "max"]]
    for name in names:
        values = [p.get(name, 0.0) for p in per_run]
        rows.append([name, secs(median(values)), secs(max(values))])
    if total_s is not None:
        rows.append(["(wall, median)", secs(total_s), ""])
    return table(rows)


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(
    repo: str,
    source_commits: int,
    branches: int,
    branch: str,
    path: str,
    full: Run,
    updates: list[Run],
    engine_source: str,
) -> str:
    walls = [u.measurement.wall_s for u in updates]
    inner = [u.inner_s for u in updates]
    med_inner, med_wall = median(inner), median(walls)
    share_inner = med_inner / full.inner_s if full.inner_s else float("nan")
    share_wall = med_wall / full.measurement.wall_s
    fm = full.measurement
    rows = [
        ["", "worker time (duration_ms)", "wall (process)", "tree peak RSS"],
        [
            "full backfill",
            secs(full.inner_s),
            secs(fm.wall_s),
            mib(fm.tree_peak_rss_kib),
        ],
    ]
    for i, u in enumerate(updates, 1):
        rows.append(
            [
                f"update {i} (1 commit)",
                secs(u.inner_s),
                secs(u.measurement.wall_s),
                mib(u.measurement.tree_peak_rss_kib),
            ]
        )
    rows += [
        ["update, median", secs(med_inner), secs(med_wall), ""],
        ["update, max", secs(max(inner)), secs(max(walls)), ""],
        ["median update / full", f"{100 * share_inner:.2f} %", f"{100 * share_wall:.2f} %", ""],
    ]
    out = [
        f"gitstats benchmark: one-commit update vs full backfill, {repo}",
        f"machine:    {describe_machine()}",
        f"source:     a bare copy of its branches and tags (git clone --bare --no-local): "
        f"{source_commits:,} commits on "
        f"{branches} branches; each update appends a line to {path} on {branch!r}",
        f"engine:     gitstats analyze {engine_source}",
        f"updates:    {len(updates)}, each on the same storage and work dir (fetch included)",
        "",
        table(rows),
        "",
        "targets (on the median update's worker time):",
        table(
            [
                [
                    f"<= {TARGET_UPDATE_S:g} s of worker time",
                    secs(med_inner),
                    _verdict(med_inner <= TARGET_UPDATE_S),
                ],
                [
                    f"<= {100 * TARGET_SHARE:g} % of the full backfill",
                    f"{100 * share_inner:.2f} %",
                    _verdict(share_inner <= TARGET_SHARE),
                ],
            ]
        ),
        "",
        "correctness:",
        table(
            [
                [
                    "full backfill: commits added vs git rev-list --branches --count",
                    f"{full.commits_added:,} vs {source_commits:,}",
                    "ok" if full.commits_added == source_commits else "MISMATCH",
                ],
                [
                    "each update: commits added / removed",
                    ", ".join(f"{u.commits_added}/{u.commits_removed}" for u in updates),
                    "ok (exactly 1/0, checked)",
                ],
            ]
        ),
        "",
        "where an update's time goes (phases from the status document, polled every 5 ms; "
        "a phase shorter than that counts in the row above):",
        _phase_table(updates, med_wall),
        "",
        "full backfill phases:",
        _phase_table([full], fm.wall_s),
    ]
    return "\n".join(out)


def _profile_update(source: str, storage: Path, work: Path, top: int) -> tuple[str, int]:
    """One update inside this process under cProfile: the top of the profile, commits added.

    The engine does its work in asyncio's default executor, so every thread of that executor
    gets a profiler of its own, and their statistics are merged with the event loop's.
    """
    from contract.storage.local import LocalStorage
    from worker.engine.pipeline import analyze_codebase

    profilers: list[cProfile.Profile] = []

    def profile_this_thread() -> None:
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.enable()

    async def run() -> int:
        executor = ThreadPoolExecutor(initializer=profile_this_thread)
        asyncio.get_running_loop().set_default_executor(executor)
        result = await analyze_codebase(source, LocalStorage(storage), 1, work)
        return result.commits_added

    main_profiler = cProfile.Profile()
    main_profiler.enable()
    started = time.perf_counter()
    added = asyncio.run(run())  # shuts the executor down: its threads end, profilers with them
    elapsed = time.perf_counter() - started
    main_profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(main_profiler, stream=buffer)
    for profiler in profilers:
        stats.add(profiler)
    buffer.write(
        f"{secs(elapsed)} in asyncio.run, {len(profilers)} executor thread(s) merged: their "
        "times overlap the event loop's waits (select.epoll.poll), and _queue.SimpleQueue.get "
        "is an idle executor thread\n"
    )
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    return buffer.getvalue(), added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_incremental",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--updates", type=int, default=5, help="one-commit updates (default 5)")
    parser.add_argument("--branch", help="the branch to commit on (default: the repo's HEAD)")
    parser.add_argument("--file", help="the file to modify (default: a README, else the first)")
    parser.add_argument(
        "--profile", action="store_true", help="profile one more update in-process (cProfile)"
    )
    parser.add_argument("--profile-top", type=int, default=30, help="profile lines (default 30)")
    add_common_arguments(
        parser,
        file_url_gives="the source's file:// URL, not its path",
        sampled="memory",
        interval_ms=20,
    )
    args = parser.parse_args(argv)
    if args.updates < 1:
        parser.error("--updates must be at least 1")

    repo = check_repository(args.repo)
    interval = args.interval_ms / 1000
    base = Path(tempfile.mkdtemp(prefix="gitstats-bench-incremental-", dir=args.tmp))
    try:
        source, checkout = base / "source.git", base / "checkout"
        storage, work = base / "storage", base / "work"
        say(f"copying the branches of {repo} to {source}")
        copy_branches(repo, source)
        branch = args.branch or git("symbolic-ref", "--short", "HEAD", cwd=source)
        if not git("for-each-ref", f"refs/heads/{branch}", cwd=source):
            raise SystemExit(f"no branch {branch!r} in {repo}")
        git("worktree", "add", "-q", str(checkout), branch, cwd=source)
        path = _pick_file(checkout, args.file)
        source_commits, branches = count_history(source)

        say("full backfill")
        engine_source = source.as_uri() if args.file_url else str(source)
        full = _analyze(engine_source, storage, work, interval)
        wall = full.measurement.wall_s
        say(f"full backfill: {secs(full.inner_s)} worker time, {secs(wall)} wall")
        updates = []
        for n in range(1, args.updates + 1):
            _commit_one(checkout, path, n)
            run = _analyze(engine_source, storage, work, interval)
            _check_update(run, n)
            updates.append(run)
            say(f"update {n}: {secs(run.inner_s)} worker time, {secs(run.measurement.wall_s)} wall")
        print(report(repo, source_commits, branches, branch, path, full, updates, engine_source))

        if args.profile:
            _commit_one(checkout, path, args.updates + 1)
            text, added = _profile_update(engine_source, storage, work, args.profile_top)
            if added != 1:
                raise SystemExit(f"profiled update: {added} commits added, expected 1")
            print("\nprofile of one more update, in this process (cProfile, by cumulative time):")
            print(text.rstrip())
    finally:
        discard_unless_kept(base, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
