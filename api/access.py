"""Access audit: every request for episode data is recorded, and auditors can read the log.

`AccessLogMiddleware` wraps the whole API. It holds each response back until the access
record (who, role, what, when, outcome) is written, so data whose access could not be
recorded is never handed out: the caller gets 503 instead. Answers that hand out no
record (a command that was applied, any error) keep their answer; their access record
waits in a spool (see `AccessLogMiddleware`). Routes add what only they know through
`request.state`: `episode_id` (a referral's new episode), `command_id`, and
`access_outcome = "denied"` when a 404 hides an episode of another program.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

import asyncio
import dataclasses
import json
import re
from collections import deque
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access_fhir import audit_bundle
from api.auth import User, require_role
from api.health_routes import PROBE_PATHS
from api.limits import is_api_description
from api.pagination import (
    Cursor,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
    link_headers,
    next_url,
)
from api.problems import (
    DATABASE_ERRORS,
    PROBLEM_BASE,
    PROBLEM_MEDIA_TYPE,
    RETRY_AFTER_SECONDS,
)
from domain.actors import Role
from store.access_log import AccessAction, AccessLog, AccessOutcome, AccessRecord
from store.errors import DatabaseUnavailable
from workflows.client import SAFE_VALUE

log = structlog.get_logger("carepath.access")

# Nothing about an episode passes through these: the probes and the API's own description.
# The probes must answer while PostgreSQL is down, so they cannot wait for an access record.
# The console's style sheet and the like: files, nothing about anyone.
STATIC_PREFIX = "/static/"
OPEN_PATHS = PROBE_PATHS | {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/metrics"}
FHIR_MEDIA_TYPE = "application/fhir+json"


def _outcome(status: int) -> AccessOutcome:
    if status < 400:
        return "success"
    return {401: "unauthenticated", 403: "denied", 404: "not_found", 409: "conflict"}.get(
        status, "error" if status >= 500 else "invalid"
    )  # type: ignore[return-value]


def _action(method: str, template: str) -> AccessAction:
    if template.endswith("/decode"):
        return "read"  # the codec server's decode hands out payloads' plaintext
    if method in {"GET", "HEAD"}:
        return "export" if template.endswith(("/export", "/access-log")) else "read"
    return "create" if template == "/episodes" else "update"


# A URL may carry any character once percent-decoded; PostgreSQL refuses NUL, and the
# other control characters have no place in an audit record either.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _clip(value: Any, size: int = 200) -> str | None:
    return None if value is None else _CONTROL.sub("\ufffd", str(value)[:size])


def access_record(scope: Scope, status: int) -> AccessRecord:
    """The access record of a finished request, from its scope and response status."""
    state: dict[str, Any] = scope.get("state") or {}
    route = scope.get("route")
    template = getattr(route, "path", None) or "(no route)"
    params = scope.get("path_params") or {}
    user: User | None = state.get("user")
    client = scope.get("client")
    return AccessRecord(
        user_id=user.user_id if user else "(unauthenticated)",
        role=user.role.value if user else "(none)",
        action=_action(scope["method"], template),
        resource=template,
        outcome=state.get("access_outcome") or _outcome(status),
        status=status,
        method=scope["method"],
        path=_clip(scope.get("path", ""), 500) or "",
        episode_id=_clip(state.get("episode_id") or params.get("episode_id")),
        command_id=_clip(state.get("command_id")),
        client_ip=_clip(client[0] if client else None, 64),
    )


class AccessLogMiddleware:
    """Record every request outside OPEN_PATHS before its response leaves.

    If the record cannot be written, a successful read is answered 503 and hands out
    nothing. Every other answer is kept. A command that was applied (a POST answered
    with success) is done, and its events already name who made it, when and under
    which command id in the hash-chained event store: answering it as failed would only
    invite a retry of something done. An error answer hands out no record, and replacing
    it would hide its cause. Their access record is logged at error level, in full (it
    holds no clinical content), and kept in the `AccessSpool`, which writes it with its
    own time before any later record.
    """

    def __init__(self, app: ASGIApp, access_log: AccessLog) -> None:
        self.app = app
        self.access_log = access_log
        self.spool = AccessSpool(access_log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or is_api_description(scope["path"])
            or scope["path"].startswith(STATIC_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            await self.app(scope, receive, hold)
        except Exception:
            # The server error answer is sent by the outer middleware; record it anyway.
            await self.spool.write_or_keep(access_record(scope, 500))
            raise
        status = next((m["status"] for m in held if m["type"] == "http.response.start"), 500)
        record = access_record(scope, status)
        hands_out = scope["method"] in {"GET", "HEAD"} or record.action == "read"
        if not hands_out or status >= 400:
            await self.spool.write_or_keep(record)
        else:
            try:
                await self.spool.write(record)
            except DatabaseUnavailable as err:
                log.error("access_log_unavailable", method=scope["method"], status=status)
                await _refusal(err)(scope, receive, send)
                return
        for message in held:
            await send(message)


def _refusal(err: DatabaseUnavailable) -> JSONResponse:
    return JSONResponse(
        {
            "type": PROBLEM_BASE + "ServiceUnavailable",
            "title": "ServiceUnavailable",
            "status": 503,
            "detail": f"{err.message}; nothing was returned because the access "
            "could not be recorded: retry (a command retried with the same "
            "Idempotency-Key is applied once)",
        },
        status_code=503,
        media_type=PROBLEM_MEDIA_TYPE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class AccessSpool:
    """Access records not written yet, in order, each with the time of its access.

    In memory, bounded: every record that enters is also logged in full at error level,
    so the log keeps what a restart or an overflow would lose, and an operator can
    re-enter it. The spool is written out before the next record that is written.
    """

    def __init__(self, access_log: AccessLog, limit: int = 10_000) -> None:
        self._access_log = access_log
        self._pending: deque[AccessRecord] = deque()
        self._limit = limit
        self._flushing = asyncio.Lock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def write(self, record: AccessRecord) -> None:
        """Write what is pending, then `record`; raises `DatabaseUnavailable` if either
        could not be written (what was pending stays pending)."""
        try:
            if self._pending:
                await self._flush()
            await self._access_log.record(record)
        except DATABASE_ERRORS as exc:  # what the store let through unwrapped
            raise DatabaseUnavailable(
                f"the access log could not be written ({type(exc).__name__})"
            ) from None

    async def write_or_keep(self, record: AccessRecord) -> None:
        """Write `record`, or keep it (with its time) for the next write: never raises."""
        try:
            await self.write(record)
        except DatabaseUnavailable:
            kept = dataclasses.replace(record, at=record.at or datetime.now(UTC))
            log.error("access_record_spooled", pending=len(self._pending) + 1, **_fields(kept))
            if len(self._pending) >= self._limit:
                dropped = self._pending.popleft()
                log.error("access_spool_full", dropped_at=str(dropped.at), limit=self._limit)
            self._pending.append(kept)

    async def _flush(self) -> None:
        async with self._flushing:
            written = 0
            while self._pending:
                await self._access_log.record(self._pending[0])
                self._pending.popleft()
                written += 1
            if written:
                log.info("access_spool_written", records=written)


def _fields(record: AccessRecord) -> dict[str, Any]:
    return {
        f"access_{name}": str(value) if isinstance(value, datetime) else value
        for name, value in dataclasses.asdict(record).items()
        if name != "id"
    }


# --- reading the log ---------------------------------------------------------------------


class AccessLogFormat(StrEnum):
    JSON = "json"
    FHIR = "fhir"


class AccessEntry(BaseModel):
    id: int
    at: datetime
    user_id: str
    role: str
    action: str
    resource: str
    episode_id: str | None
    outcome: str
    status: int
    method: str
    path: str
    command_id: str | None
    client_ip: str | None


class AccessLogResponse(BaseModel):
    entries: list[AccessEntry]
    # The next page's URL (also the `Link` header); None on the last page.
    next: str | None = None


def access_router(access_log: AccessLog) -> APIRouter:
    """`GET /audit/access-log` for auditors: JSON, or FHIR R4B AuditEvents in a Bundle."""
    router = APIRouter(tags=["access log"])
    Auditor = Annotated[User, Depends(require_role(Role.AUDITOR))]

    @router.get(
        "/audit/access-log",
        summary="Who read or changed episode data, when, with what outcome (auditors only)",
        response_model=AccessLogResponse,
        responses={
            200: {
                "description": "The access records, oldest first",
                "content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}},
            }
        },
    )
    async def read_access_log(
        request: Request,
        _auditor: Auditor,
        log_format: Annotated[AccessLogFormat, Query(alias="format")] = AccessLogFormat.JSON,
        since: Annotated[AwareDatetime | None, Query(description="ISO 8601 with offset")] = None,
        until: Annotated[AwareDatetime | None, Query(description="ISO 8601 with offset")] = None,
        episode_id: Annotated[str | None, Query(pattern=SAFE_VALUE)] = None,
        user_id: Annotated[str | None, Query(pattern=SAFE_VALUE)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        cursor: Cursor = None,
    ) -> Response:
        after = decode_cursor(request, cursor, "access-log")
        if after is not None and (type(after) is not int or after < 0):
            raise invalid_cursor("the cursor does not belong to the access-log list")
        records = await access_log.read(
            since=since,
            until=until,
            episode_id=episode_id,
            user_id=user_id,
            limit=limit,
            after_id=after,
        )
        # A full page may have more after it; a short one is the last.
        following = (
            encode_cursor(request, "access-log", records[-1].id) if len(records) == limit else None
        )
        url = next_url(request, following)
        if log_format is AccessLogFormat.FHIR:
            bundle = audit_bundle(records, datetime.now(UTC))
            return Response(
                json.dumps(bundle), media_type=FHIR_MEDIA_TYPE, headers=link_headers(url)
            )
        body = AccessLogResponse(
            entries=[
                AccessEntry.model_validate(record, from_attributes=True) for record in records
            ],
            next=url,
        )
        return JSONResponse(body.model_dump(mode="json"), headers=link_headers(url))

    return router
