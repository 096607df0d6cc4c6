"""Probes for orchestrators and operators: `/livez`, `/readyz` and the older `/healthz`.

Liveness and readiness answer different questions, and an orchestrator acts on them
differently. `/livez` says only that this process still serves HTTP: a failed liveness
probe restarts the process, and restarting every API replica because PostgreSQL is down
would help nobody. `/readyz` says the API can do its work now: Temporal answers,
PostgreSQL answers, and a worker polls the workflow task queue (without one, every
command waits until it times out); a failed readiness probe only takes the replica out
of rotation. `/healthz` predates the two and is kept as the JSON form of `/readyz`: the
same checks and the same verdict, with a body that lists all three.

Every check has its own short timeout, so a probe answers within a few seconds even when
a server accepts connections and never replies. None of these routes needs a token or
writes an access record: nothing about an episode passes through them.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.client import Client

from api.openapi_docs import documented_problem
from api.problems import PROBLEM_BASE, problem_response
from store.event_store import EventStore
from workers.health import POLLER_FRESH_S, recent_pollers

PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz"})
CHECK_TIMEOUT_S = 2.0
# What a 503 from /readyz tells the caller: servers restart and workers reconnect in seconds.
RETRY_AFTER_S = 5


class ComponentHealth(BaseModel):
    ok: bool
    detail: str


class LivenessResponse(BaseModel):
    status: Literal["alive"] = "alive"


class ReadinessResponse(BaseModel):
    status: Literal["ready"] = "ready"
    temporal: ComponentHealth
    postgres: ComponentHealth
    worker: ComponentHealth


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    temporal: ComponentHealth
    postgres: ComponentHealth
    worker: ComponentHealth


_WORKER_MISSING = (
    "no worker has polled task queue 'carepath' in the last 60 s: start `carepath worker`"
)
_UNHEALTHY_EXAMPLE = {
    "status": "unavailable",
    "temporal": {"ok": True, "detail": "reachable"},
    "postgres": {"ok": True, "detail": "reachable"},
    "worker": {"ok": False, "detail": _WORKER_MISSING},
}
_NOT_READY_EXAMPLE = {
    "type": PROBLEM_BASE + "ServiceUnavailable",
    "title": "ServiceUnavailable",
    "status": 503,
    "detail": f"not ready: worker: {_WORKER_MISSING}",
    "instance": "/readyz",
    "errors": [
        {"check": name, **check}
        for name, check in _UNHEALTHY_EXAMPLE.items()
        if isinstance(check, dict)
    ],
}


class _NotReady(Exception):
    """Raised by a check whose server answered that it cannot do its part."""


def health_router(temporal: Client, store: EventStore, task_queue: str) -> APIRouter:
    """The three probe routes over the API's Temporal client, store and task queue."""
    router = APIRouter(tags=["health"])

    async def temporal_serves() -> str:
        timeout = timedelta(seconds=CHECK_TIMEOUT_S)
        if not await temporal.service_client.check_health(timeout=timeout):
            raise _NotReady("the frontend answers but reports that it is not serving")
        return "reachable"

    async def postgres_answers() -> str:
        await store.ping()
        return "reachable"

    async def worker_polls() -> str:
        identities = await recent_pollers(temporal, task_queue, timeout_s=CHECK_TIMEOUT_S)
        if not identities:
            raise _NotReady(
                f"no worker has polled task queue {task_queue!r} in the last "
                f"{POLLER_FRESH_S:.0f} s: start `carepath worker`"
            )
        return f"{len(identities)} worker(s) polling {task_queue!r}"

    async def run_checks() -> dict[str, ComponentHealth]:
        results = await asyncio.gather(
            _check(temporal_serves()), _check(postgres_answers()), _check(worker_polls())
        )
        return dict(zip(("temporal", "postgres", "worker"), results, strict=True))

    @router.get(
        "/livez",
        response_model=LivenessResponse,
        summary="Liveness: this process serves HTTP (no dependency is checked)",
    )
    async def livez() -> LivenessResponse:
        return LivenessResponse()

    @router.get(
        "/readyz",
        response_model=ReadinessResponse,
        responses={
            503: documented_problem(
                "Temporal, PostgreSQL or a polling worker is missing "
                "(the problem's `errors` list every check); retry after `Retry-After` s",
                _NOT_READY_EXAMPLE,
            )
        },
        summary="Readiness: Temporal and PostgreSQL answer and a worker polls the task queue",
    )
    async def readyz(request: Request) -> JSONResponse:
        checks = await run_checks()
        failing = {name: check for name, check in checks.items() if not check.ok}
        if not failing:
            return JSONResponse(ReadinessResponse(**checks).model_dump())
        return problem_response(
            request,
            "ServiceUnavailable",
            "not ready: " + "; ".join(f"{name}: {c.detail}" for name, c in failing.items()),
            503,
            errors=[{"check": name, **check.model_dump()} for name, check in checks.items()],
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @router.get(
        "/healthz",
        response_model=HealthResponse,
        responses={
            503: {
                "model": HealthResponse,
                "description": "Not ready (as /readyz)",
                "content": {"application/json": {"example": _UNHEALTHY_EXAMPLE}},
            }
        },
        summary="The checks of /readyz as one JSON body (kept for existing monitors)",
    )
    async def healthz() -> JSONResponse:
        checks = await run_checks()
        ok = all(check.ok for check in checks.values())
        body = HealthResponse(status="ok" if ok else "unavailable", **checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    return router


async def _check(probe: Awaitable[str]) -> ComponentHealth:
    """Run one check within CHECK_TIMEOUT_S; any failure becomes a one-line detail."""
    try:
        # The clients' own timeouts are set too; this one also covers waiting for a
        # free pool connection and a server that accepts and never replies.
        detail = await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_S + 0.5)
    except TimeoutError:
        return ComponentHealth(ok=False, detail=f"no answer within {CHECK_TIMEOUT_S:.0f} s")
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ComponentHealth(ok=False, detail=text)
    return ComponentHealth(ok=True, detail=detail)
