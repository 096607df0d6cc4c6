"""The HTTP API: staff refer clients and read episodes; operators check health.

The app is built around already-connected resources (`ApiResources`), so the same code
serves `carepath up`, `carepath api` and the tests.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import version
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import structlog
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from temporalio.client import (
    Client,
)

from api.access import AccessLogMiddleware, access_router
from api.audit_routes import audit_router
from api.auth import (
    READ_ROLES,
    Authenticator,
    NoUsers,
    User,
    current_user,
    require_actor,
    require_role,
)
from api.codec_routes import install_codec
from api.command_routes import IdempotencyKey, command_router, role_first
from api.console.audit import audit_pages
from api.console.chart import chart_router
from api.console.errors import ConsoleErrorPages
from api.console.oidc import OidcConfig, OidcLogin, oidc_router
from api.console.routes import PREFIX as CONSOLE_PREFIX
from api.console.routes import STATIC_DIR, Console, console_router
from api.console.session import Sessions
from api.console.today import today_router
from api.docs_routes import install_offline_docs
from api.fhir_routes import install_fhir
from api.health_routes import PROBE_PATHS, health_router
from api.limits import (
    AuthFailureLimiter,
    HttpLimits,
    RequestLimitMiddleware,
    SecurityHeadersMiddleware,
)
from api.measure_routes import measure_router
from api.metrics import metrics_router
from api.openapi_docs import TAGS, describe, problem_responses
from api.pagination import Cursor, decode_cursor, encode_cursor, invalid_cursor, next_link
from api.problems import Problem, ProblemError, install_problem_handlers
from api.request_log import RequestLogMiddleware
from api.schemas import (
    AttendanceResponse,
    AttendanceWeekResponse,
    DeadlinesResponse,
    EpisodeListResponse,
    EpisodeResponse,
    EpisodeSummaryResponse,
    EventsResponse,
    ReferralRequest,
    StoredEventResponse,
    TimelineEntryResponse,
    TimelineResponse,
    local_time,
)
from api.scoping import EpisodeGate
from api.worklist_routes import read_your_writes, worklist_router
from audit.fhir import CLIENT_SYSTEM
from domain.actors import Role
from domain.commands import ReferClient
from domain.programs import ProgramCatalog
from domain.state import Stage
from domain.weeks import last_local_day, local_day
from store.access_log import AccessLog
from store.console import ConsoleQueries
from store.console_chart import ChartQueries
from store.event_store import EventStore
from store.worklists import Worklists
from workers.settings import DEFAULT_TEMPORAL_RPC_TIMEOUT
from workers.temporal import payload_sealer
from workflows.client import (
    SAFE_VALUE,
    EpisodeClient,
    EpisodeFilter,
    EpisodeNotFound,
    InvalidPageToken,
)
from workflows.messages import workflow_id_for

log = structlog.get_logger("carepath.api")

PROBLEM_RESPONSES = problem_responses(
    {
        400: "Malformed JSON",
        401: "No bearer token, or one that does not verify",
        403: "The caller's role or programs do not allow this",
        404: "No such episode in the caller's programs",
        409: "The command conflicts with the episode's state",
        413: "The request body is larger than CAREPATH_MAX_BODY_BYTES",
        422: "Invalid request or unknown program",
        429: "Too many failed authentications from this address; see Retry-After",
        503: "Temporal or PostgreSQL unavailable",
    }
)
# Any staff role or the auditor, authenticated; episodes are then limited by program.
Reader = Annotated[User, Depends(require_role(*READ_ROLES))]
# Open to anyone: nothing about an episode passes through them.
OPEN_ROUTES = PROBE_PATHS
# Referral retries with the same Idempotency-Key reach the same episode (see refer_client).
_REFERRAL_NAMESPACE = uuid.UUID("6f0c7a52-4d7e-4c8e-9a51-2f1b8a3c9d10")
# The bodies of the routes that read one episode from its workflow.
_WorkflowRead = DeadlinesResponse | EpisodeResponse


@dataclass(frozen=True)
class ApiResources:
    temporal: Client
    store: EventStore
    programs: ProgramCatalog
    task_queue: str
    # Who may call: a users file or JWTs (api.auth.build_authenticator). The
    # default refuses every token, so an app built without one serves only the probes.
    authenticator: Authenticator = field(default_factory=NoUsers)
    # Key that signs audit checkpoints (for the /audit verification), if any.
    checkpoint_key: bytes | None = None
    # Seconds any call into Temporal may take before the caller gets 503.
    rpc_timeout: float = DEFAULT_TEMPORAL_RPC_TIMEOUT
    # The Temporal UI's origin, which may call the codec endpoints cross-origin.
    codec_ui_origin: str | None = None
    # Request body size, JSON depth, failed authentications per address (api.limits).
    limits: HttpLimits = field(default_factory=HttpLimits)
    # Events after which a new episode's run continues as new; None: the workflow's default.
    history_event_limit: int | None = None
    # Where this process's Temporal runtime exports the SDK's metrics (workers.metrics);
    # None: `/metrics` serves CarePath's series only.
    sdk_metrics_url: str | None = None
    # The key that signs the console's session cookies (CAREPATH_CONSOLE_SESSION_SECRET);
    # None: a fresh one per process, so sessions end when the API restarts and are not
    # shared between replicas.
    console_secret: bytes | None = None
    # Idle minutes after which a console session ends.
    console_idle_minutes: float = 30
    # The identity provider the console signs staff in through (CAREPATH_OIDC_*), if any.
    oidc: OidcConfig | None = None
    # The identifier system of the client's Patient in FHIR (CAREPATH_FHIR_PATIENT_IDENTIFIER_SYSTEM).
    fhir_patient_system: str = CLIENT_SYSTEM


def install_console(app: FastAPI, resources: ApiResources, episodes: EpisodeClient) -> None:
    """The staff console's pages at `/` and its files at `/static` (api.console)."""
    secret = resources.console_secret or secrets.token_bytes(32)
    console = Console(
        sessions=Sessions(secret, idle_s=resources.console_idle_minutes * 60),
        authenticator=resources.authenticator,
        episodes=episodes,
        queries=ConsoleQueries(resources.store.pool),
        programs=resources.programs,
        oidc=OidcLogin(resources.oidc, secret) if resources.oidc is not None else None,
        fhir_patient_system=resources.fhir_patient_system,
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(console_router(console))
    app.include_router(today_router(console))
    if console.oidc is not None:
        app.include_router(oidc_router(console, console.oidc))
    app.include_router(
        chart_router(console, ChartQueries(resources.store.pool), EpisodeGate(resources.store.pool))
    )
    app.include_router(
        audit_pages(console, resources.store, checkpoint_key=resources.checkpoint_key)
    )

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PREFIX}/", status_code=303)


