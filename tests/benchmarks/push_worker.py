"""A long-lived engine process for the push-cost benchmark, as the service's worker is one.

    python -m tests.benchmarks.push_worker SOURCE STORAGE WORK_DIR

Each line read from stdin runs the engine once on SOURCE (codebase 1, a local storage folder)
and answers one line of JSON: the run's duration_ms, commits added and removed, and seconds per
phase. End of input ends it. The engine keeps nothing in memory from one run to the next; what
a long-lived process saves over one started per push is the interpreter, the imports and the
libraries' first use, which the worker pays once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from contract.storage.local import LocalStorage
from worker.engine.pipeline import analyze_codebase


async def serve(source: str, storage: Path, work: Path) -> None:
    store = LocalStorage(storage)
    for _line in sys.stdin:
        result = await analyze_codebase(source, store, 1, work, trigger="benchmark")
        answer = {
            "duration_ms": result.duration_ms,
            "commits_added": result.commits_added,
            "commits_removed": result.commits_removed,
            "phases": {phase.value: seconds for phase, seconds in result.phase_seconds.items()},
        }
        print(json.dumps(answer), flush=True)


def main() -> None:
    source, storage, work = sys.argv[1:4]
    asyncio.run(serve(source, Path(storage), Path(work)))


if __name__ == "__main__":
    main()
