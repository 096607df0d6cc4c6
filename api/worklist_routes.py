"""Staff worklists: caseload, open escalation tasks, upcoming deadlines, episodes below
the program's weekly intensity, across episodes.

Served from the PostgreSQL read models (store.worklists), limited to the
caller's programs. A clinician's caseload defaults to their own.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel

from api.auth import READ_ROLES, User, require_role
from api.openapi_docs import problem_responses
from api.pagination import (
    INTEGER,
    NUMBER,
    TEXT,
    TIME,
    Cursor,
    decode_keyset,
    encode_cursor,
    next_link,
)
from domain.actors import Role
from domain.weeks import last_local_day, local_day
from store.worklists import (
    Worklists,
    below_intensity_key,
    caseload_key,
    deadline_key,
    task_key,
)
from workflows.client import SAFE_VALUE

WORKLIST_RESPONSES = problem_responses(
    {
        401: "No bearer token, or one that does not verify",
        403: "The caller's role may not read worklists",
        422: "Invalid filter, or a cursor that is not this list's (InvalidCursor)",
        503: "PostgreSQL unavailable",
    }
)

ProgramFilter = Annotated[str | None, Query(pattern=SAFE_VALUE)]
Limit = Annotated[int, Query(ge=1, le=2000)]


class CaseloadEntry(BaseModel):
    clinician_id: str
    episode_id: str
    program_id: str
    discipline: str
    is_primary: bool
    stage: str
    escalation_level: int


class CaseloadResponse(BaseModel):
    clinician_id: str | None
    entries: list[CaseloadEntry]
    # The next page's URL (also the `Link` header); None on the last page.
    next: str | None = None


class OpenTask(BaseModel):
    episode_id: str
    task_id: str
    program_id: str
    primary_clinician: str | None
    kind: str
    level: int
    opened_at: datetime
    due_at: datetime
    overdue: bool
    on_hold: bool
    notify: list[str]


class OpenTasksResponse(BaseModel):
    tasks: list[OpenTask]
    # The next page's URL (also the `Link` header); None on the last page.
    next: str | None = None


class UpcomingDeadline(BaseModel):
    episode_id: str
    kind: str
    ref: str | None
    due_at: datetime
    program_id: str
    primary_clinician: str | None


class UpcomingDeadlinesResponse(BaseModel):
    deadlines: list[UpcomingDeadline]
    # The next page's URL (also the `Link` header); None on the last page.
    next: str | None = None


class BelowIntensityEntry(BaseModel):
    """An open episode whose latest judged week fell below the program's minimum."""

    episode_id: str
    client_ref: str
    program_id: str
    stage: str
    primary_clinician: str | None
    week_start: datetime
    week_end: datetime
    timezone: str
    first_day: date
    last_day: date
    attended_hours: float
    minimum_hours: float
    shortfall_hours: float

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> "BelowIntensityEntry":
        """The entry of a worklist row, with the week's local days and its shortfall."""
        zone = ZoneInfo(row["timezone"])
        attended, minimum = float(row["attended_hours"]), float(row["minimum_hours"])
        return cls(
            **row
            | {
                "first_day": local_day(row["week_start"], zone),
                "last_day": last_local_day(row["week_end"], zone),
                "attended_hours": attended,
                "minimum_hours": minimum,
                "shortfall_hours": round(minimum - attended, 2),
            }
        )


class BelowIntensityResponse(BaseModel):
    episodes: list[BelowIntensityEntry]
    # The next page's URL (also the `Link` header); None on the last page.
    next: str | None = None


def _programs(user: User, program_id: str | None) -> tuple[list[str] | None, str | None]:
    return (None if (scope := user.program_filter()) is None else list(scope)), program_id


def _next(
    request: Request,
    response: Response,
    kind: str,
    rows: list[dict[str, Any]],
    limit: int,
    key: Callable[[dict[str, Any]], list[str]],
) -> str | None:
    """The next page's link: after the last row of a full page (the page after it may
    be empty), none after a short one."""
    if len(rows) < limit:
        return None
    return next_link(request, response, encode_cursor(request, kind, key(rows[-1])))


def read_your_writes(worklists: Worklists) -> Any:
    """A dependency that holds the read until the read models include `min_position`."""

    async def caught_up(
        min_position: Annotated[
            int | None,
            Query(
                ge=1,
                description="Answer only once the read models include the event at this "
                "position (the `position` of a command's answer), so the caller sees their "
                "own change; 503 ProjectionBehind if that takes over 5 s",
            ),
        ] = None,
    ) -> None:
        if min_position is not None:
            await worklists.wait_for(min_position)

    return caught_up