def create_app(resources: ApiResources) -> FastAPI:
    app = FastAPI(
        title="CarePath",
        version=version("carepath"),
        description="Care-pathway engine for Intensive Outpatient Programs.",
        # Served by install_offline_docs instead: FastAPI's own pages load from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_tags=TAGS,
    )
    install_offline_docs(app)
    install_problem_handlers(app)
    app.state.authenticator = resources.authenticator
    pool = resources.store.pool
    app.add_middleware(AccessLogMiddleware, access_log=AccessLog(pool))
    # Added last, so they wrap the rest: an oversized body is refused before it is
    # read, and every answer (refusals included) carries the security headers.
    limits = resources.limits
    app.state.auth_limiter = AuthFailureLimiter(
        limits.auth_failure_limit, limits.auth_failure_window_seconds
    )
    app.add_middleware(RequestLimitMiddleware, limits=limits)
    # Inside the security headers, so a console error page gets the page's policy.
    app.add_middleware(ConsoleErrorPages)
    app.add_middleware(SecurityHeadersMiddleware)
    episodes = EpisodeClient(
        resources.temporal,
        resources.task_queue,
        rpc_timeout=timedelta(seconds=resources.rpc_timeout),
        history_event_limit=resources.history_event_limit,
    )
    worklists = Worklists(pool)
    gate = EpisodeGate(pool)
    app.include_router(
        audit_router(
            resources.store,
            episodes,
            resources.programs,
            require_auditor=require_actor(Role.AUDITOR),
            checkpoint_key=resources.checkpoint_key,
            patient_system=resources.fhir_patient_system,
        )
    )
    install_fhir(
        app, resources.store, resources.programs, patient_system=resources.fhir_patient_system
    )
    app.include_router(access_router(AccessLog(pool)))
    app.include_router(command_router(episodes, gate, resources.programs))
    app.include_router(worklist_router(worklists))
    app.include_router(measure_router(pool))
    app.include_router(health_router(resources.temporal, resources.store, resources.task_queue))
    app.include_router(metrics_router(resources.sdk_metrics_url))
    install_console(app, resources, episodes)
    codec = payload_sealer(resources.temporal.data_converter)
    if codec is not None:
        # The client's own codec: the endpoints decode with the keys the API encrypts with.
        install_codec(app, codec, resources.codec_ui_origin)

    async def refer_client(
        request: Request,
        body: ReferralRequest,
        user: Annotated[User, Depends(current_user)],
        idempotency_key: IdempotencyKey = None,
    ) -> EpisodeResponse:
        actor = user.actor()
        # The role matrix was checked before the body was read (role_first, below).
        if not user.may_access(body.program_id):
            raise ProblemError(
                "AccessDenied",
                f"you do not work in program {body.program_id!r}: refer to one of "
                f"{', '.join(user.programs)}, or ask a user of that program",
                403,
            )
        # Checked here as well as in the workflow so that nothing is started for a bad program.
        program = resources.programs.get(body.program_id)
        # A retried referral (same key, same user) reaches the same episode, where the
        # update id makes it apply once; without a key every referral opens a new episode.
        episode_id = (
            str(uuid.uuid5(_REFERRAL_NAMESPACE, f"{user.user_id}\n{idempotency_key}"))
            if idempotency_key
            else str(uuid.uuid4())
        )
        request.state.episode_id = episode_id
        command = ReferClient(
            command_id=idempotency_key or f"refer-{episode_id}",
            actor=actor,
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

    app.router.add_api_route(
        "/episodes",
        refer_client,
        methods=["POST"],
        status_code=201,
        response_model=EpisodeResponse,
        responses=PROBLEM_RESPONSES,
        tags=["episodes"],
        summary="Refer a client to a program, opening an episode of care",
        route_class_override=role_first("refer_client"),
    )

    @app.get(
        "/episodes",
        response_model=EpisodeListResponse,
        responses=PROBLEM_RESPONSES,
        tags=["episodes"],
        summary="Episodes filtered by stage, program, primary clinician and escalation level",
    )
    async def list_episodes(
        request: Request,
        response: Response,
        user: Reader,
        stage: Stage | None = None,
        program_id: Annotated[str | None, Query(pattern=SAFE_VALUE)] = None,
        primary_clinician: Annotated[str | None, Query(pattern=SAFE_VALUE)] = None,
        min_escalation_level: Annotated[int | None, Query(ge=0, le=10)] = None,
        include_closed: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Cursor = None,
    ) -> EpisodeListResponse:
        scope = user.program_filter()
        filters = EpisodeFilter(
            stage=stage,
            program_id=program_id,
            primary_clinician=primary_clinician,
            min_escalation_level=min_escalation_level,
            include_closed=include_closed,
            # Program ids that could not be quoted safely match nothing, like absent ones.
            program_ids=None if scope is None else tuple(p for p in scope if _safe(p)),
        )
        try:
            found, token = await episodes.page(
                filters, limit=limit, token=_page_token(request, cursor)
            )
        except InvalidPageToken as err:
            raise invalid_cursor(str(err)) from None
        following = (
            None
            if token is None
            else encode_cursor(request, "episodes", base64.b64encode(token).decode())
        )
        return EpisodeListResponse(
            episodes=[EpisodeSummaryResponse.of(e) for e in found],
            next=next_link(request, response, following),
        )

    def read_from_workflow(
        name: str,
        path: str,
        body: type[_WorkflowRead],
        read: Callable[[str], Awaitable[object]],
        summary: str,
    ) -> None:
        """GET `/episodes/{episode_id}<path>`: what the episode's workflow answers to `read`,
        once the caller may see the episode."""

        async def endpoint(episode_id: str, request: Request, user: Reader) -> _WorkflowRead:
            await gate.check(request, user, episode_id)
            answer = body.of(await read(episode_id))
            if isinstance(answer, DeadlinesResponse):
                # Due times on the clinic's clock too; the moments themselves stay UTC.
                answer = answer.in_zone(await worklists.episode_timezone(episode_id))
            return answer

        app.add_api_route(
            "/episodes/{episode_id}" + path,
            endpoint,
            methods=["GET"],
            name=name,
            response_model=body,
            responses=PROBLEM_RESPONSES,
            tags=["episodes"],
            summary=summary,
        )

    read_from_workflow(
        "get_deadlines",
        "/deadlines",
        DeadlinesResponse,
        episodes.deadlines,
        "Everything pending for the episode and when it falls due",
    )
    read_from_workflow(
        "get_episode",
        "",
        EpisodeResponse,
        episodes.view,
        "The episode's current state, as the running workflow holds it",
    )

    @app.get(
        "/episodes/{episode_id}/attendance",
        response_model=AttendanceResponse,
        responses=PROBLEM_RESPONSES,
        tags=["episodes"],
        summary="Hours attended week by week against the program's minimum (the attended-"
        "hours read model), in the clinic's local days",
        dependencies=[Depends(read_your_writes(worklists))],
    )
    async def get_attendance(episode_id: str, request: Request, user: Reader) -> AttendanceResponse:
        program = await gate.check(request, user, episode_id)
        zone = await worklists.episode_timezone(episode_id)
        rows = await worklists.attendance(episode_id)
        return AttendanceResponse(
            episode_id=episode_id,
            program_id=program,
            timezone=zone,
            weeks=tuple(_attendance_week(row, zone) for row in rows),
        )

    async def read_stored(request: Request, user: User, episode_id: str) -> list[Any]:
        """The episode's stored events, after the access gate; 404 when it has none."""
        await gate.check(request, user, episode_id)
        stored = await resources.store.read_stream(episode_id)
        if not stored:
            raise EpisodeNotFound(
                f"no episode {episode_id!r}: check the id (it is returned on referral)"
            )
        return list(stored)

    @app.get(
        "/episodes/{episode_id}/timeline",
        response_model=TimelineResponse,
        responses=PROBLEM_RESPONSES,
        tags=["episodes"],
        summary="The episode's whole timeline, from the event store",
    )
    async def get_timeline(episode_id: str, request: Request, user: Reader) -> TimelineResponse:
        # From the store, not from the workflow: a workflow run holds only the entries
        # since its last continue-as-new, the store holds the episode's whole life.
        stored = await read_stored(request, user, episode_id)
        return TimelineResponse(
            episode_id=episode_id,
            entries=tuple(
                TimelineEntryResponse(
                    seq=e.seq,
                    type=e.event_type,
                    occurred_at=e.occurred_at,
                    actor_id=e.actor_id,
                    actor_role=e.actor_role,
                )
                for e in stored
            ),
        )

    @app.get(
        "/episodes/{episode_id}/events",
        response_model=EventsResponse,
        responses=PROBLEM_RESPONSES,
        tags=["episodes"],
        summary="The episode's events as stored in the audit record, in order",
    )
    async def get_events(episode_id: str, request: Request, user: Reader) -> EventsResponse:
        stored = await read_stored(request, user, episode_id)
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

    # Added after every other middleware, so it wraps them all: every request, refused
    # ones included, is named and logged once.
    app.add_middleware(RequestLogMiddleware)
    _document_security(app)
    return app


def _attendance_week(row: dict[str, Any], zone: str) -> AttendanceWeekResponse:
    start, end = row["week_start"], row["week_end"]
    return AttendanceWeekResponse(
        **row,
        local_start=local_time(start, zone),
        local_end=local_time(end, zone),
        first_day=local_day(start, ZoneInfo(zone)),
        last_day=last_local_day(end, ZoneInfo(zone)),
    )


def _page_token(request: Request, cursor: str | None) -> bytes | None:
    """Temporal's page token that an episode list's cursor carries."""
    position = decode_cursor(request, cursor, "episodes")
    if position is None:
        return None
    try:
        if isinstance(position, str) and position:
            return base64.b64decode(position, validate=True)
    except ValueError:
        pass
    raise invalid_cursor("the cursor does not belong to the episodes list")


def _safe(value: str) -> bool:
    return re.fullmatch(SAFE_VALUE, value) is not None


_GENERIC = {
    str(status): response
    for status, response in problem_responses(
        {
            400: "Malformed JSON",
            401: "No bearer token, or one that does not verify",
            403: "The caller's role may not do this",
            422: "Invalid request",
            503: "A server CarePath needs (or the access log) is unavailable",
        }
    ).items()
}


def _lift_example(request_body: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Show the body model's first example on the request body itself (OpenAPI `example`)."""
    media = request_body.get("content", {}).get("application/json")
    if media is None or "example" in media:
        return
    schema = media.get("schema", {})
    for candidate in [schema, *schema.get("anyOf", [])]:
        ref = candidate.get("$ref", "")
        examples = schemas.get(ref.rsplit("/", 1)[-1], {}).get("examples") if ref else None
        if examples:
            media["example"] = examples[0]
            return


def _document_security(app: FastAPI) -> None:
    """Every route but the open ones needs the bearer token; say so in the OpenAPI document,
    and give every problem answer the problem document's schema."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {})
        schemes = components.setdefault("securitySchemes", {})
        schemes.setdefault("HTTPBearer", {"type": "http", "scheme": "bearer"})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.setdefault("schemas", {})["ProblemDocument"] = problem_schema
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if path not in OPEN_ROUTES:
                    operation["security"] = [{"HTTPBearer": []}]
                    for status in ("401", "403", "503"):
                        responses.setdefault(status, copy.deepcopy(_GENERIC[status]))
                if "requestBody" in operation:
                    for status in ("400", "422"):
                        responses.setdefault(status, copy.deepcopy(_GENERIC[status]))
                    _lift_example(operation["requestBody"], components.get("schemas", {}))
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if "application/problem+json" in content:
                        content["application/problem+json"]["schema"] = {
                            "$ref": "#/components/schemas/ProblemDocument"
                        }
                    if status == "422" and "application/json" in content:
                        # FastAPI's own validation answer is replaced by a problem document.
                        response["content"] = {
                            "application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/ProblemDocument"}
                            }
                        }
        app.openapi_schema = describe(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
