"""The engine's full extraction against git's own walk of the same history, on this machine.

    python -m tests.benchmarks.bench_full_history REPO [--repeat N] [--copy] [--file-url]
                                                       [--tmp DIR] [--keep]

Side by side, alternated when repeated (best of N kept for each):

  (a) git log --branches --numstat --diff-merges=first-parent --no-renames --format=
      (what the engine computes, as git computes it; the output is counted, not stored);
  (b) gitstats analyze REPO from scratch: a fresh storage and work dir, so it fetches, walks,
      extracts every commit, stores, snapshots, aggregates and exports;
  (c) the fetch alone, worker.engine.fetch.fetch_source(REPO, <tmp>/m.git), so that the reader can
      subtract it from (b).

Memory: for git, the kernel's max RSS of the process; for the engine, the peak of the summed RSS of
its whole process tree (the extraction pool's workers included), sampled every 50 ms from /proc.
The engine's time per phase comes from polling its status document during the run.

With --copy, or by itself when REPO is a partial clone (its pull-request or notes refs may reach
objects it does not hold, and libgit2's local transport packs every ref), all three run on a bare
copy of REPO's branches and tags (`git clone --bare --no-local`) instead of REPO itself. With
--file-url the engine and the fetch are given file://REPO instead of the path: a fetch through a
transport, as from a remote, rather than whatever shortcut the engine takes for a local path.

Nothing is asserted about time: compare the ratios, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
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
    is_partial_clone,
    mib,
    read_last_run,
    run_measured,
    secs,
    status_path,
    table,
    warm_page_cache,
)

GIT_LOG = [
    "git",
    "log",
    "--branches",
    "--numstat",
    "--diff-merges=first-parent",
    "--no-renames",
    "--format=",
]

# Run in a fresh interpreter, like the engine: times fetch_source alone, imports excluded.
_FETCH_ONLY = """
import json, sys, time
from pathlib import Path
from worker.engine.fetch import fetch_source
started = time.perf_counter()
fetched = fetch_source(sys.argv[1], Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - started, "branches": len(fetched.branches)}))
"""


@dataclass
class Round:
    git: Measurement
    fetch: Measurement
    fetch_inner_s: float
    engine: Measurement
    engine_inner_s: float  # the engine's own duration_ms: analyze_codebase, imports excluded
    commits_added: int


def _one_round(repo: str, engine_source: str, base: Path, index: int, interval: float) -> Round:
    """One round on `repo`: git reads it as a path, the engine and the fetch get `engine_source`
    (the same path, or its file:// URL)."""
    env = bench_env()
    git_run = run_measured(GIT_LOG, env=env, cwd=repo, count_stdout=True, interval=interval)
    git_run.check()

    fetch_dir = base / f"fetch-{index}"
    fetch_run = run_measured(
        [sys.executable, "-c", _FETCH_ONLY, engine_source, str(fetch_dir / "m.git")],
        env=env,
        interval=interval,
    ).check()
    fetch_inner = float(json.loads(fetch_run.stdout)["seconds"])
    shutil.rmtree(fetch_dir, ignore_errors=True)

    storage, work = base / f"storage-{index}", base / f"work-{index}"
    engine_run = run_measured(
        analyze_argv(engine_source, storage, work),
        env=env,
        status_path=status_path(storage),
        interval=interval,
    ).check()
    last_run = read_last_run(storage)
    return Round(
        git=git_run,
        fetch=fetch_run,
        fetch_inner_s=fetch_inner,
        engine=engine_run,
        engine_inner_s=last_run["duration_ms"] / 1000,
        commits_added=int(last_run["commits_added"]),
    )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:,.2f}x" if b > 0 else "n/a"


