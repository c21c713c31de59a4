"""Reading the exported documents back, and comparing them with run timestamps left out."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from contract import layout
from contract.documents import CODEBASE_DOCUMENTS
from contract.storage import Storage

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
    return documents


def without_run_timestamps(documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: {k: v for k, v in doc.items() if k not in RUN_TIMESTAMPS}
        for name, doc in documents.items()
    }
