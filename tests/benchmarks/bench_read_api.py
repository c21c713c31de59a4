"""The read API's throughput against a bare aiohttp handler returning the same bytes (wrk).

    python -m tests.benchmarks.bench_read_api [--repo PATH] [--duration S] [--connections N]
                                              [--threads T] [--rounds R] [--warmup S]
                                              [--tmp DIR] [--keep]

Needs wrk on PATH (`apt-get install wrk`). REPO (default: this project's checkout) is only read:
`worker.serve.publish_demo` analyzes it into a fresh storage folder as codebase 1 of the org
'local', registry entry and org files included. Then, each as one process on a loopback port:

  (a) the web app, `python -m service` (STORAGE_URL that folder, REDIS_URL an embedded Valkey,
      ADMIN_TOKENS a random token), as the Procfile's `web` line runs it;
  (b) `bare_app.py`, a bare aiohttp app whose handlers answer the very bytes and Content-Type that
      (a) answered for the overview and the org summary, fetched from (a) first;
  (b+log) the same bare app with aiohttp's access log on (a line per request, as (a) writes
      with ACCESS_LOG=true): informative only.

wrk (`-t T -c N -d S --latency`, the same Authorization header everywhere) then runs, in every
round, against (b) the overview, (a) GET /api/v1/codebases/1/analytics/overview, (a) the same with
If-None-Match (the 304 path), (b+log) the overview, (b) the summary, (a) GET
/api/v1/orgs/local/analytics/summary: a and b alternate, so that drift on a shared machine hits
both. Each target gets one unreported warm-up run first. Reported: requests/s, wrk's latency
percentiles, the server's CPU time per request, and the ratios a / b against DESIGN's target
(>= 80 %, judged against the plain bare app). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks._common import (
    check_repository,
    describe_machine,
    discard_unless_kept,
    median,
    say,
    table,
)
from tests.benchmarks._web import (
    ROOT,
    Server,
    bare_argv,
    free_port,
    service_argv,
    service_env,
    start_server,
    verdict,
)

TARGET_RATIO = 0.80
OVERVIEW = "/api/v1/codebases/1/analytics/overview"
SUMMARY = "/api/v1/orgs/local/analytics/summary"
BARE_OVERVIEW = "/overview"
BARE_SUMMARY = "/summary"

_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_PERCENTILES = ("50%", "75%", "90%", "99%")


@dataclass(frozen=True)
class Target:
    key: str  # a short name for the tables
    label: str
    server: Server
    path: str
    headers: tuple[tuple[str, str], ...]
    status: int  # what every answer must be


@dataclass
class WrkRun:
    target: Target
    round: int
    requests: int
    seconds: float
    requests_per_s: float
    bytes_read: int
    latency_avg: float
    latency_max: float
    percentiles: dict[str, float]
    bad_status: int  # wrk's "Non-2xx or 3xx responses"
    socket_errors: int
    server_cpu_s: float
    wrk_cpu_s: float
    output: str

    @property
    def errors(self) -> int:
        return self.bad_status + self.socket_errors


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_wrk(output: str) -> dict:
    """What wrk --latency printed: totals, latency statistics and percentiles, errors."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise SystemExit(f"unexpected wrk output (no {pattern!r}):\n{output}")
        return match

    total = find(r"^\s*(\d+) requests in ([0-9.]+\w+), ([0-9.]+)([KMGTP]?)B read")
    latency = find(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)")
    percentiles = {p: _seconds(find(rf"^\s*{re.escape(p)}\s+(\S+)").group(1)) for p in _PERCENTILES}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "requests": int(total.group(1)),
        "seconds": _seconds(total.group(2)),
        "bytes_read": int(float(total.group(3)) * _BYTE_UNITS[total.group(4)]),
        "requests_per_s": float(find(r"^Requests/sec:\s+([0-9.]+)").group(1)),
        "latency_avg": _seconds(latency.group(1)),
        "latency_max": _seconds(latency.group(3)),
        "percentiles": percentiles,
        "bad_status": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
    }


