"""A long-lived engine process for the push-cost benchmark, as the service's worker is one.

    python -m tests.benchmarks.push_worker SOURCE STORAGE WORK_DIR

Each line read from stdin runs the engine once on SOURCE (codebase 1, a local storage folder)
and answers one line of JSON: the run's duration_ms, commits added and removed, files blamed (and
of those, blamed whole) and seconds per phase. End of input ends it. Like the service's worker,
the process keeps the state tables it last read or wrote in memory from one run to the next,
and pays the interpreter, the imports and the libraries' first use once.
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
            "files_blamed": result.files_blamed,
            "files_blamed_whole": result.files_blamed_whole,
            "phases": {phase.value: seconds for phase, seconds in result.phase_seconds.items()},
        }
        print(json.dumps(answer), flush=True)


def main() -> None:
    source, storage, work = sys.argv[1:4]
    asyncio.run(serve(source, Path(storage), Path(work)))


if __name__ == "__main__":
    main()
