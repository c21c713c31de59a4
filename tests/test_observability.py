"""What a worker tells its operators: its own GET /metrics (jobs by name and outcome, sync
duration and phases, push-to-fresh latency, the queue depth), and log lines, as text or one JSON
object each, that carry the codebase and job they concern."""

from __future__ import annotations

import io
import json
import logging
import socket
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from contract.documents import Phase
from contract.logs import ContextFilter, JsonFormatter, log_context
from tests.support.jobs import HookedStorage, Org, write_every_phase


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text answer, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_a_worker_serves_its_metrics(
    synced: Org, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = synced
    write_every_phase(monkeypatch)
    port = free_port()
    org.config = org.config.model_copy(update={"worker_metrics_port": port})
    scraped: list[str] = []

    async def scrape() -> None:
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            scraped.append(await response.text())

    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(ContextFilter())
    org.repos[0].commit({"more.py": "more\n"})
    job_id = await org.push(0)
    worker = await org.run_worker(HookedStorage(tmp_path / "storage", "aggregate", scrape))

    during = samples(scraped[0])  # served while the sync ran
    assert during[("gitstats_queue_depth", (("queue", "arq:queue"),))] == 1
    after = samples(generate_latest(worker.ctx["metrics"].registry).decode())
    job = (("job", "sync_codebase"), ("outcome", "succeeded"))
    assert after[("gitstats_jobs_total", job)] == 1
    assert after[("gitstats_sync_seconds_count", ())] == 1
    assert after[("gitstats_push_to_fresh_seconds_count", ())] == 1
    phases = {
        dict(labels)["phase"]
        for (name, labels) in after
        if name == "gitstats_sync_phase_seconds_count"
    }
    assert phases == {phase.value for phase in Phase}

    # Every line logged inside the job (not the worker's start and stop) names it.
    outside = {"worker.main", "worker.jobs.metrics"}
    ours = [r for r in caplog.records if r.name.startswith("worker.") and r.name not in outside]
    assert ours and all(getattr(r, "job_id", None) == job_id for r in ours)
    assert all(getattr(r, "codebase_id", None) == org.id(0) for r in ours)


def test_json_lines_carry_the_context() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("gitstats.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with log_context(delivery_id="d-1", codebase_id=42, job_id="sync:42:7"):
            logger.warning("synced %s", "acme/widgets")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("outside")
    finally:
        logger.removeHandler(handler)

    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "synced acme/widgets"
    assert (first["delivery_id"], first["codebase_id"], first["job_id"]) == ("d-1", 42, "sync:42:7")
    assert first["level"] == "WARNING" and first["time"].endswith("+00:00")
    assert "delivery_id" not in second and "ValueError: boom" in second["exception"]
