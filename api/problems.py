"""RFC 9457 problem documents: every error the API returns, in one shape.

`type` is a stable URI ending in the error's name (the domain error class for refusals),
`title` a short summary, `detail` a message a clinician can act on.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain import errors as domain_errors
from domain.errors import CarePathError

PROBLEM_BASE = "https://carepath.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

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
    "DatabaseUnavailable": 503,
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
    return problem_response(request, exc.code, exc.message, status_for(exc.code))


def install_problem_handlers(app: Any) -> None:
    app.add_exception_handler(CarePathError, _domain_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
