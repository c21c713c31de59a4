"""Storage in an S3 bucket (or an S3-compatible server): conditional writes by ETag."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from contract.storage import (
    ObjectInfo,
    ObjectTooLarge,
    PreconditionFailed,
    S3Credentials,
    Storage,
    StorageError,
    StoredObject,
    check_key,
    check_prefix,
)
from contract.storage.files import (
    COPY_CHUNK,
    commit_temp,
    discard_temp,
    local_io,
    open_temp,
    reason,
)

_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
# A HEAD answer has no body, so a missing object shows as its HTTP status, not as NoSuchKey.
_HEAD_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def _error_code(exc: ClientError) -> tuple[str, int | None]:
    code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status


class S3Storage(Storage):
    """Objects in an S3 bucket under a key prefix, through one lazily created aioboto3 client.

    Credentials and region as given, else from the usual AWS chain (environment, config files,
    roles).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        *,
        multipart_threshold: int = 16 * 1024 * 1024,
        credentials: S3Credentials | None = None,
    ) -> None:
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        # Files at least this large go through the managed multipart upload.
        self.multipart_threshold = multipart_threshold
        credentials = credentials or S3Credentials()
        self._session = aioboto3.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=credentials.region,
        )
        self._client: Any = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        # Many tasks may make the first call at once; only one of them may build the client.
        self._client_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def _where(self, key: str | None) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key or ''}"

    @contextlib.contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        # Only the error code, the class name and the endpoint go into the message: S3 error
        # bodies and credential-provider errors can carry the access key id or process output.
        try:
            yield
        except ClientError as exc:
            code, status = _error_code(exc)
            raise StorageError(
                f"S3 {operation} failed for {self._where(key)}: {code} (HTTP {status})"
            ) from exc
        except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
            detail = type(exc).__name__
            endpoint = getattr(exc, "kwargs", {}).get("endpoint_url")
            if endpoint:
                detail += f" ({endpoint})"
            raise StorageError(f"S3 {operation} failed for {self._where(key)}: {detail}") from exc

    async def _s3(self) -> Any:
        """The shared client, created on first use."""
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    stack = contextlib.AsyncExitStack()
                    config = AioConfig(max_pool_connections=64, retries={"mode": "standard"})
                    with self._errors("connect"):
                        client = await stack.enter_async_context(
                            self._session.client(
                                "s3", endpoint_url=self.endpoint_url, config=config
                            )
                        )
                    self._exit_stack, self._client = stack, client
        return self._client

    async def close(self) -> None:
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        if stack is not None:
            await stack.aclose()

    async def get(self, key: str) -> StoredObject | None:
        found = await self.read_capped(key, sys.maxsize)
        return None if found is None else StoredObject(data=found[1], etag=found[0].version)

    async def stat(self, key: str) -> ObjectInfo | None:
        """One HEAD request; the version is the ETag."""
        check_key(key)
        s3 = await self._s3()
        with self._errors("head", key):
            try:
                found = await s3.head_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as exc:
                if _error_code(exc)[0] in _HEAD_MISSING_CODES:
                    return None
                raise
        return ObjectInfo(str(found["ETag"]), int(found["ContentLength"]))

    async def read_capped(self, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        """One GET, whose Content-Length is checked before the body is read."""
        check_key(key)
        s3 = await self._s3()
        with self._errors("get", key):
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as exc:
                if _error_code(exc)[0] == "NoSuchKey":
                    return None
                raise
            info = ObjectInfo(str(response["ETag"]), int(response["ContentLength"]))
            # Leaving the block releases the connection, whether the body was read or not.
            body = response["Body"]
            async with body:
                if info.size > max_bytes:
                    raise ObjectTooLarge(key, info.size, max_bytes)
                data = await body.read()
        return info, data

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> str:
        check_key(key)
        s3 = await self._s3()
        with self._errors("put", key):
            response = await s3.put_object(
                Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type
            )
        return str(response["ETag"])

    async def put_if(
        self, key: str, data: bytes, etag: str | None, content_type: str = "application/json"
    ) -> str:
        check_key(key)
        s3 = await self._s3()
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        with self._errors("conditional put", key):
            try:
                response = await s3.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=data,
                    ContentType=content_type,
                    **condition,
                )
            except ClientError as exc:
                code, status = _error_code(exc)
                # 412: the condition failed. 409: a concurrent conditional write to the same key
                # was in flight. NoSuchKey on If-Match: the object was deleted since it was read.
                if (
                    status in (409, 412)
                    or code in _PRECONDITION_CODES
                    or (etag is not None and code == "NoSuchKey")
                ):
                    raise PreconditionFailed(
                        f"conditional put lost for {self._where(key)}: {code}"
                    ) from exc
                raise
        return str(response["ETag"])

    async def delete(self, key: str) -> None:
        check_key(key)
        s3 = await self._s3()
        with self._errors("delete", key):
            await s3.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    async def list(self, prefix: str) -> list[str]:
        check_prefix(prefix)
        s3 = await self._s3()
        keys: list[str] = []
        with self._errors("list", prefix):
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", ()))
        return sorted(keys)

    async def delete_prefix(self, prefix: str) -> None:
        """Delete in batches of 1000 (one request each) rather than one request per key."""
        keys = await self.list(prefix)
        s3 = await self._s3()
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self.prefix + key} for key in keys[start : start + 1000]]
            with self._errors("delete", prefix):
                response = await s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if errors := response.get("Errors"):
                first = errors[0]
                raise StorageError(
                    f"S3 delete failed for {len(errors)} object(s) under {self._where(prefix)}, "
                    f"e.g. {first.get('Key')}: {first.get('Code')}"
                )

    async def upload_file(self, path: Path, key: str) -> None:
        check_key(key)
        path = Path(path)
        try:
            size = path.stat().st_size
            # One request for the common case; both paths become visible only when complete.
            data = (
                await asyncio.to_thread(path.read_bytes)
                if size < self.multipart_threshold
                else None
            )
        except OSError as exc:
            raise StorageError(f"cannot read local file {path}: {reason(exc)}") from exc
        if data is not None:
            await self.put(key, data, content_type="application/octet-stream")
            return
        s3 = await self._s3()
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=max(8 * 1024 * 1024, self.multipart_threshold // 8),
        )
        with self._errors("upload", key):
            try:
                await s3.upload_file(
                    str(path),
                    self.bucket,
                    self.prefix + key,
                    ExtraArgs={"ContentType": "application/octet-stream"},
                    Config=config,
                )
            except OSError as exc:
                # aiohttp's connection errors and TimeoutError are OSErrors too: not the file's.
                if isinstance(exc, aiohttp.ClientError | TimeoutError):
                    raise
                raise StorageError(f"cannot read local file {path}: {reason(exc)}") from exc

    async def download_file(self, key: str, path: Path) -> None:
        check_key(key)
        path = Path(path)
        s3 = await self._s3()
        with self._errors("download", key):
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as exc:
                if _error_code(exc)[0] == "NoSuchKey":
                    raise StorageError(f"no object at {self._where(key)}") from None
                raise
            body = response["Body"]
            async with body:
                file, tmp_name = await local_io(path, open_temp, path)
                try:
                    # Network errors from read() go to self._errors; file errors to local_io.
                    while chunk := await body.read(COPY_CHUNK):
                        await local_io(path, file.write, chunk)
                    await local_io(path, commit_temp, file, tmp_name, path)
                except BaseException:
                    discard_temp(file, tmp_name)
                    raise