def report(
    repo: str,
    source_note: str,
    rounds: list[Round],
    commits: int,
    branches: int,
    pack_bytes: int,
) -> str:
    best_git = min(rounds, key=lambda r: r.git.wall_s).git
    best_engine_round = min(rounds, key=lambda r: r.engine.wall_s)
    best_engine = best_engine_round.engine
    best_fetch = min(rounds, key=lambda r: r.fetch_inner_s)
    g, e = best_git.wall_s, best_engine.wall_s
    f = best_fetch.fetch_inner_s
    out = [
        f"gitstats benchmark: full history of {repo}",
        f"machine:    {describe_machine()}",
        *([f"source:     {source_note}"] if source_note else []),
        f"repository: {commits:,} commits reachable from {branches} branches, "
        f"{pack_bytes / 2**20:,.0f} MiB of objects (read once to warm the page cache)",
        f"runs:       {len(rounds)}; best wall time of each side kept; "
        "order per round: git log, fetch alone, engine",
        "",
        table(
            [
                ["", "wall", "peak memory"],
                [
                    "(a) git log --numstat (first-parent, no renames)",
                    secs(g),
                    f"max RSS {mib(best_git.max_single_rss_kib)}",
                ],
                [
                    "(b) gitstats analyze, fresh storage + work dir",
                    secs(e),
                    f"tree peak {mib(best_engine.tree_peak_rss_kib)} summed RSS "
                    f"({best_engine.tree_peak_processes} processes)",
                ],
                [
                    "    of which inside analyze_codebase (status duration_ms)",
                    secs(best_engine_round.engine_inner_s),
                    "",
                ],
                [
                    "(c) fetch_source alone, imports excluded",
                    secs(f),
                    f"max RSS {mib(best_fetch.fetch.max_single_rss_kib)}",
                ],
                [
                    "    (c) as a process, interpreter start included",
                    secs(best_fetch.fetch.wall_s),
                    "",
                ],
            ],
            left=(0, 2),
        ),
        "",
        table(
            [
                ["ratio engine / git", _ratio(e, g)],
                ["ratio (engine - fetch alone) / git", _ratio(e - f, g)],
                ["throughput, git log", f"{commits / g:,.0f} commits/s"],
                ["throughput, engine", f"{commits / e:,.0f} commits/s"],
            ]
        ),
        "",
        "engine memory (best run):",
        table(
            [
                ["peak of summed RSS over the tree", mib(best_engine.tree_peak_rss_kib)],
                ["  per process at that moment", ", ".join(mib(k) for k in best_engine.at_peak)],
                ["peak of summed RssAnon (private heap)", mib(best_engine.tree_peak_anon_kib)],
                ["largest single process (kernel max RSS)", mib(best_engine.max_single_rss_kib)],
                ["samples", f"{best_engine.samples:,}"],
            ]
        ),
        "",
        "engine phases (best run; from its status document, polled every 5 ms; a phase shorter "
        "than that counts in the row above):",
    ]
    phase_rows = [["phase", "time", "share", "tree peak RSS"]]
    for span in _merged_phases(best_engine):
        phase_rows.append(
            [
                span[0],
                secs(span[1]),
                f"{100 * span[1] / e:.1f} %",
                mib(span[2]),
            ]
        )
    out.append(table(phase_rows))
    out += [
        "",
        "checks:",
        table(
            [
                [
                    "engine commits_added vs git rev-list --branches --count",
                    f"{best_engine_round.commits_added:,} vs {commits:,}",
                    "ok" if best_engine_round.commits_added == commits else "MISMATCH",
                ],
                [
                    "git log output",
                    f"{best_git.stdout_lines:,} numstat lines",
                    f"{best_git.stdout_bytes / 2**20:,.1f} MiB",
                ],
            ]
        ),
    ]
    if len(rounds) > 1:
        rows = [["round", "git log", "fetch alone", "engine", "engine / git", "engine tree peak"]]
        for i, r in enumerate(rounds, 1):
            rows.append(
                [
                    str(i),
                    secs(r.git.wall_s),
                    secs(r.fetch_inner_s),
                    secs(r.engine.wall_s),
                    _ratio(r.engine.wall_s, r.git.wall_s),
                    mib(r.engine.tree_peak_rss_kib),
                ]
            )
        out += ["", "every round:", table(rows)]
    return "\n".join(out)


def _merged_phases(m: Measurement) -> list[tuple[str, float, int]]:
    """(phase, seconds, peak RSS) in the engine's order, a phase seen twice summed."""
    merged: dict[str, list] = {}
    for span in m.phases:
        entry = merged.setdefault(span.name, [0.0, 0])
        entry[0] += span.seconds
        entry[1] = max(entry[1], span.peak_rss_kib)
    names = [n for n in PHASE_ORDER if n in merged] + [n for n in merged if n not in PHASE_ORDER]
    return [(n, merged[n][0], merged[n][1]) for n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_full_history",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; best of N kept (default 1)")
    parser.add_argument(
        "--copy",
        action="store_true",
        help="benchmark a bare copy of REPO's branches (automatic for a partial clone)",
    )
    add_common_arguments(
        parser, file_url_gives="file://REPO, not the path", sampled="memory/phase", interval_ms=50
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    repo = check_repository(args.repo)
    base = Path(tempfile.mkdtemp(prefix="gitstats-bench-full-", dir=args.tmp))
    rounds = []
    source, source_note = repo, ""
    try:
        if args.copy or is_partial_clone(repo):
            why = "--copy" if args.copy else "REPO is a partial clone"
            source = str(base / "source.git")
            print(f"copying the branches of {repo} to {source} ({why})", file=sys.stderr)
            copy_branches(repo, Path(source))
            source_note = (
                f"a bare copy of its branches and tags (git clone --bare --no-local; {why})"
            )
        engine_source = Path(source).as_uri() if args.file_url else source
        if args.file_url:
            note = f"the engine and the fetch are given {engine_source} (--file-url)"
            source_note = f"{source_note}; {note}" if source_note else note
        commits, branches = count_history(source)
        pack_bytes = warm_page_cache(source)
        for i in range(args.repeat):
            r = _one_round(source, engine_source, base, i, args.interval_ms / 1000)
            rounds.append(r)
            print(
                f"round {i + 1}/{args.repeat}: git log {secs(r.git.wall_s)}, "
                f"fetch alone {secs(r.fetch_inner_s)}, engine {secs(r.engine.wall_s)}",
                file=sys.stderr,
                flush=True,
            )
            if not args.keep:
                shutil.rmtree(base / f"storage-{i}", ignore_errors=True)
                shutil.rmtree(base / f"work-{i}", ignore_errors=True)
    finally:
        discard_unless_kept(base, args.keep)
    print(report(repo, source_note, rounds, commits, branches, pack_bytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
