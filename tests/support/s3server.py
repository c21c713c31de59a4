"""Fixtures: a real S3 protocol server (moto, server mode) on loopback, and storages on it."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aioboto3
import pytest
from moto.server import ThreadedMotoServer

from contract.storage.local import LocalStorage
from contract.storage.s3 import S3Storage

# Everything that could point boto at real AWS, another endpoint, a proxy or a profile.
_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Moto's S3 on 127.0.0.1 for the whole session, with dummy credentials; yields its URL."""
    nowhere = tmp_path_factory.mktemp("aws") / "absent"  # no config or credentials file
    with pytest.MonkeyPatch.context() as env:
        for name in _UNSET:
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", str(nowhere))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("NO_PROXY", ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1"])))
        # One werkzeug access-log line per request would bury any failure report.
        access_log = logging.getLogger("werkzeug")
        saved_level = access_log.level
        access_log.setLevel(logging.WARNING)

        # Port 0: the OS picks a free port when the server binds, so there is no race for it.
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()
            access_log.setLevel(saved_level)


@pytest.fixture
async def s3_storage(s3_server: str) -> AsyncIterator[S3Storage]:
    """An S3Storage with a key prefix, on a bucket of its own."""
    bucket = f"gitstats-test-{uuid.uuid4().hex[:20]}"
    async with aioboto3.Session().client("s3", endpoint_url=s3_server) as s3:
        await s3.create_bucket(Bucket=bucket)
    storage = S3Storage(bucket, "/deployment/one", s3_server)
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
async def local_storage(tmp_path: Path) -> AsyncIterator[LocalStorage]:
    """A LocalStorage on a folder that does not exist yet (the first write creates it)."""
    storage = LocalStorage(tmp_path / "storage" / "root")
    try:
        yield storage
    finally:
        await storage.close()
