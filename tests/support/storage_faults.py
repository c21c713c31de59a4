"""Storage that fails on purpose: a local folder that refuses chosen writes."""

from __future__ import annotations

from pathlib import Path

from contract.storage import StorageError
from contract.storage.local import LocalStorage


class RefusingStorage(LocalStorage):
    """A local folder whose writes to keys ending in `suffix` fail `times` times."""

    def __init__(self, root: Path, suffix: str, times: int = 1) -> None:
        super().__init__(root)
        self.suffix, self.times = suffix, times

    def _refuse(self, key: str) -> None:
        if key.endswith(self.suffix) and self.times > 0:
            self.times -= 1
            raise StorageError(f"injected: writing {key} in {self.root} failed")

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> str:
        self._refuse(key)
        return await super().put(key, data, content_type)

    async def put_if(
        self, key: str, data: bytes, etag: str | None, content_type: str = "application/json"
    ) -> str:
        self._refuse(key)
        return await super().put_if(key, data, etag, content_type)
