"""The read API's errors and how they are answered: JSON bodies, never a secret in them."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from aiohttp import web

from contract.storage import StorageError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BEARER_REALM = 'Bearer realm="gitstats"'


class ApiError(Exception):
    """An answer other than success; `message` is shown to the caller."""

    status = 500

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.message, self.headers)


class BadParameter(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401

    def __init__(self, message: str, *, token_given: bool) -> None:
        challenge = BEARER_REALM + (', error="invalid_token"' if token_given else "")
        super().__init__(message, {"WWW-Authenticate": challenge})


class NotFound(ApiError):
    """Also what a caller gets for what exists but is not theirs to see: existence is not leaked."""

    status = 404


class DocumentTooLarge(ApiError):
    """A stored document over the configured cap: refused rather than read into memory."""

    status = 500

    def __init__(self, key: str, size: int, cap: int) -> None:
        super().__init__(
            f"stored document {key} is {size} bytes, over the {cap} bytes this API reads into "
            "memory (API_MAX_DOCUMENT_BYTES)"
        )


class StoredDocumentInvalid(ApiError):
    status = 500

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"stored document {key} cannot be served: {why}")


class GitHubUnavailable(ApiError):
    """GitHub could not tell who a token belongs to (down, slow or rate limited)."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, {"Retry-After": "5"})


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {"status": status, "error": HTTPStatus(status).phrase, "message": message}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def api_handler(handler: Handler) -> Handler:
    """Answer the API's errors, and storage failures, as JSON error bodies."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            if exc.status >= 500:
                log.warning("%s %s: %s", request.method, request.path, exc.message)
            return exc.response()
        except StorageError as exc:
            # Storage messages name the object and the reason, never a credential.
            log.warning("%s %s: storage unavailable: %s", request.method, request.path, exc)
            return error_response(503, "storage is unavailable", {"Retry-After": "5"})

    return wrapper
