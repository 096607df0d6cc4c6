"""Cursor pagination for the API's lists: `?limit=` and `?cursor=`, a `next` link in the
body (null on the last page) and the same link in a `Link: <...>; rel="next"` header.

A cursor is opaque to callers: URL-safe base64 of a small JSON document holding the list
it belongs to, a digest of the query's filters and the position to continue from (the
last row's keyset position, or Temporal's page token). A cursor that does not decode, or
belongs to another list or to other filters, is a 422 `InvalidCursor` problem.
"""

# No `from __future__ import annotations`: FastAPI reads `Cursor` at run time.

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import Query, Request, Response

from api.problems import ProblemError

# The query parameters that do not change which rows a list holds, only which page.
_PAGING = ("cursor", "limit", "min_position")
# A cursor is a few hundred bytes at most (a Temporal page token is the largest).
MAX_CURSOR_LENGTH = 2000

Cursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="Continue after the previous page: the cursor its `next` link carries "
        "(opaque; keep the other query parameters unchanged)",
    ),
]


def _filters_digest(request: Request) -> str:
    """Which rows the query selects: a short digest of its parameters, paging aside."""
    items = sorted((k, v) for k, v in request.query_params.multi_items() if k not in _PAGING)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def encode_cursor(request: Request, kind: str, position: Any) -> str:
    document = {"k": kind, "f": _filters_digest(request), "p": position}
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def invalid_cursor(detail: str) -> ProblemError:
    return ProblemError(
        "InvalidCursor",
        f"{detail}: use the `next` link of the previous page unchanged, or leave out "
        "`cursor` to start from the first page",
        422,
    )


def decode_cursor(request: Request, cursor: str | None, kind: str) -> Any:
    """The position `cursor` continues from (None without a cursor); 422 if it is not
    one of this list's cursors for these filters."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid_cursor("the cursor is not one this API issued") from None
    if not isinstance(document, dict) or document.get("k") != kind or "p" not in document:
        raise invalid_cursor(f"the cursor does not belong to the {kind} list")
    if document.get("f") != _filters_digest(request):
        raise invalid_cursor("the cursor belongs to a query with other filters")
    return document["p"]


def _is_time(text: str) -> bool:
    return datetime.fromisoformat(text).tzinfo is not None


def _is_number(text: str) -> bool:
    return Decimal(text).is_finite()


def _is_integer(text: str) -> bool:
    int(text)
    return True


def _is_text(text: str) -> bool:
    return True


# How each part of a keyset position is checked before it reaches SQL.
TEXT = _is_text
TIME = _is_time
NUMBER = _is_number
INTEGER = _is_integer


def decode_keyset(
    request: Request, cursor: str | None, kind: str, parts: Sequence[Callable[[str], bool]]
) -> list[str] | None:
    """A worklist's keyset position from `cursor`: as many strings as `parts`, each
    passing its check (so PostgreSQL never sees a value it cannot cast)."""
    position = decode_cursor(request, cursor, kind)
    if position is None:
        return None
    if not isinstance(position, list) or len(position) != len(parts):
        raise invalid_cursor(f"the cursor does not belong to the {kind} list")
    try:
        valid = all(
            isinstance(v, str) and check(v) for v, check in zip(position, parts, strict=True)
        )
    except (ValueError, InvalidOperation):
        valid = False
    if not valid:
        raise invalid_cursor(f"the cursor does not belong to the {kind} list")
    return position


def next_url(request: Request, cursor: str | None) -> str | None:
    """The next page's URL, relative to the API's root; None on the last page."""
    if cursor is None:
        return None
    url = request.url.include_query_params(cursor=cursor)
    return f"{url.path}?{url.query}"


def link_headers(url: str | None) -> dict[str, str]:
    """The `Link` header that names the next page, if there is one."""
    return {} if url is None else {"Link": f'<{url}>; rel="next"'}


def next_link(request: Request, response: Response, cursor: str | None) -> str | None:
    """The next page's URL (relative to the API's root), also sent as the `Link` header;
    None, and no header, on the last page."""
    url = next_url(request, cursor)
    response.headers.update(link_headers(url))
    return url