def run_wrk(wrk: str, target: Target, args: argparse.Namespace, duration: int, n: int) -> WrkRun:
    argv = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "--latency",
    ]
    for name, value in target.headers:
        argv += ["-H", f"{name}: {value}"]
    argv.append(target.server.url(target.path))
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = target.server.cpu_seconds()
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 60, stdin=subprocess.DEVNULL
    )
    cpu_after = target.server.cpu_seconds()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"wrk exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    wrk_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    return WrkRun(
        target=target,
        round=n,
        server_cpu_s=cpu_after - cpu_before,
        wrk_cpu_s=wrk_cpu,
        output=proc.stdout,
        **parse_wrk(proc.stdout),
    )


def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:  # 304 and every 4xx/5xx land here
        return error.code, error.read(), dict(error.headers)


def check_target(target: Target) -> None:
    """One request as wrk sends it: the answer must have the target's status (wrk itself only
    counts answers of 400 and above, so a 200 where a 304 is expected would pass unseen)."""
    status, body, _ = fetch(target.server.url(target.path), dict(target.headers))
    if status != target.status:
        raise SystemExit(f"{target.key}: {status}, expected {target.status}: {body[:300]!r}")


def publish(repo: str, storage: Path, work: Path) -> float:
    """publish_demo(repo) into `storage`; its wall time."""
    from contract.settings import Settings
    from worker.serve import publish_demo

    settings = Settings(storage_url=str(storage), work_dir=work)
    started = time.perf_counter()
    asyncio.run(publish_demo(settings, repo))
    return time.perf_counter() - started


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us"