def worklist_router(worklists: Worklists) -> APIRouter:
    router = APIRouter(
        tags=["worklists"],
        responses=WORKLIST_RESPONSES,
        dependencies=[Depends(read_your_writes(worklists))],
    )
    Reader = Annotated[User, Depends(require_role(*READ_ROLES))]

    @router.get(
        "/caseload",
        response_model=CaseloadResponse,
        summary="Open episodes per care-team member (a clinician's own by default)",
    )
    async def caseload(
        request: Request,
        response: Response,
        user: Reader,
        clinician_id: Annotated[
            str | None,
            Query(
                pattern=SAFE_VALUE, description="Whose caseload; clinicians default to their own"
            ),
        ] = None,
        program_id: ProgramFilter = None,
        limit: Limit = 500,
        cursor: Cursor = None,
    ) -> CaseloadResponse:
        after = decode_keyset(request, cursor, "caseload", (TEXT, INTEGER, TEXT))
        if clinician_id is None and user.role is Role.CLINICIAN:
            clinician_id = user.user_id
        programs, program = _programs(user, program_id)
        rows = await worklists.caseload(programs, clinician_id, program, limit, after)
        return CaseloadResponse(
            clinician_id=clinician_id,
            entries=[CaseloadEntry(**row) for row in rows],
            next=_next(request, response, "caseload", rows, limit, caseload_key),
        )

    @router.get(
        "/tasks",
        response_model=OpenTasksResponse,
        summary="Open escalation tasks (outreach, case reviews, ...; at most one per concern, "
        "superseded ones left out), soonest due first",
    )
    async def open_tasks(
        request: Request,
        response: Response,
        user: Reader,
        program_id: ProgramFilter = None,
        min_level: Annotated[int | None, Query(ge=0, le=10)] = None,
        overdue_only: bool = False,
        limit: Limit = 500,
        cursor: Cursor = None,
    ) -> OpenTasksResponse:
        after = decode_keyset(request, cursor, "tasks", (TIME, TEXT, TEXT))
        programs, program = _programs(user, program_id)
        rows = await worklists.open_tasks(programs, program, min_level, overdue_only, limit, after)
        return OpenTasksResponse(
            tasks=[OpenTask(**row) for row in rows],
            next=_next(request, response, "tasks", rows, limit, task_key),
        )

    @router.get(
        "/deadlines",
        response_model=UpcomingDeadlinesResponse,
        summary="Everything pending across open episodes, soonest first",
    )
    async def upcoming_deadlines(
        request: Request,
        response: Response,
        user: Reader,
        program_id: ProgramFilter = None,
        due_before: Annotated[
            AwareDatetime | None, Query(description="ISO 8601 with offset")
        ] = None,
        limit: Limit = 500,
        cursor: Cursor = None,
    ) -> UpcomingDeadlinesResponse:
        after = decode_keyset(request, cursor, "deadlines", (TIME, TEXT, TEXT, TEXT))
        programs, program = _programs(user, program_id)
        rows = await worklists.upcoming_deadlines(programs, program, due_before, limit, after)
        return UpcomingDeadlinesResponse(
            deadlines=[UpcomingDeadline(**row) for row in rows],
            next=_next(request, response, "deadlines", rows, limit, deadline_key),
        )

    @router.get(
        "/worklists/below-intensity",
        response_model=BelowIntensityResponse,
        summary="Open episodes whose latest judged week fell below the program's minimum "
        "hours, the largest shortfall first",
    )
    async def below_intensity(
        request: Request,
        response: Response,
        user: Reader,
        program_id: ProgramFilter = None,
        clinician_id: Annotated[
            str | None, Query(pattern=SAFE_VALUE, description="Only this primary clinician's")
        ] = None,
        limit: Limit = 500,
        cursor: Cursor = None,
    ) -> BelowIntensityResponse:
        after = decode_keyset(request, cursor, "below-intensity", (NUMBER, TIME, TEXT))
        programs, program = _programs(user, program_id)
        rows = await worklists.below_intensity(programs, program, clinician_id, limit, after)
        return BelowIntensityResponse(
            episodes=[BelowIntensityEntry.of_row(row) for row in rows],
            next=_next(request, response, "below-intensity", rows, limit, below_intensity_key),
        )

    return router
