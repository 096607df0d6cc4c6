"""The API's Prometheus metrics and `GET /metrics` (docs/metrics.md).

Every staff command the API handles is counted by type and outcome and timed, from the
moment the route sees the request (before the caller is authenticated) to its answer:
`applied` (2xx), `refused` (4xx: the caller, the body or the episode's state said no; the
label `code` is the problem type, a domain error's name) or `failed` (5xx: Temporal or
PostgreSQL unavailable, or a fault). The `carepath episode ...` commands go through
these same routes.

`/metrics` needs no token, like the probes: its labels are command types, outcomes,
error names, escalation levels and channels, never an id or anything a caller sent, so
it holds no PHI. Scrapes leave no access record. Bind the API to a private network, or
filter `/metrics` at the proxy, if even these counts should stay inside.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

import re
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.problems import DATABASE_ERRORS, ProblemError, status_for
from domain.errors import CarePathError
from workers.metrics import METRICS_PATH, exposition

COMMANDS = Counter(
    "carepath_commands",
    "Staff commands the API answered, by command type, outcome (applied, refused, failed) "
    "and, unless applied, the problem type of the answer.",
    ["type", "outcome", "code"],
)
COMMAND_SECONDS = Histogram(
    "carepath_command_duration_seconds",
    "Time from a command's request reaching its route to the answer, by command type and outcome.",
    ["type", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def outcome_of(status: int) -> str:
    if status < 400:
        return "applied"
    return "failed" if status >= 500 else "refused"


def problem_of(exc: Exception) -> tuple[str, int]:
    """The problem type and status the API answers `exc` with (api.problems)."""
    if isinstance(exc, ProblemError):
        return exc.code, exc.status
    if isinstance(exc, CarePathError):
        code = exc.code if _CODE.match(exc.code) else "Other"
        return code, status_for(exc.code)
    if isinstance(exc, RequestValidationError):
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        return ("MalformedJson", 400) if malformed else ("ValidationFailed", 422)
    if isinstance(exc, StarletteHTTPException):
        return "HttpError", exc.status_code
    if isinstance(exc, DATABASE_ERRORS):
        return "DatabaseUnavailable", 503
    return "InternalError", 500


def record_command(kind: str, outcome: str, code: str, seconds: float) -> None:
    COMMANDS.labels(type=kind, outcome=outcome, code=code).inc()
    COMMAND_SECONDS.labels(type=kind, outcome=outcome).observe(seconds)


async def measured_command(kind: str, handle: Callable[[], Awaitable[Response]]) -> Response:
    """Answer with `handle()`, counting and timing the command `kind` by its outcome."""
    began = time.perf_counter()
    try:
        response = await handle()
    except Exception as exc:
        code, status = problem_of(exc)
        record_command(kind, outcome_of(status), code, time.perf_counter() - began)
        raise
    status = response.status_code
    code = "" if status < 400 else "HttpError"
    record_command(kind, outcome_of(status), code, time.perf_counter() - began)
    return response


def metrics_router(sdk_metrics_url: str | None) -> APIRouter:
    """`GET /metrics`: CarePath's series and, when the Temporal runtime exports them, the
    SDK's (`temporal_...`), in one Prometheus text document."""
    router = APIRouter()

    @router.get(METRICS_PATH, include_in_schema=False)
    async def metrics() -> Response:
        body, media_type = await exposition(sdk_metrics_url)
        return Response(body, media_type=media_type)

    return router
