"""The HTTP API: staff refer clients and read episodes; operators check health.

The app is built around already-connected resources (`ApiResources`), so the same code
serves `carepath up`, `carepath api` and the tests.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import FastAPI, Header, Query
from fastapi.responses import JSONResponse
from temporalio.client import (
    Client,
)

from carepath import __version__
from carepath.api.audit_routes import audit_router
from carepath.api.problems import ProblemError, install_problem_handlers
from carepath.api.schemas import (
    ComponentHealth,
    EpisodeListResponse,
    EpisodeResponse,
    EventsResponse,
    HealthResponse,
    ReferralRequest,
    StoredEventResponse,
)
from carepath.domain.actors import Actor, Role
from carepath.domain.commands import ReferClient
from carepath.domain.programs import ProgramCatalog
from carepath.domain.state import Stage
from carepath.store.event_store import EventStore
from carepath.workers.episodes import (
    SAFE_VALUE,
    EpisodeClient,
    EpisodeFilter,
    EpisodeNotFound,
)
from carepath.workflows.messages import DeadlinesView, TimelineView, workflow_id_for

log = structlog.get_logger("carepath.api")

PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"description": text, "content": {"application/problem+json": {}}}
    for status, text in {
        400: "Malformed JSON",
        404: "Unknown episode",
        409: "The command conflicts with the episode's state",
        422: "Invalid request or unknown program",
        503: "Temporal or PostgreSQL unavailable",
    }.items()
}


@dataclass(frozen=True)
class ApiResources:
    temporal: Client
    store: EventStore
    programs: ProgramCatalog
    task_queue: str


def _actor(user: str | None, role: str | None, default_role: Role) -> Actor:
    # Bearer-token authentication replaces these headers; until then the caller names itself.
    try:
        parsed_role = Role(role) if role else default_role
    except ValueError:
        raise ProblemError(
            "ValidationFailed",
            f"unknown role {role!r} in X-CarePath-Role: use one of {', '.join(r.value for r in Role)}",
        ) from None
    return Actor(user_id=user or "api-user", role=parsed_role)


def create_app(resources: ApiResources) -> FastAPI:
    app = FastAPI(
        title="CarePath",
        version=__version__,
        description="Care-pathway engine for Intensive Outpatient Programs.",
    )
    install_problem_handlers(app)
    episodes = EpisodeClient(resources.temporal, resources.task_queue)
    app.include_router(audit_router(resources.store, episodes, resources.programs))

    @app.post(
        "/episodes",
        status_code=201,
        response_model=EpisodeResponse,
        responses=PROBLEM_RESPONSES,
        summary="Refer a client to a program, opening an episode of care",
    )
    async def refer_client(
        body: ReferralRequest,
        x_carepath_user: Annotated[str | None, Header()] = None,
        x_carepath_role: Annotated[str | None, Header()] = None,
    ) -> EpisodeResponse:
        # Checked here as well as in the workflow so that nothing is started for a bad program.
        program = resources.programs.get(body.program_id)
        episode_id = str(uuid.uuid4())
        command = ReferClient(
            command_id=f"refer-{episode_id}",
            actor=_actor(x_carepath_user, x_carepath_role, Role.INTAKE_COORDINATOR),
            reason=body.reason,
            client_ref=body.client_ref,
            program_id=body.program_id,
            referral_source=body.referral_source,
        )
        result = await episodes.refer(episode_id, command, program)
        log.info("episode_referred", episode_id=episode_id, program_id=body.program_id)
        return EpisodeResponse(
            episode_id=episode_id, workflow_id=workflow_id_for(episode_id), state=result.state
        )

    @app.get(
        "/episodes",
        response_model=EpisodeListResponse,
        responses=PROBLEM_RESPONSES,
        summary="Episodes filtered by stage, program, primary clinician and escalation level",
    )
    async def list_episodes(
        stage: Stage | None = None,
        program_id: Annotated[str | None, Query(pattern=SAFE_VALUE)] = None,
        primary_clinician: Annotated[str | None, Query(pattern=SAFE_VALUE)] = None,
        min_escalation_level: Annotated[int | None, Query(ge=0, le=10)] = None,
        include_closed: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> EpisodeListResponse:
        filters = EpisodeFilter(
            stage=stage,
            program_id=program_id,
            primary_clinician=primary_clinician,
            min_escalation_level=min_escalation_level,
            include_closed=include_closed,
        )
        return EpisodeListResponse(episodes=await episodes.list(filters, limit=limit))

    @app.get(
        "/episodes/{episode_id}/deadlines",
        response_model=DeadlinesView,
        responses=PROBLEM_RESPONSES,
        summary="Everything pending for the episode and when it falls due",
    )
    async def get_deadlines(episode_id: str) -> DeadlinesView:
        return await episodes.deadlines(episode_id)

    @app.get(
        "/episodes/{episode_id}/timeline",
        response_model=TimelineView,
        responses=PROBLEM_RESPONSES,
        summary="The episode's most recent events, as the workflow holds them",
    )
    async def get_timeline(episode_id: str) -> TimelineView:
        return await episodes.timeline(episode_id)

    @app.get(
        "/episodes/{episode_id}",
        response_model=EpisodeResponse,
        responses=PROBLEM_RESPONSES,
        summary="The episode's current state, as the running workflow holds it",
    )
    async def get_episode(episode_id: str) -> EpisodeResponse:
        view = await episodes.view(episode_id)
        return EpisodeResponse(
            episode_id=view.episode_id, workflow_id=view.workflow_id, state=view.state
        )

    @app.get(
        "/episodes/{episode_id}/events",
        response_model=EventsResponse,
        responses=PROBLEM_RESPONSES,
        summary="The episode's events as stored in the audit record, in order",
    )
    async def get_events(episode_id: str) -> EventsResponse:
        stored = await resources.store.read_stream(episode_id)
        if not stored:
            raise EpisodeNotFound(
                f"no episode {episode_id!r}: check the id (it is returned on referral)"
            )
        return EventsResponse(
            episode_id=episode_id,
            events=[
                StoredEventResponse(
                    seq=e.seq,
                    type=e.event_type,
                    schema_version=e.schema_version,
                    occurred_at=e.occurred_at,
                    recorded_at=e.recorded_at,
                    actor_id=e.actor_id,
                    actor_role=e.actor_role,
                    command_id=e.command_id,
                    hash=e.hash,
                    payload=e.payload,
                )
                for e in stored
            ],
        )

    @app.get(
        "/healthz",
        response_model=HealthResponse,
        responses={503: {"model": HealthResponse, "description": "A dependency is down"}},
        summary="Health of Temporal and PostgreSQL",
    )
    async def healthz() -> JSONResponse:
        temporal, postgres = await asyncio.gather(
            _check(resources.temporal.service_client.check_health()),
            _check(resources.store.ping()),
        )
        body = HealthResponse(
            status="ok" if temporal.ok and postgres.ok else "unavailable",
            temporal=temporal,
            postgres=postgres,
        )
        return JSONResponse(body.model_dump(), status_code=200 if body.status == "ok" else 503)

    return app


async def _check(awaitable: object) -> ComponentHealth:
    try:
        await asyncio.wait_for(awaitable, timeout=3)  # type: ignore[arg-type]
    except Exception as exc:
        return ComponentHealth(
            ok=False, detail=str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        )
    return ComponentHealth(ok=True, detail="reachable")