def _latency(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def report(
    runs: list[WrkRun],
    targets: list[Target],
    args: argparse.Namespace,
    repo: str,
    wrk_version: str,
    sizes: dict[str, int],
    publish_s: float,
) -> str:
    rows = [
        [
            "round",
            "target",
            "req/s",
            *(f"p{p[:-1]}" for p in _PERCENTILES),
            "max",
            "bytes/answer",
            "server CPU",
            "server CPU/req",
            "wrk CPU",
            "errors",
        ]
    ]
    for run in runs:
        rows.append(
            [
                str(run.round),
                run.target.key,
                f"{run.requests_per_s:,.0f}",
                *(_latency(run.percentiles[p]) for p in _PERCENTILES),
                _latency(run.latency_max),
                f"{run.bytes_read / max(run.requests, 1):,.0f} B",
                f"{100 * run.server_cpu_s / run.seconds:.0f} %",
                _us(run.server_cpu_s / max(run.requests, 1)),
                f"{100 * run.wrk_cpu_s / run.seconds:.0f} %",
                str(run.errors),
            ]
        )

    def of(key: str) -> list[WrkRun]:
        return [r for r in runs if r.target.key == key]

    comparisons = [
        ("a:overview", "b:overview", "overview, 200", True),
        ("a:summary", "b:summary", "org summary, 200", True),
        ("a:overview-304", "b:overview", "overview, 304 (If-None-Match) vs bare 200", False),
        ("a:overview", "b+log:overview", "overview, 200 vs bare with access log", False),
    ]
    ratio_rows = [
        [
            "",
            "a req/s (median)",
            "b req/s (median)",
            "a / b per round",
            "a / b (median)",
            "CPU/req b / a",
            f">= {100 * TARGET_RATIO:.0f} %",
        ]
    ]
    for a_key, b_key, label, judged in comparisons:
        a_runs, b_runs = of(a_key), of(b_key)
        per_round = [
            a.requests_per_s / b.requests_per_s for a, b in zip(a_runs, b_runs, strict=True)
        ]
        ratio = median(per_round)
        cpu_a = median([r.server_cpu_s / r.requests for r in a_runs])
        cpu_b = median([r.server_cpu_s / r.requests for r in b_runs])
        ratio_rows.append(
            [
                label,
                f"{median([r.requests_per_s for r in a_runs]):,.0f}",
                f"{median([r.requests_per_s for r in b_runs]):,.0f}",
                ", ".join(f"{100 * x:.1f} %" for x in per_round),
                f"{100 * ratio:.1f} %",
                f"{100 * cpu_b / cpu_a:.1f} %",
                verdict(ratio >= TARGET_RATIO) if judged else "(not judged)",
            ]
        )
    bad = [r for r in runs if r.errors]
    lines = [
        f"gitstats benchmark: read API vs a bare aiohttp handler returning the same bytes, {repo}",
        f"machine:  {describe_machine()}",
        f"wrk:      {wrk_version}; -t{args.threads} -c{args.connections} -d{args.duration}s "
        f"--latency, {args.rounds} round(s), a and b alternated, one {args.warmup} s warm-up "
        "per target (not reported)",
        f"storage:  publish_demo({repo}) in {publish_s:.1f} s: overview {sizes['overview']:,} B, "
        f"org summary {sizes['summary']:,} B (JSON bodies)",
        "(a):      python -m service, one process (aiohttp, default settings: access log off); "
        "local storage; embedded Valkey (not on the read path)",
        "(b):      tests/benchmarks/bare_app.py, one process: a handler per document answering "
        "its bytes and Content-Type, nothing else (no auth, ETag or cache headers); aiohttp's "
        "access log silent (no logging configured)",
        "(b+log):  the same, another process, with aiohttp's access log writing a line per "
        "request (to a file), as python -m service does with ACCESS_LOG=true",
        "targets:  " + "; ".join(f"{t.key} = {t.label}" for t in targets),
        f"NOTE:     wrk ({args.threads} threads), the server under test and everything else on "
        "the machine share its 2 cores: req/s is that of a server given what wrk leaves it, "
        "not of a dedicated core. Server CPU/req (from /proc) is the cost per request "
        "independent of that sharing.",
        "",
        table(rows, left=(0, 1)),
        "",
        "read API against the bare handler (DESIGN: >= 80 % of its requests/s):",
        table(ratio_rows),
        "",
        "CPU/req b / a: the bare handler's server CPU per request over ours, the ratio the "
        "throughputs would have on a core of their own.",
    ]
    if bad:
        lines += [
            "",
            "WARNING: runs with errors (non-2xx/3xx answers or socket errors): "
            + ", ".join(f"round {r.round} {r.target.key}: {r.errors}" for r in bad),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_read_api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--repo", default=str(ROOT), help="the repository to publish (default: this checkout)"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of a and b runs (2)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per target (2)")
    parser.add_argument("--tmp", type=Path, help="where to put the temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if min(args.duration, args.connections, args.threads, args.rounds) < 1 or args.warmup < 0:
        parser.error("--duration, --connections, --threads and --rounds must be at least 1")
    if args.connections < args.threads:
        parser.error("wrk needs at least as many connections as threads")

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not on PATH: install it (Debian, Ubuntu: apt-get install wrk)")
    version = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    wrk_version = (version.stdout or version.stderr).splitlines()[0].split(" Copyright")[0]

    repo = check_repository(args.repo)
    base = Path(tempfile.mkdtemp(prefix="gitstats-bench-read-api-", dir=args.tmp))
    try:
        storage, work = base / "storage", base / "work"
        say(f"publishing {repo} into {storage}")
        publish_s = publish(repo, storage, work)

        from contract.embedded_redis import embedded_redis

        token = secrets.token_urlsafe(24)
        auth = ("Authorization", f"Bearer {token}")
        with ExitStack() as stack:
            valkey = stack.enter_context(embedded_redis(base / "valkey"))
            port = free_port()
            env = service_env(
                storage_url=str(storage),
                redis_url=valkey.connection_url,
                admin_tokens=token,
                port=str(port),
                work_dir=str(base / "work-web"),
            )
            say(f"starting (a) python -m service on port {port}")
            ours = start_server(
                "(a) python -m service", service_argv(), port, base / "service.log", "/healthz", env
            )
            stack.callback(ours.stop)

            # What (b) must answer: (a)'s bytes and Content-Type, and (a) must really answer them.
            answers = {}
            for name, path in (("overview", OVERVIEW), ("summary", SUMMARY)):
                status, body, headers = fetch(ours.url(path), dict([auth]))
                if status != 200:
                    raise SystemExit(f"(a) GET {path}: {status} {body[:300]!r}")
                answers[name] = (body, headers["Content-Type"], headers["ETag"])
            etag = answers["overview"][2]
            status, body, _ = fetch(ours.url(OVERVIEW), {auth[0]: auth[1], "If-None-Match": etag})
            if status != 304:
                raise SystemExit(f"(a) GET {OVERVIEW} with If-None-Match: {status}, not 304")

            options = []
            for name, path in (("overview", BARE_OVERVIEW), ("summary", BARE_SUMMARY)):
                body_file = base / f"{name}.body"
                body_file.write_bytes(answers[name][0])
                options += ["--get", path, str(body_file), answers[name][1]]
            bare_port, logged_port = free_port(), free_port()
            say(f"starting (b) bare aiohttp app on port {bare_port}")
            bare = start_server(
                "(b) bare_app",
                bare_argv(bare_port, *options),
                bare_port,
                base / "bare.log",
                "/healthz",
            )
            stack.callback(bare.stop)
            say(f"starting (b+log) bare aiohttp app with access log on port {logged_port}")
            logged = start_server(
                "(b+log) bare_app --access-log",
                bare_argv(logged_port, *options, "--access-log"),
                logged_port,
                base / "bare-logged.log",
                "/healthz",
            )
            stack.callback(logged.stop)
            for server in (bare, logged):
                for name, path in (("overview", BARE_OVERVIEW), ("summary", BARE_SUMMARY)):
                    status, body, headers = fetch(server.url(path), dict([auth]))
                    if (status, body, headers["Content-Type"]) != (200, *answers[name][:2]):
                        raise SystemExit(f"{server.name} GET {path} does not answer what (a) does")

            targets = [
                Target(
                    "b:overview", f"bare GET {BARE_OVERVIEW}", bare, BARE_OVERVIEW, (auth,), 200
                ),
                Target("a:overview", f"GET {OVERVIEW}", ours, OVERVIEW, (auth,), 200),
                Target(
                    "a:overview-304",
                    "the same, If-None-Match: its ETag",
                    ours,
                    OVERVIEW,
                    (auth, ("If-None-Match", etag)),
                    304,
                ),
                Target(
                    "b+log:overview",
                    f"(b) with --access-log, GET {BARE_OVERVIEW}",
                    logged,
                    BARE_OVERVIEW,
                    (auth,),
                    200,
                ),
                Target("b:summary", f"bare GET {BARE_SUMMARY}", bare, BARE_SUMMARY, (auth,), 200),
                Target("a:summary", f"GET {SUMMARY}", ours, SUMMARY, (auth,), 200),
            ]
            for target in targets:
                check_target(target)
            if args.warmup:
                for target in targets:
                    say(f"warm-up {target.key}")
                    run_wrk(wrk, target, args, args.warmup, 0)
            runs = []
            for n in range(1, args.rounds + 1):
                for target in targets:
                    run = run_wrk(wrk, target, args, args.duration, n)
                    say(f"round {n} {target.key}: {run.requests_per_s:,.0f} req/s")
                    runs.append(run)
            for target in targets:
                check_target(target)
        sizes = {name: len(answer[0]) for name, answer in answers.items()}
        print(report(runs, targets, args, repo, wrk_version, sizes, publish_s))
    finally:
        discard_unless_kept(base, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
