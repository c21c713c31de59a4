"""`gitstats`: the engine on the command line, with no Redis and no GitHub."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from contract import layout
from contract.documents import CODEBASE_DOCUMENTS, EmailMode, Phase
from contract.settings import Settings, split_commas
from contract.storage import StorageError, open_storage
from worker.engine.errors import EngineError, redact
from worker.engine.fetch import NetworkTimeouts
from worker.engine.pipeline import ProgressCallback, RunResult, analyze_codebase


def _positive(text: str) -> int:
    """A codebase id: GitHub's repository ids are positive, and so are ours."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not a positive number")
    return number


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gitstats", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser(
        "analyze",
        help="analyze a repository (path or URL) into storage; incremental on a second run",
    )
    analyze.add_argument("source", help="a local repository (bare or not) or a git URL")
    analyze.add_argument(
        "--storage", required=True, help="a folder, file:///path or s3://bucket/prefix"
    )
    analyze.add_argument(
        "--codebase-id", required=True, type=_positive, help="the codebase's numeric id (1 or more)"
    )
    analyze.add_argument("--name", help="owner/repo shown in the documents")
    analyze.add_argument("--work-dir", type=Path, default=settings.work_dir, help="clone cache")
    analyze.add_argument(
        "--email-mode", type=EmailMode, choices=list(EmailMode), default=settings.email_mode
    )
    analyze.add_argument(
        "--bot-authors",
        type=split_commas,
        default=settings.bot_authors,
        metavar="GLOBS",
        help="comma-separated globs of bots' names or emails (default $BOT_AUTHORS)",
    )
    analyze.add_argument("--s3-endpoint-url", default=settings.s3_endpoint_url)
    analyze.add_argument("--quiet", action="store_true", help="no progress bar")
    serve = commands.add_parser(
        "serve",
        help="run the web app and a worker on this machine (embedded Valkey if no REDIS_URL)",
    )
    serve.add_argument(
        "--demo", metavar="PATH", help="first analyze this repository so there is data to see"
    )
    serve.add_argument("--port", type=int, help="the web app's port (default $PORT or 8080)")
    return parser


class _ProgressBar:
    """A tqdm bar per phase, only on a terminal."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bar: tqdm | None = None
        self._phase: Phase | None = None

    def __call__(self, phase: Phase, done: int, total: int) -> None:
        if phase != self._phase or self._bar is None:
            self.close()
            self._phase = phase
            self._bar = self._tqdm(total=total, desc=phase, unit=" commits", leave=False)
        bar = self._bar
        bar.update(done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


async def _analyze(args: argparse.Namespace, timeouts: NetworkTimeouts) -> RunResult:
    storage = open_storage(args.storage, args.s3_endpoint_url)
    progress: ProgressCallback | None = None
    bar = None
    if not args.quiet and sys.stderr.isatty():
        bar = _ProgressBar()
        progress = bar
    try:
        await storage.check_writable()
        return await analyze_codebase(
            args.source,
            storage,
            args.codebase_id,
            args.work_dir,
            full_name=args.name,
            email_mode=args.email_mode,
            bot_authors=tuple(args.bot_authors),
            timeouts=timeouts,
            on_progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
        await storage.close()


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings()
    args = _parser(settings).parse_args(argv)
    if args.command == "serve":
        from worker.serve import serve

        try:
            return serve(args.demo, args.port)
        except (EngineError, StorageError) as exc:
            print(f"gitstats: error: {redact(str(exc))}", file=sys.stderr)
            return 1
    try:
        timeouts = NetworkTimeouts(settings.fetch_connect_timeout_s, settings.fetch_io_timeout_s)
        result = asyncio.run(_analyze(args, timeouts))
    except (EngineError, StorageError) as exc:
        print(f"gitstats: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    where = args.storage.rstrip("/")
    resumed = (
        f" ({result.commits_resumed} of them extracted by an interrupted run)"
        if result.commits_resumed
        else ""
    )
    print(
        f"codebase {args.codebase_id}: {result.commits_added} commits added{resumed}, "
        f"{result.commits_removed} removed in {result.duration_ms} ms"
    )
    for name in CODEBASE_DOCUMENTS:
        print(f"  {where}/{layout.codebase_document(args.codebase_id, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
