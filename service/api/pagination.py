"""Pages of a stored document's long list: `limit`, and an opaque `cursor`.

A cursor is base64url("v1:{offset}:{fingerprint}"), the fingerprint being a hash of the
document's stored version and of what the caller sees. A cursor cut from an older version of
the document starts over at the first page rather than skipping or repeating items.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service.api.answers import Rendering
from service.api.errors import BadParameter, StoredDocumentInvalid
from service.api.reader import JSON_OBJECT, Decoder

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
_CURSOR = re.compile(r"v1:([0-9]{1,12}):([0-9a-f]{16})")
_LIMIT = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True)
class Cursor:
    offset: int
    fingerprint: str


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: Cursor | None


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if _LIMIT.fullmatch(raw) is None or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadParameter(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def encode_cursor(cursor: Cursor) -> str:
    text = f"v1:{cursor.offset}:{cursor.fingerprint}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> Cursor:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    match = _CURSOR.fullmatch(text)
    if match is None:
        raise BadParameter("cursor is not one this API gave out; start again without it")
    return Cursor(int(match.group(1)), match.group(2))


def page_request(query: Mapping[str, str]) -> PageRequest:
    """`limit` and `cursor` from a query string; BadParameter if either is malformed."""
    raw_cursor = query.get("cursor")
    return PageRequest(
        limit=parse_limit(query.get("limit")),
        cursor=None if raw_cursor is None else decode_cursor(raw_cursor),
    )


def fingerprint(key: str, version: str, scope: str) -> str:
    return hashlib.sha256(f"{key}\n{version}\n{scope}".encode()).hexdigest()[:16]


def page_of(
    document: dict[str, Any], list_name: str, offset: int, limit: int, fp: str, key: str
) -> dict[str, Any]:
    """The document with `list_name` cut to one page and `next_cursor` added."""
    items = document.get(list_name)
    if not isinstance(items, list):
        raise StoredDocumentInvalid(key, f"it has no {list_name!r} list")
    end = offset + limit
    answer = dict(document)
    answer[list_name] = items[offset:end]
    answer["next_cursor"] = encode_cursor(Cursor(end, fp)) if end < len(items) else None
    return answer


def render_json(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()


def paged(
    request: PageRequest,
    key: str,
    list_name: str,
    *,
    scope: str = "",
    decoder: Decoder[Any] = JSON_OBJECT,
    prepare: Callable[[Any], dict[str, Any]] | None = None,
    finish: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
) -> Callable[[str], Rendering[Any]]:
    """How to answer one page of the list `list_name` of the document at `key`, given the
    document's version. `scope` names what the caller sees (their cursors differ),
    `prepare` turns the decoded document into the dict to cut (default: it is that dict) and
    `finish` completes the page cut from it (reading what it names)."""

    def plan(version: str) -> Rendering[Any]:
        fp = fingerprint(key, version, scope)
        cursor = request.cursor
        offset = cursor.offset if cursor is not None and cursor.fingerprint == fp else 0

        def cut(content: Any) -> dict[str, Any]:
            document = content if prepare is None else prepare(content)
            return page_of(document, list_name, offset, request.limit, fp, key)

        async def finished(content: Any) -> bytes:
            assert finish is not None
            return render_json(await finish(cut(content)))

        def render(content: Any) -> bytes | Awaitable[bytes]:
            return render_json(cut(content)) if finish is None else finished(content)

        return Rendering(f"page:{scope}:{offset}:{request.limit}", decoder, render)

    return plan
