"""What a backfill killed half way costs the next run: the work it redoes.

    python -m tests.benchmarks.bench_resume [--commits 100000] [--kill-at 0.58]
                                            [--tmp DIR] [--keep]

A repository of the `small` shape (`make_repo --shape small`) is generated with git fast-import,
then:

  (a) `gitstats analyze REPO` into a fresh storage and work dir, killed with SIGKILL (its whole
      process group: the extraction pool too) once its status document says the extraction has
      done `--kill-at` of the commits;
  (b) `gitstats analyze REPO` again on the same storage and work dir: it takes the checkpointed
      rows over and extracts the rest;
  (c) `gitstats analyze REPO` into another fresh storage: a run never interrupted.

Reported: where (a) was killed, how many commits (b) took over and how many it extracted again
(the work redone, against DESIGN's "at most half"), the wall times of (b) and (c), and whether
(b)'s documents equal (c)'s (timestamps aside): that is correctness, and the benchmark fails if
not. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from contract.storage.local import LocalStorage
from tests.benchmarks._common import (
    analyze_argv,
    bench_env,
    describe_machine,
    discard_unless_kept,
    say,
    secs,
    status_path,
    table,
)
from tests.benchmarks.make_repo import build
from tests.support.documents import read_documents, without_run_timestamps

TARGET_REDONE = 0.5
_RESUMED = re.compile(r"commits added \((\d+) of them extracted by an interrupted run\)")
_ADDED = re.compile(r"codebase \d+: (\d+) commits added")


@dataclass
class Resume:
    commits: int
    killed_at: int  # extraction progress (commits) when (a) was killed
    killed_after_s: float
    resumed: int  # commits (b) took over
    added: int  # commits (b) added in all
    resumed_wall_s: float
    clean_wall_s: float
    equal: bool

    @property
    def redone(self) -> float:
        return (self.added - self.resumed) / self.commits


def _extract_progress(path: Path) -> tuple[int, int] | None:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    progress = doc.get("progress") or {}
    if doc.get("phase") != "extract" or not progress.get("total"):
        return None
    return int(progress["done"]), int(progress["total"])


def kill_mid_extraction(argv: list[str], status: Path, share: float) -> tuple[int, float]:
    """Run `argv` and SIGKILL its process group once the extraction has done `share` of the
    commits; (commits done then, seconds since the start)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env=bench_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while proc.poll() is None:
            seen = _extract_progress(status)
            if seen and seen[0] >= share * seen[1]:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return seen[0], time.perf_counter() - started
            time.sleep(0.02)
        raise SystemExit(
            f"the run ended (exit {proc.returncode}) before its extraction reached {share:.0%}: "
            "use more --commits"
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _run(argv: list[str]) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=bench_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return done.stdout, time.perf_counter() - started


async def _same_documents(a: Path, b: Path) -> bool:
    ours = without_run_timestamps(await read_documents(LocalStorage(a), 1))
    theirs = without_run_timestamps(await read_documents(LocalStorage(b), 1))
    return ours == theirs


def measure(base: Path, commits: int, share: float, repo: Path | None = None) -> Resume:
    if repo is None:
        repo = base / f"repo-{commits}"
        say(f"resume: generating {commits:,} commits")
        build(repo, commits, branches=0, seed=2, shape="small")
    storage, work = base / "resume-storage", base / "resume-work"
    say(f"resume: (a) backfill, killed at {share:.0%} of its extraction")
    argv = analyze_argv(str(repo), storage, work)
    argv.remove("--quiet")
    killed_at, killed_after = kill_mid_extraction(argv, status_path(storage), share)
    say(f"resume: (b) the next run, after the kill at {killed_at:,} commits")
    out, resumed_wall = _run(argv)
    resumed = int(m.group(1)) if (m := _RESUMED.search(out)) else 0
    added_match = _ADDED.search(out)
    if added_match is None:
        raise SystemExit(f"unexpected output of gitstats analyze: {out!r}")
    say("resume: (c) a run never interrupted")
    clean = base / "clean-storage"
    _, clean_wall = _run(analyze_argv(str(repo), clean, base / "clean-work"))
    equal = asyncio.run(_same_documents(storage, clean))
    if not equal:
        raise SystemExit("the resumed run's documents differ from the clean run's")
    return Resume(
        commits=commits,
        killed_at=killed_at,
        killed_after_s=killed_after,
        resumed=resumed,
        added=int(added_match.group(1)),
        resumed_wall_s=resumed_wall,
        clean_wall_s=clean_wall,
        equal=equal,
    )


def report(r: Resume) -> str:
    met = r.redone <= TARGET_REDONE
    return "\n".join(
        [
            "gitstats benchmark: a backfill killed half way, and the run after it",
            f"machine:    {describe_machine()}",
            f"repository: make_repo --shape small, {r.commits:,} commits",
            "",
            table(
                [
                    [
                        "(a) killed (SIGKILL, process group) after",
                        f"{r.killed_at:,} commits extracted",
                        f"{100 * r.killed_at / r.commits:.1f} %",
                        secs(r.killed_after_s),
                    ],
                    [
                        "(b) the next run took over",
                        f"{r.resumed:,} commits",
                        f"{100 * r.resumed / r.commits:.1f} %",
                        "",
                    ],
                    [
                        "    and extracted again",
                        f"{r.added - r.resumed:,} commits",
                        f"{100 * r.redone:.1f} %",
                        secs(r.resumed_wall_s),
                    ],
                    [
                        "(c) a run never interrupted",
                        f"{r.commits:,} commits",
                        "",
                        secs(r.clean_wall_s),
                    ],
                ],
                left=(0,),
            ),
            "",
            f"work redone: {100 * r.redone:.1f} % of the commits (target <= "
            f"{100 * TARGET_REDONE:.0f} %: {'met' if met else 'NOT met'}); (b) took "
            f"{r.resumed_wall_s / r.clean_wall_s:.2f}x the wall time of (c)",
            f"(b)'s documents equal (c)'s: {'yes' if r.equal else 'NO'}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_resume",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--kill-at", type=float, default=0.58, help="share of the extraction")
    parser.add_argument("--tmp", type=Path, help="where to put the temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if not 0 < args.kill_at < 1:
        parser.error("--kill-at is a share of the extraction, between 0 and 1")
    base = Path(tempfile.mkdtemp(prefix="gitstats-bench-resume-", dir=args.tmp))
    try:
        print(report(measure(base, args.commits, args.kill_at)))
    finally:
        discard_unless_kept(base, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
