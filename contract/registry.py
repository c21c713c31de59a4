"""The registry: one entry per codebase under meta/codebases/, written by the worker."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel

from contract import layout
from contract.storage import Storage


class CodebaseEntry(BaseModel):
    codebase_id: int
    org_id: int
    org_login: str
    installation_id: int
    full_name: str
    clone_url: str
    default_branch: str | None = None
    archived: bool = False
    suspended: bool = False
    registered_at: datetime
    updated_at: datetime


async def read_entry(storage: Storage, codebase_id: int) -> CodebaseEntry | None:
    stored = await storage.get(layout.registry_entry(codebase_id))
    return CodebaseEntry.model_validate_json(stored.data) if stored else None


async def write_entry(storage: Storage, entry: CodebaseEntry) -> None:
    await storage.put(layout.registry_entry(entry.codebase_id), entry.model_dump_json().encode())


async def delete_entry(storage: Storage, codebase_id: int) -> None:
    await storage.delete(layout.registry_entry(codebase_id))


async def list_entries(storage: Storage) -> list[CodebaseEntry]:
    keys = await storage.list("meta/codebases/")
    stored = await asyncio.gather(*(storage.get(key) for key in keys))
    return [CodebaseEntry.model_validate_json(s.data) for s in stored if s is not None]
