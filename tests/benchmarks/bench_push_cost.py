"""What a one-commit push costs the engine as history grows: the push-cost curve.

    python -m tests.benchmarks.bench_push_cost [--sizes 4000,40000,400000] [--updates 5]
                                               [--tmp DIR] [--keep] [--interval-ms N]

For each size N, a repository of the `small` shape (`make_repo --shape small`: N commits, each
changing one line of one small file, like a busy monorepo) is generated with git fast-import,
then:

  1. `gitstats analyze REPO` into a fresh storage and work dir: the full backfill;
  2. K times (after one more, unreported, to warm the process up): one new commit changing
     one file (git CLI), then the engine again on the same storage and work dir, in one
     long-lived process (tests/benchmarks/push_worker.py), as the service's worker runs it
     (line provenance included: the changed file is blamed over the new commit only, checked);
  3. K more times the same, each in a new `gitstats analyze` process: for reference.

The sizes take turns in steps 2 and 3 (one update of each, K rounds), so that a slow spell of
the machine weighs on every size alike.

Reported per size: the backfill's worker time, the median one-commit update's worker time (the
engine's own duration_ms) and its phases, and each size's median against the smallest size's,
measured in the same run. The targets (issue 8) are on the long-lived process's updates: at
most 1.5x the smallest size's, and at most 300 ms, at 400,000 commits. A new process per update
also pays the libraries' first use (allocations touched for the first time, kernels set up),
which grows with the size of the state it reads; its median is shown beside.
Each update must add exactly one commit and remove none, and blame the one file it changed over
that commit alone (checked: correctness, not timing).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from contract.documents import Phase
from tests.benchmarks._common import (
    bench_env,
    describe_machine,
    discard_unless_kept,
    git,
    median,
    say,
    secs,
    table,
)
from tests.benchmarks.bench_incremental import Run, _analyze, _commit_one, _pick_file
from tests.benchmarks.make_repo import build

TARGET_RATIO = 1.5
TARGET_S = 0.300


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated commit counts") from None
    if not sizes or sizes[0] < 2:
        raise argparse.ArgumentTypeError("every size must be at least 2 commits")
    return sizes


@dataclass
class Update:
    """One one-commit update: the engine's duration_ms and seconds per phase."""

    inner_s: float
    phases: dict[str, float]


@dataclass
class Measured:
    full: Run  # the backfill
    updates: list[Update]  # in the long-lived process
    fresh: list[Run]  # each in a new process


def _check(added: int, removed: int, n: int) -> None:
    # Correctness, not timing: a one-commit push must extract exactly that commit.
    if added != 1 or removed != 0:
        raise SystemExit(
            f"update {n}: the engine added {added} and removed {removed} commits; "
            "expected exactly 1 added and 0 removed"
        )


def _check_blamed(blamed: int, whole: int, n: int) -> None:
    # The push changes one file: provenance blames that file over the new commit and carries
    # the rest of its lines from the stored rows (worker/engine/provenance.py), no history walk.
    if blamed != 1 or whole != 0:
        raise SystemExit(
            f"update {n}: provenance blamed {blamed} files, {whole} of them whole; "
            "expected the changed file only, over the new commit"
        )


# A size's folders, each named with its size.
KINDS = ("repo", "storage", "work")


class _Subject:
    """One size's repository, storage and work dir, and its long-lived engine process."""

    def __init__(self, base: Path, size: int) -> None:
        self.size = size
        self.repo, self.storage, self.work = (base / f"{kind}-{size}" for kind in KINDS)
        self.updates: list[Update] = []
        self.fresh: list[Run] = []
        self.worker: subprocess.Popen[str] | None = None

    def prepare(self, interval: float) -> Run:
        say(f"{self.size:,} commits: generating")
        build(self.repo, self.size, branches=0, seed=1, shape="small")
        say(f"{self.size:,} commits: full backfill")
        full = _analyze(str(self.repo), self.storage, self.work, interval)
        self.path = _pick_file(self.repo, None)
        # The generated history's dates run past today at the larger sizes (an hour apart on
        # average): each update is dated after the history's last commit, as a real push is,
        # so that the default head moves forward in time as it does on a real repository.
        self.last = int(git("log", "-1", "--format=%ct", cwd=self.repo))
        self.n = 0
        return full

    def _commit(self) -> int:
        self.n += 1
        _commit_one(self.repo, self.path, self.n, when=self.last + self.n * 600)
        return self.n

    def update_in_worker(self) -> None:
        if self.worker is None:
            argv = [sys.executable, "-m", "tests.benchmarks.push_worker"]
            argv += [str(self.repo), str(self.storage), str(self.work)]
            self.worker = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=bench_env(), text=True
            )
        assert self.worker.stdin is not None and self.worker.stdout is not None
        n = self._commit()
        self.worker.stdin.write("run\n")
        self.worker.stdin.flush()
        answer = json.loads(self.worker.stdout.readline() or "null")
        if answer is None:
            raise SystemExit(f"update {n}: the engine process ended (exit {self.worker.wait()})")
        _check(answer["commits_added"], answer["commits_removed"], n)
        _check_blamed(answer["files_blamed"], answer["files_blamed_whole"], n)
        self.updates.append(Update(answer["duration_ms"] / 1000, answer["phases"]))

    def update_in_new_process(self, interval: float) -> None:
        n = self._commit()
        run = _analyze(str(self.repo), self.storage, self.work, interval)
        _check(run.commits_added, run.commits_removed, n)
        self.fresh.append(run)

    def close(self) -> None:
        if self.worker is not None:
            assert self.worker.stdin is not None
            self.worker.stdin.close()
            self.worker.wait()
            self.worker = None


