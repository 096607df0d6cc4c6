"""One log line per API request, and a request id on it, on its answer and on every other
line logged while it is served.

The line (`request`) names the method, the route template (`/episodes/{episode_id}/sessions`,
never the path itself, which holds ids), the status, the duration, the caller's user id
and role once authenticated, the request id and, when tracing is on, the trace id. It
never holds a body, a query string or a header value: nothing a caller sent reaches it
but the method and the request id, and that only after `valid_request_id` accepted it.

The request id is the caller's `X-Request-ID` when it is a safe token (up to 128 letters,
digits and `-._:`), else a new one; either way the answer's `X-Request-ID` header carries
it. While the request is served, `request_id` and `trace_id` are bound in structlog's
context variables (workers.logging merges them into every line), and kept in
`scope["state"]` for the last-resort error handler (api.problems), which runs outside.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("carepath.request")

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def valid_request_id(raw: bytes | None) -> str | None:
    """The caller's request id if it is a safe token, else None."""
    if raw is None or _SAFE_ID.fullmatch(raw) is None:
        return None
    return raw.decode("ascii")


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or None when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def request_ids(scope: Scope) -> dict[str, str]:
    """The ids `RequestLogMiddleware` gave this request (empty outside it)."""
    ids: dict[str, str] = (scope.get("state") or {}).get("log_ids") or {}
    return ids


class RequestLogMiddleware:
    """Names every HTTP request, answers with its id, and logs it once when it is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = next((v for k, v in scope.get("headers", ()) if k == _HEADER_KEY), None)
        request_id = valid_request_id(sent) or uuid.uuid4().hex
        ids = {"request_id": request_id}
        trace_id = current_trace_id()
        if trace_id is not None:
            ids["trace_id"] = trace_id
        scope.setdefault("state", {})["log_ids"] = ids
        status = 500

        async def named(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER_KEY
                ]
                headers.append((_HEADER_KEY, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(**ids):
            try:
                await self.app(scope, receive, named)
            finally:
                _log_request(scope, status, started)


def _log_request(scope: Scope, status: int, started: float) -> None:
    state: dict[str, Any] = scope.get("state") or {}
    route = scope.get("route")
    user = state.get("user")
    fields: dict[str, Any] = {
        "method": scope["method"],
        # Unmatched paths are not named: the path itself could carry anything.
        "route": getattr(route, "path", None),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if user is not None:
        fields["user_id"] = user.user_id
        fields["role"] = user.role.value
    if status >= 500:
        log.error("request", **fields)
    else:
        log.info("request", **fields)
