"""Turning stored documents into HTTP answers: ETags, 304s, rendered variants."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy, istr

from contract.cache import MISSING
from service.api.reader import RAW, Decoder
from service.api.state import ApiState

T = TypeVar("T")

# Part of every ETag: a release that renders answers differently must not be answered 304.
RENDERING = "1"
JSON = "application/json"
# Answers depend on who asks, so no shared cache may keep them, and clients revalidate.
# Header names are istr throughout, case-folded once rather than at each lookup. aiohttp's
# hdrs.ETAG is spelled "Etag"; answers keep RFC 9110's "ETag", which clients may match exactly.
ETAG = istr("ETag")
CACHE_HEADERS = {hdrs.CACHE_CONTROL: "private, no-cache", hdrs.VARY: "Authorization"}
# ETags kept once hashed (the variants polled lately): 16,384 of them take about 8 MiB.
ETAGS_CACHED = 16_384
# Header sets kept built, one per ETag and status: 4,096 of them take about 3 MiB.
HEADERS_CACHED = 4_096


@functools.lru_cache(maxsize=ETAGS_CACHED)
def answer_etag(key: str, version: str, variant: str) -> str:
    """A strong ETag for one variant (page, filter, visibility) of one stored version."""
    digest = hashlib.sha256(f"{RENDERING}\n{key}\n{version}\n{variant}".encode()).hexdigest()
    return f'"{digest[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match names `etag` (weak comparison, as RFC 9110 asks for it)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


@functools.lru_cache(maxsize=HEADERS_CACHED)
def _answer_headers(etag: str, content_type: str | None) -> CIMultiDictProxy[str]:
    """The headers of every answer that carries `etag` (a 304 has no Content-Type), built
    once: read-only, since each response shares them (aiohttp copies them into its own)."""
    headers = CIMultiDict({ETAG: etag, **CACHE_HEADERS})
    if content_type is not None:
        headers[hdrs.CONTENT_TYPE] = content_type
    return CIMultiDictProxy(headers)


def json_answer(
    body: bytes, etag: str, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    shared = _answer_headers(etag, JSON)
    return web.Response(
        status=status, body=body, headers=shared if headers is None else {**shared, **headers}
    )


def not_modified(etag: str) -> web.Response:
    return web.Response(status=304, headers=_answer_headers(etag, None))


@dataclass(frozen=True)
class Rendering(Generic[T]):
    """One variant of a stored document: its name (part of the ETag) and how it is made."""

    variant: str
    decoder: Decoder[T]
    # Bytes, or what gives them once awaited (a rendering that reads more objects).
    render: Callable[[T], bytes | Awaitable[bytes]]


async def document_answer(
    request: web.Request,
    api: ApiState,
    key: str,
    plan: Callable[[str], Rendering[T]] | None = None,
) -> web.Response | None:
    """200 with the document stored at `key`, as stored or as `plan(version)` renders it, or
    304 when the caller already has it; None when there is no such document.

    A 304 costs at most one metadata read, a 200 at most that and one read of the document.
    """
    info = await api.reader.probe(key)
    if info is None:
        return None
    if plan is None:
        etag = answer_etag(key, info.version, "document")
        if etag_matches(request.headers.get(hdrs.IF_NONE_MATCH), etag):
            return not_modified(etag)
        raw = await api.reader.load(key, info, RAW)
        if raw is None:
            return None
        return json_answer(raw.content, answer_etag(key, raw.info.version, "document"))
    rendering = plan(info.version)
    etag = answer_etag(key, info.version, rendering.variant)
    if etag_matches(request.headers.get(hdrs.IF_NONE_MATCH), etag):
        return not_modified(etag)
    body = api.rendered.get(etag)
    if body is MISSING:
        loaded = await api.reader.load(key, info, rendering.decoder)
        if loaded is None:
            return None
        if loaded.info != info:  # written again since the probe: label what is served
            rendering = plan(loaded.info.version)
            etag = answer_etag(key, loaded.info.version, rendering.variant)
        rendered = rendering.render(loaded.content)
        body = await rendered if inspect.isawaitable(rendered) else rendered
        api.rendered.put(etag, body, cost=len(body))
    return json_answer(body, etag)
