"""What the benchmarks share: running a command while sampling the memory of its whole process
tree (and, for the engine, which phase it is in), git in an isolated environment, and formatting.

Nothing here asserts a time: a benchmark prints measurements and ratios to a baseline measured in
the same run, and the reader judges them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contract.documents import Phase
from tests.support.gitrepos import git_env

# The engine's phases in the order they run, as its status document names them, plus the
# interpreter's start and exit around them.
PHASE_ORDER = ["startup", *Phase, "exit"]


def say(text: str) -> None:
    """Progress for the reader, on stderr, so that stdout holds only the report."""
    print(text, file=sys.stderr, flush=True)


def discard_unless_kept(base: Path, keep: bool) -> None:
    """Remove a benchmark's temporary folder, or say where it was kept (--keep)."""
    if keep:
        say(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


# The engine's command line, as installed next to this interpreter (the project's virtualenv).
_GITSTATS = Path(sys.executable).with_name("gitstats")
ENGINE: list[str] = [str(_GITSTATS)] if _GITSTATS.exists() else [sys.executable, "-m", "worker.cli"]

SAMPLE_INTERVAL_S = 0.05  # memory
STATUS_POLL_S = 0.005  # the engine's status document (its phase)
_STARTUP = "startup"  # from the spawn of the engine to its first status document
_EXIT = "exit"  # from its last status document (succeeded) to the exit of the process


# -- processes ------------------------------------------------------------------------------


def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def _tree(pid: int) -> list[int]:
    """`pid` and every descendant still alive, from /proc/<pid>/task/*/children.

    A child that has not yet called exec (its command line still its parent's) is left out: it
    is the moment between a fork (or vfork) and the exec of a subprocess, whose pages are its
    parent's (shared copy-on-write, or the very same with vfork), and counting them again would
    add a phantom copy of the parent to the sum."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        children: list[int] = []
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    children.extend(int(c) for c in f.read().split())
            except OSError:
                pass
        if children:
            own = _cmdline(p)
            todo.extend(c for c in children if _cmdline(c) != own)
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of one process in KiB; (0, 0) once it is gone or a zombie."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
                    break
    except OSError:
        pass
    return rss, anon


@dataclass
class PhaseSpan:
    name: str
    start_s: float  # since the spawn of the process
    end_s: float = 0.0
    peak_rss_kib: int = 0  # of the whole tree while in this phase

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Measurement:
    argv: list[str]
    wall_s: float
    returncode: int
    # The kernel's high-water mark of the largest single process of the tree (wait4's
    # ru_maxrss covers the child and every descendant it waited for): exact, never summed.
    max_single_rss_kib: int
    # Sampled every `interval`: the peak of the sum over every live process of the tree. RSS
    # counts pages shared between processes (libraries, mmapped packs) once per process;
    # RssAnon (heap, private) hardly overlaps, so both are given.
    tree_peak_rss_kib: int = 0
    tree_peak_anon_kib: int = 0
    tree_peak_processes: int = 0
    at_peak: list[int] = field(default_factory=list)  # each process's RSS at the summed peak
    samples: int = 0
    phases: list[PhaseSpan] = field(default_factory=list)
    stdout_bytes: int = 0
    stdout_lines: int = 0
    stdout: bytes = b""
    stderr: bytes = b""

    def check(self) -> Measurement:
        if self.returncode != 0:
            shown = " ".join(self.argv)
            raise SystemExit(
                f"{shown}\nexited {self.returncode}:\n{self.stderr.decode(errors='replace')}"
            )
        return self

    def phase_seconds(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for span in self.phases:
            totals[span.name] = totals.get(span.name, 0.0) + span.seconds
        return totals


class _Sampler(threading.Thread):
    """Samples the summed memory of a process tree and, optionally, the engine's status
    document (its `phase`), until stopped."""

    def __init__(self, pid: int, started: float, interval: float, status_path: Path | None) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.started = started
        self.interval = interval
        self.status_path = status_path
        self.stopping = threading.Event()
        self.peak_rss = self.peak_anon = self.peak_procs = self.samples = 0
        self.at_peak: list[int] = []
        self.phases: list[PhaseSpan] = []
        self._status_seen: tuple[int, int] | None = self._status_stamp()

    def _status_stamp(self) -> tuple[int, int] | None:
        if self.status_path is None:
            return None
        try:
            st = os.stat(self.status_path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def _poll_status(self, now: float) -> bool:
        """Whether the engine entered a new phase."""
        stamp = self._status_stamp()
        if stamp is None or stamp == self._status_seen:
            return False
        self._status_seen = stamp
        try:
            doc = json.loads(Path(self.status_path).read_bytes())  # type: ignore[arg-type]
        except (OSError, ValueError):
            return False
        state = doc.get("state")
        if state == "running":
            name = doc.get("phase") or "running"
        elif state == "succeeded":
            name = _EXIT
        else:
            name = str(state)
        return self._enter(name, now)

    def _enter(self, name: str, now: float) -> bool:
        if self.phases and self.phases[-1].name == name:
            return False
        if self.phases:
            self.phases[-1].end_s = now
        self.phases.append(PhaseSpan(name, now))
        return True

    def run(self) -> None:
        # The status document is polled more often than memory is sampled: a stat() is cheap, and
        # a phase shorter than the poll period is missed (its time counts in the phase before).
        tick = min(self.interval, STATUS_POLL_S) if self.status_path else self.interval
        next_sample = 0.0
        if self.status_path is not None:
            self._enter(_STARTUP, 0.0)
        while True:
            now = time.perf_counter() - self.started
            entered = self.status_path is not None and self._poll_status(now)
            if entered or now >= next_sample:
                next_sample = now + self.interval
                self._sample()
            if self.stopping.wait(tick):
                return

    def _sample(self) -> None:
        per_process = [_memory_kib(p) for p in _tree(self.pid)]
        rss = sum(r for r, _ in per_process)
        anon = sum(a for _, a in per_process)
        self.samples += 1
        if rss > self.peak_rss:
            self.peak_rss = rss
            self.at_peak = sorted((r for r, _ in per_process if r), reverse=True)
        self.peak_anon = max(self.peak_anon, anon)
        self.peak_procs = max(self.peak_procs, sum(1 for r, _ in per_process if r))
        if self.phases:
            span = self.phases[-1]
            span.peak_rss_kib = max(span.peak_rss_kib, rss)

    def finish(self, end: float) -> list[PhaseSpan]:
        self.stopping.set()
        self.join()
        if self.status_path is not None:
            self._poll_status(end)  # the last write may have landed after the last tick
        if self.phases:
            self.phases[-1].end_s = end
        return self.phases


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str | bytes] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    count_stdout: bool = False,
    status_path: Path | None = None,
    interval: float = SAMPLE_INTERVAL_S,
) -> Measurement:
    """Run `argv` to completion: its wall time, its memory, and (with `status_path`, the
    engine's status document) the phases it went through.

    With `count_stdout` the output is read through a pipe and only counted (bytes, lines);
    otherwise it goes to a temporary file and is kept.
    """
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if count_stdout else out,
            stderr=err,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        sampler = _Sampler(proc.pid, started, interval, status_path)
        sampler.start()
        n_bytes = n_lines = 0
        if count_stdout:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(1 << 20):
                n_bytes += len(chunk)
                n_lines += chunk.count(b"\n")
            proc.stdout.close()
        _, wait_status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        phases = sampler.finish(wall)
        err.seek(0)
        out.seek(0)
        return Measurement(
            argv=list(argv),
            wall_s=wall,
            returncode=proc.returncode,
            max_single_rss_kib=usage.ru_maxrss,
            tree_peak_rss_kib=sampler.peak_rss,
            tree_peak_anon_kib=sampler.peak_anon,
            tree_peak_processes=sampler.peak_procs,
            at_peak=sampler.at_peak,
            samples=sampler.samples,
            phases=phases,
            stdout_bytes=n_bytes,
            stdout_lines=n_lines,
            stdout=out.read(),
            stderr=err.read(),
        )


# -- command line -----------------------------------------------------------------------------


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    file_url_gives: str,
    sampled: str,
    interval_ms: int,
) -> None:
    """The options every benchmark takes: REPO, --file-url, --tmp, --keep and --interval-ms.
    Added after a script's own options, so that its help lists them last.

    `file_url_gives` is what --file-url gives the engine instead of the path, `sampled` what is
    sampled every --interval-ms, and `interval_ms` that period's default.
    """
    parser.add_argument("repo", help="a local git repository (bare or not); never written to")
    parser.add_argument(
        "--file-url",
        action="store_true",
        help=f"give the engine {file_url_gives}: it then fetches through a transport, "
        "as from a remote, instead of whatever shortcut it takes for a local path",
    )
    parser.add_argument("--tmp", type=Path, help="where to put the temporary folders")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--interval-ms",
        type=float,
        default=interval_ms,
        help=f"{sampled} sampling period (default {interval_ms})",
    )


# -- git and the engine -----------------------------------------------------------------------


def bench_env() -> dict[str, str | bytes]:
    """The environment of every git and engine process: no user or system git configuration."""
    return git_env()


def git(*args: str, cwd: str | os.PathLike[str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=bench_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8", "surrogateescape").strip()


def check_repository(path: str) -> str:
    """`path` resolved, refusing anything that is not a git repository with branches."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise SystemExit(f"{path}: no such file or directory")
    git("rev-parse", "--git-dir", cwd=resolved)
    if not git("for-each-ref", "--count=1", "refs/heads/", cwd=resolved):
        raise SystemExit(f"{path}: no branches")
    return str(resolved)


def count_history(repo: str | os.PathLike[str]) -> tuple[int, int]:
    """(commits reachable from a branch, branches): the engine's commit set, as git counts it."""
    commits = int(git("rev-list", "--branches", "--count", cwd=repo))
    branches = len(git("for-each-ref", "--format=%(refname)", "refs/heads/", cwd=repo).split())
    return commits, branches


def git_dir(repo: str | os.PathLike[str]) -> Path:
    return Path(git("rev-parse", "--absolute-git-dir", cwd=repo))


def is_partial_clone(repo: str | os.PathLike[str]) -> bool:
    """Whether the repository may lack objects that its refs reach: a partial clone (a promisor
    pack, or extensions.partialClone set). Its branches can still be complete."""
    packs = git_dir(repo) / "objects" / "pack"
    if any(packs.glob("*.promisor")):
        return True
    config = subprocess.run(
        ["git", "config", "--get", "extensions.partialClone"],
        cwd=repo,
        env=bench_env(),
        capture_output=True,
        check=False,
    )
    return bool(config.stdout.strip())


def copy_branches(repo: str, dest: Path) -> None:
    """A bare copy of `repo` holding its branches and the tags that point into them, packed
    afresh by git (`clone --bare --no-local`): never linked to `repo`, complete even when `repo`
    is a partial clone whose other refs (pull requests, notes) miss objects."""
    git("clone", "-q", "--bare", "--no-local", repo, str(dest))


def warm_page_cache(repo: str) -> int:
    """Read every file of the repository's object store once (read only), so that the first
    timed run does not pay for the disk while the later ones read from memory. Returns bytes."""
    total = 0
    for root, _, files in os.walk(git_dir(repo) / "objects"):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as f:
                    while chunk := f.read(1 << 22):
                        total += len(chunk)
            except OSError:
                pass
    return total


def analyze_argv(source: str, storage: Path, work_dir: Path, codebase_id: int = 1) -> list[str]:
    return [
        *ENGINE,
        "analyze",
        source,
        "--storage",
        str(storage),
        "--codebase-id",
        str(codebase_id),
        "--work-dir",
        str(work_dir),
        "--quiet",
    ]


def status_path(storage: Path, codebase_id: int = 1) -> Path:
    return storage / "analytics" / str(codebase_id) / "status.json"


def read_last_run(storage: Path, codebase_id: int = 1) -> dict:
    doc = json.loads(status_path(storage, codebase_id).read_bytes())
    if doc.get("state") != "succeeded" or not doc.get("last_run"):
        raise SystemExit(f"the engine's status is not a success: {doc}")
    return doc["last_run"]


# -- formatting -------------------------------------------------------------------------------


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def secs(s: float) -> str:
    return f"{s:,.3f} s" if s < 10 else f"{s:,.1f} s"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(rows: Sequence[Sequence[str]], indent: str = "  ", left: Sequence[int] = (0,)) -> str:
    """Columns padded to their widest cell: those in `left` left-aligned, the others right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def describe_machine() -> str:
    cpus = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return f"{cpus} CPUs, {mib(mem_kib)} RAM, {git('--version')}, Python {sys.version.split()[0]}"
