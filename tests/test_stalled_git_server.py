"""A git server that stops answering costs a bounded wait, not a worker's thread for good
(libgit2 waits forever by default)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pygit2
import pytest

from worker.engine.errors import SourceError
from worker.engine.fetch import NetworkTimeouts, fetch_source, list_remote_branches

SHORT = NetworkTimeouts(connect_s=2.0, io_s=0.3)


@pytest.fixture
async def stalled_url() -> AsyncIterator[str]:
    """An HTTP address that accepts connections, reads what comes and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/acme/repo.git"
        for writer in held:
            writer.close()


async def test_a_fetch_from_a_stalled_server_fails_with_a_timeout(
    stalled_url: str, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="timed out"):
        await asyncio.to_thread(fetch_source, stalled_url, tmp_path / "mirror.git", None, SHORT)
    assert not (tmp_path / "mirror.git").exists()  # no half mirror left behind


async def test_listing_a_stalled_servers_branches_fails_with_a_timeout(
    stalled_url: str, tmp_path: Path
) -> None:
    pygit2.init_repository(str(tmp_path / "scratch.git"), bare=True)
    with pytest.raises(SourceError, match="timed out"):
        await asyncio.to_thread(
            list_remote_branches, stalled_url, tmp_path / "scratch.git", None, SHORT
        )


def test_the_default_timeouts_are_bounded() -> None:
    NetworkTimeouts().apply()
    assert 0 < pygit2.settings.server_connect_timeout <= 60_000
    assert 0 < pygit2.settings.server_timeout <= 600_000