def measure(base: Path, sizes: list[int], updates: int, interval: float) -> dict[int, Measured]:
    """Each size backfilled, then `updates` rounds of one update per size in its long-lived
    process, then as many in new processes: the sizes take turns, so that what slows the
    machine down for a while slows them alike."""
    subjects = [_Subject(base, size) for size in sizes]
    backfills = {subject.size: subject.prepare(interval) for subject in subjects}
    try:
        # A warm-up round first, not reported: the service's worker has run the engine before.
        for subject in subjects:
            subject.update_in_worker()
            subject.updates.clear()
        for _ in range(updates):
            for subject in subjects:
                subject.update_in_worker()
    finally:
        for subject in subjects:
            subject.close()
    for _ in range(updates):
        for subject in subjects:
            subject.update_in_new_process(interval)
    for subject in subjects:
        middle = median([u.inner_s for u in subject.updates])
        say(f"{subject.size:,} commits: update median {secs(middle)}")
    return {s.size: Measured(backfills[s.size], s.updates, s.fresh) for s in subjects}


def _phases(updates: list[Update]) -> str:
    """Median and largest seconds per phase over `updates`."""
    names = [p.value for p in Phase if any(p.value in u.phases for u in updates)]
    rows = [["phase", "median", "max"]]
    for name in names:
        values = [u.phases.get(name, 0.0) for u in updates]
        rows.append([name, secs(median(values)), secs(max(values))])
    return table(rows)


def report(results: dict[int, Measured]) -> str:
    sizes = sorted(results)
    base_median = median([u.inner_s for u in results[sizes[0]].updates])
    base_fresh = median([r.inner_s for r in results[sizes[0]].fresh])
    rows = [
        [
            "commits",
            "backfill",
            "update, median",
            "update, max",
            f"/ {sizes[0]:,}",
            "new process, median",
            f"/ {sizes[0]:,}",
        ]
    ]
    for size in sizes:
        measured = results[size]
        inner = [u.inner_s for u in measured.updates]
        fresh = median([r.inner_s for r in measured.fresh])
        rows.append(
            [
                f"{size:,}",
                secs(measured.full.inner_s),
                secs(median(inner)),
                secs(max(inner)),
                f"{median(inner) / base_median:.2f}x",
                secs(fresh),
                f"{fresh / base_fresh:.2f}x",
            ]
        )
    largest = median([u.inner_s for u in results[sizes[-1]].updates])
    ratio = largest / base_median
    out = [
        "gitstats benchmark: a one-commit push's worker time as history grows",
        f"machine:    {describe_machine()}",
        "repository: make_repo --shape small (one line of one small file per commit), "
        "generated with git fast-import; worker time is the engine's duration_ms, the updates "
        "run in one long-lived process (as the worker runs them), then each in a new one",
        "",
        table(rows),
        "",
        f"largest / smallest: {ratio:.2f}x (target <= {TARGET_RATIO}x: "
        f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}); "
        f"at {sizes[-1]:,}: {secs(largest)} (target <= {secs(TARGET_S)}: "
        f"{'met' if largest <= TARGET_S else 'NOT met'})",
    ]
    for size in sizes:
        out += ["", f"phases of the updates at {size:,} commits:", _phases(results[size].updates)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_push_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", type=_sizes, default=[4000, 40000, 400000])
    parser.add_argument("--updates", type=int, default=5, help="one-commit updates per size")
    parser.add_argument("--tmp", type=Path, help="where to put the temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--interval-ms", type=float, default=20, help="memory sampling period")
    args = parser.parse_args(argv)
    if args.updates < 1:
        parser.error("--updates must be at least 1")
    base = Path(tempfile.mkdtemp(prefix="gitstats-bench-push-cost-", dir=args.tmp))
    try:
        results = measure(base, args.sizes, args.updates, args.interval_ms / 1000)
        print(report(results))
    finally:
        discard_unless_kept(base, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
