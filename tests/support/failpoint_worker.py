"""`python -m tests.support.failpoint_worker`: the worker (`python -m worker`), stopping once at a
chosen point of a sync run, so that a test can kill it exactly there or change the world under it.

- `GITSTATS_TEST_PAUSE_AT`: a phase (`fetch` … `export`): the run stops right after entering
  it, its status saying so; or `publish`: after the run's commit, before its documents are
  published; or `checkpoint`: after the first checkpoint of an extraction that holds at least
  half of its commits.
- `GITSTATS_TEST_PAUSE_DIR`: the worker writes `paused` there (holding where it stopped) when it
  stops, and goes on once a file `resume` appears there.

Only the first run to reach the point stops; everything else is the deployed worker, unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from contract.documents import Phase
from worker.engine import pipeline
from worker.main import run_worker

PAUSE_AT = "GITSTATS_TEST_PAUSE_AT"
PAUSE_DIR = "GITSTATS_TEST_PAUSE_DIR"
PUBLISH = "publish"
POINTS = [*(phase.value for phase in Phase), PUBLISH]
# Reached only by an extraction long enough to checkpoint: not one of the points of every sync.
HALF_CHECKPOINTED = "checkpoint"

P = ParamSpec("P")
R = TypeVar("R")


class Failpoint:
    def __init__(self, where: str, folder: Path) -> None:
        if where not in [*POINTS, HALF_CHECKPOINTED]:
            raise SystemExit(f"{PAUSE_AT}={where!r}: not one of {[*POINTS, HALF_CHECKPOINTED]}")
        self.where, self.folder, self.reached = where, folder, False

    async def reach(self, point: str) -> None:
        if point != self.where or self.reached:
            return
        self.reached = True
        (self.folder / "paused").write_text(point)
        resume = self.folder / "resume"
        while not resume.exists():
            await asyncio.sleep(0.02)

    def after(self, function: Callable[P, Awaitable[R]], point: Callable[..., str]) -> Any:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            result = await function(*args, **kwargs)
            await self.reach(point(*args, **kwargs))
            return result

        return wrapper

    def before(self, function: Callable[P, Awaitable[R]], point: str) -> Any:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            await self.reach(point)
            return await function(*args, **kwargs)

        return wrapper


def install(where: str, folder: Path) -> None:
    failpoint = Failpoint(where, folder)
    pipeline._Run.enter = failpoint.after(  # type: ignore[method-assign]
        pipeline._Run.enter, lambda run, phase, *rest, **kw: Phase(phase).value
    )
    pipeline._publish = failpoint.before(pipeline._publish, PUBLISH)
    pipeline.save_checkpoint = failpoint.after(
        pipeline.save_checkpoint,
        lambda run, parts, done, total: HALF_CHECKPOINTED if 2 * done >= total else "",
    )


if __name__ == "__main__":
    install(os.environ[PAUSE_AT], Path(os.environ[PAUSE_DIR]))
    run_worker()
