"""RFC 9457 problem documents: every error the API returns, in one shape.

`type` is a stable URI ending in the error's name (the domain error class for refusals),
`title` a short summary, `detail` a message a clinician can act on. Nothing leaves as
a plain-text error page: a database that went away is a 503 like any other outage,
with `Retry-After`, and an unforeseen fault is a 500 problem document.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.request_log import REQUEST_ID_HEADER, request_ids
from domain import errors as domain_errors
from domain.errors import CarePathError

log = structlog.get_logger("carepath.api")

PROBLEM_BASE = "https://carepath.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
# Sent with every 503: outages of Temporal or PostgreSQL are usually seconds long.
RETRY_AFTER_SECONDS = 5

# What asyncpg raises when PostgreSQL went away or answered with an error, where the
# store did not turn it into its own error: server errors (connection failures among
# them), client errors after a lost connection (a closed pool, a broken protocol
# state), refused or reset connections while the pool reconnects, and a pool that
# hands out no connection in time.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
    TimeoutError,
)

# HTTP status per domain error type; refusals not listed conflict with the episode's state.
STATUS_BY_ERROR: dict[str, int] = {
    "InvalidCommand": 422,
    "UnknownProgram": 422,
    "CommandNotAllowed": 403,
    "EpisodeNotFound": 404,
    "EpisodeNotStarted": 404,
    "EpisodeAlreadyStarted": 409,
    "EpisodeClosed": 409,
    "MalformedJson": 400,
    "ValidationFailed": 422,
    "ServiceUnavailable": 503,
    "TemporalUnavailable": 503,
    "TemporalTimeout": 503,
    "DatabaseUnavailable": 503,
    # The read models have not reached the position the reader waits for (`min_position`).
    "ProjectionBehind": 503,
    "UnknownPosition": 422,
    "CommandFailed": 500,
    # The same Idempotency-Key with another request (IETF Idempotency-Key draft: 422).
    "IdempotencyKeyReused": 422,
    # PostgreSQL refused the command's events for good: the server's fault, not the caller's.
    "StoreRefused": 500,
    "AuthenticationRequired": 401,
    "InvalidToken": 401,
    "AccessDenied": 403,
}


def status_for(code: str) -> int:
    """The HTTP status of an error type: listed above, 422 for every kind of invalid
    command (they are subclasses of `InvalidCommand`), else 409 (a state conflict)."""
    if code in STATUS_BY_ERROR:
        return STATUS_BY_ERROR[code]
    cls = getattr(domain_errors, code, None)
    if isinstance(cls, type) and issubclass(cls, domain_errors.InvalidCommand):
        return 422
    return 409


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class ProblemError(Exception):
    """Raised by a route to answer with a problem document."""

    def __init__(
        self,
        code: str,
        detail: str,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status or status_for(code)
        self.headers = headers


def problem_response(
    request: Request,
    code: str,
    detail: str,
    status: int,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
    body = Problem(
        type=PROBLEM_BASE + code,
        title=code,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(request, exc.code, exc.detail, exc.status, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return problem_response(
            request, "MalformedJson", "the request body is not valid JSON: fix its syntax", 400
        )
    fields = ", ".join(".".join(str(p) for p in e["loc"] if p != "body") or "body" for e in errors)
    return problem_response(
        request,
        "ValidationFailed",
        f"the request is invalid at: {fields}; see 'errors' for each field",
        422,
        errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HttpError")
    return problem_response(
        request, code, str(exc.detail), exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CarePathError)
    status = status_for(exc.code)
    detail = exc.message
    if status == 503 and request.method == "POST":
        detail += "; " + retry_advice(request)
    errors = [dict(item) for item in exc.errors] or None
    return problem_response(request, exc.code, detail, status, errors)


def retry_advice(request: Request) -> str:
    """What a caller whose command met an outage should do: whether it was applied is
    unknown, and only the idempotency key makes sending it again safe."""
    if request.headers.get("idempotency-key"):
        return (
            "the command may still be applied: retrying with the same Idempotency-Key is "
            "safe, it is applied at most once"
        )
    where = "GET /episodes" if request.url.path == "/episodes" else "the episode"
    return (
        f"the command may still be applied: this request had no Idempotency-Key, so check "
        f"{where} before sending it again, and send one next time (a retry with the "
        "same key is applied at most once)"
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # The type only: a server error's message may quote the values of a row.
    log.error("database_error", error=type(exc).__name__, method=request.method)
    detail = f"PostgreSQL is unavailable or failed ({type(exc).__name__}): try again shortly"
    if request.method == "POST":
        detail += "; " + retry_advice(request)
    return problem_response(request, "DatabaseUnavailable", detail, 503)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this outside every middleware, so the request's ids are bound anew.
    ids = request_ids(request.scope)
    with structlog.contextvars.bound_contextvars(**ids):
        log.error("unexpected_error", error=type(exc).__name__, method=request.method)
    return problem_response(
        request,
        "InternalError",
        "an unexpected error occurred and was logged; if this was a command, retrying "
        "with the same Idempotency-Key is safe",
        500,
        headers={REQUEST_ID_HEADER: ids["request_id"]} if ids else None,
    )


def install_problem_handlers(app: Any) -> None:
    app.add_exception_handler(CarePathError, _domain_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, _database_error)
    # Starlette's last resort (its ServerErrorMiddleware) sends this instead of plain text.
    app.add_exception_handler(Exception, _internal_error)
