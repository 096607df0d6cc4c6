"""Read-only audit endpoints for the auditor role: replay as of a moment, verify, export.

The same implementation as `carepath audit ...` (audit); nothing here writes.
Callers must act as an auditor: `audit_router` takes the dependency that authenticates
the caller and refuses any other role (the app passes `require_actor(Role.AUDITOR)`).
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time,
# and they name a dependency that is local to `audit_router`.

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from api.openapi_docs import problem_responses
from api.problems import ProblemError
from api.schemas import AuditReplayResponse, StreamReportResponse, VerifyReportResponse
from audit.errors import EpisodeNotInStore, InvalidAsOf
from audit.export import MEDIA_TYPES, ExportFormat, export_episode
from audit.fhir import CLIENT_SYSTEM
from audit.replay import replay_episode
from audit.verify import verify_all, verify_episode
from domain.actors import Actor
from domain.programs import ProgramCatalog
from store.event_store import EventStore
from workflows.client import EpisodeClient

# Identifies the caller and refuses anyone who is not an auditor.
AuditorDependency = Callable[..., Actor | Awaitable[Actor]]

AUDIT_RESPONSES = problem_responses(
    {
        403: "The caller is not an auditor",
        404: "No stored events for the episode",
        422: "Invalid parameters (e.g. an as-of time without offset)",
        503: "Temporal or PostgreSQL unavailable",
    }
)


def audit_router(
    store: EventStore,
    episodes: EpisodeClient,
    programs: ProgramCatalog,
    *,
    require_auditor: AuditorDependency,
    checkpoint_key: bytes | None = None,
    patient_system: str = CLIENT_SYSTEM,
) -> APIRouter:
    """The /audit endpoints over these resources; every route requires `require_auditor`."""
    router = APIRouter(prefix="/audit", tags=["audit"], responses=AUDIT_RESPONSES)
    Auditor = Annotated[Actor, Depends(require_auditor)]

    @router.get(
        "/episodes/{episode_id}/replay",
        response_model=AuditReplayResponse,
        summary="The episode's verified timeline and state as of a moment",
        description=(
            "Verifies the whole chain (and the latest signed checkpoint), then folds the events "
            "whose occurred_at is at or before `as_of`. Without `as_of` the folded state is "
            "also compared with the live workflow's state, field by field."
        ),
    )
    async def replay(
        episode_id: str,
        _auditor: Auditor,
        as_of: Annotated[
            datetime | None,
            Query(description="ISO 8601 with an offset, e.g. 2025-03-01T14:30:00Z"),
        ] = None,
    ) -> AuditReplayResponse:
        with _as_problem():
            report = await replay_episode(store, episode_id, as_of, episodes, key=checkpoint_key)
        return AuditReplayResponse.of(report)

    @router.get(
        "/episodes/{episode_id}/verify",
        response_model=StreamReportResponse,
        summary="Recompute the episode's hash chain and compare it with the latest checkpoint",
    )
    async def verify_one(episode_id: str, _auditor: Auditor) -> StreamReportResponse:
        with _as_problem():
            report = await verify_episode(store, episode_id, key=checkpoint_key)
        return StreamReportResponse.of(report)

    @router.get(
        "/verify",
        response_model=VerifyReportResponse,
        summary="Verify every stream; `ok` is false if any stream has an anomaly",
    )
    async def verify_every(_auditor: Auditor) -> VerifyReportResponse:
        return VerifyReportResponse.of(await verify_all(store, key=checkpoint_key))

    @router.get(
        "/episodes/{episode_id}/export",
        summary="The episode's stored events as JSON lines or CSV, or a FHIR R4B Bundle",
        responses={
            200: {
                "description": "The export",
                "content": {media: {} for media in MEDIA_TYPES.values()},
            }
        },
    )
    async def export(
        episode_id: str,
        auditor: Auditor,
        export_format: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.FHIR,
    ) -> Response:
        with _as_problem():
            text = await export_episode(
                store,
                episode_id,
                export_format,
                exporter=auditor,
                exported_at=datetime.now(UTC),
                programs=programs,
                patient_system=patient_system,
            )
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", episode_id)
        filename = f"episode-{safe_id}.{export_format.value}"
        return Response(
            text,
            media_type=MEDIA_TYPES[export_format],
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return router


@contextlib.contextmanager
def _as_problem() -> Iterator[None]:
    """Map the audit refusals to their HTTP status (404 and 422, not the default 409)."""
    try:
        yield
    except EpisodeNotInStore as err:
        raise ProblemError("EpisodeNotFound", err.message, 404) from None
    except InvalidAsOf as err:
        raise ProblemError("ValidationFailed", err.message, 422) from None
