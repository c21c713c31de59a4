"""Reading the exported documents back, and comparing them with run timestamps left out."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from contract import layout
from contract.documents import CODEBASE_DOCUMENTS, contributor_activity_row, weeks_digest
from contract.storage import Storage
from contract.storage.local import LocalStorage
from worker.engine.pipeline import analyze_codebase

# What legitimately differs between two runs over the same history.
RUN_TIMESTAMPS = {"generated_at", "updated_at", "last_run", "last_success_at"}


async def read_documents(
    storage: Storage, codebase_id: int, names: Iterable[str] = CODEBASE_DOCUMENTS
) -> dict[str, dict[str, Any]]:
    documents = {}
    for name in names:
        stored = await storage.get(layout.codebase_document(codebase_id, name))
        assert stored is not None, f"{name} was not written"
        documents[name] = json.loads(stored.data)
        if name == "contributor_activity":
            documents[name] = await with_weeks(storage, codebase_id, documents[name])
    return documents


async def with_weeks(storage: Storage, codebase_id: int, index: dict[str, Any]) -> dict[str, Any]:
    """The contributor_activity document the read API answers, from the stored index and the
    weeks objects it names (each checked against its name)."""
    rows = []
    for entry in index["contributors"]:
        digest = entry["weeks_sha256"]
        stored = await storage.get(layout.contributor_weeks(codebase_id, digest))
        assert stored is not None, f"the weeks {digest} were not written"
        assert weeks_digest(stored.data) == digest
        rows.append(contributor_activity_row(entry, json.loads(stored.data)))
    return index | {"contributors": rows}


def without_run_timestamps(documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: {k: v for k, v in doc.items() if k not in RUN_TIMESTAMPS}
        for name, doc in documents.items()
    }


async def assert_equals_a_clean_run(
    storage: Storage,
    codebase_id: int,
    source: Path,
    root: Path,
    full_name: str | None = None,
    **options: Any,
) -> None:
    """Every document of `codebase_id` in `storage` is what one run of the engine over `source`
    from nothing writes (timestamps aside; of the status, the branch heads it accounts for).
    `options` go to that run as to the runs that wrote `storage` (email_mode, bot_authors)."""
    clean = LocalStorage(root / "clean-storage")
    await analyze_codebase(
        str(source), clean, codebase_id, root / "clean-work", full_name=full_name, **options
    )
    ours = without_run_timestamps(await read_documents(storage, codebase_id))
    theirs = without_run_timestamps(await read_documents(clean, codebase_id))
    assert ours.pop("status")["refs"] == theirs.pop("status")["refs"]
    assert ours == theirs
    # No weeks object but those the index names (a run that failed may have written others).
    prefix = layout.contributor_weeks_objects(codebase_id)
    assert await storage.list(prefix) == await clean.list(prefix)
