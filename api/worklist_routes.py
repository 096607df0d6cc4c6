"""Staff worklists: caseload, open escalation tasks, upcoming deadlines, episodes below
the program's weekly intensity, across episodes.

Served from the PostgreSQL read models (store.worklists), limited to the
caller's programs. A clinician's caseload defaults to their own.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel

from api.auth import READ_ROLES, User, require_role
from domain.actors import Role
from domain.weeks import last_local_day, local_day
from store.worklists import Worklists
from workflows.client import SAFE_VALUE

WORKLIST_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"description": text, "content": {"application/problem+json": {}}}
    for status, text in {
        401: "No bearer token, or one that does not verify",
        403: "The caller's role may not read worklists",
        422: "Invalid filter",
        503: "PostgreSQL unavailable",
    }.items()
}

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


class UpcomingDeadline(BaseModel):
    episode_id: str
    kind: str
    ref: str | None
    due_at: datetime
    program_id: str
    primary_clinician: str | None


class UpcomingDeadlinesResponse(BaseModel):
    deadlines: list[UpcomingDeadline]


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


def _programs(user: User, program_id: str | None) -> tuple[list[str] | None, str | None]:
    return (None if (scope := user.program_filter()) is None else list(scope)), program_id


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
        user: Reader,
        clinician_id: Annotated[
            str | None,
            Query(
                pattern=SAFE_VALUE, description="Whose caseload; clinicians default to their own"
            ),
        ] = None,
        program_id: ProgramFilter = None,
        limit: Limit = 500,
    ) -> CaseloadResponse:
        if clinician_id is None and user.role is Role.CLINICIAN:
            clinician_id = user.user_id
        programs, program = _programs(user, program_id)
        rows = await worklists.caseload(programs, clinician_id, program, limit)
        return CaseloadResponse(
            clinician_id=clinician_id, entries=[CaseloadEntry(**row) for row in rows]
        )

    @router.get(
        "/tasks",
        response_model=OpenTasksResponse,
        summary="Open escalation tasks (outreach, case reviews, ...; at most one per concern, "
        "superseded ones left out), soonest due first",
    )
    async def open_tasks(
        user: Reader,
        program_id: ProgramFilter = None,
        min_level: Annotated[int | None, Query(ge=0, le=10)] = None,
        overdue_only: bool = False,
        limit: Limit = 500,
    ) -> OpenTasksResponse:
        programs, program = _programs(user, program_id)
        rows = await worklists.open_tasks(programs, program, min_level, overdue_only, limit)
        return OpenTasksResponse(tasks=[OpenTask(**row) for row in rows])

    @router.get(
        "/deadlines",
        response_model=UpcomingDeadlinesResponse,
        summary="Everything pending across open episodes, soonest first",
    )
    async def upcoming_deadlines(
        user: Reader,
        program_id: ProgramFilter = None,
        due_before: Annotated[
            AwareDatetime | None, Query(description="ISO 8601 with offset")
        ] = None,
        limit: Limit = 500,
    ) -> UpcomingDeadlinesResponse:
        programs, program = _programs(user, program_id)
        rows = await worklists.upcoming_deadlines(programs, program, due_before, limit)
        return UpcomingDeadlinesResponse(deadlines=[UpcomingDeadline(**row) for row in rows])

    @router.get(
        "/worklists/below-intensity",
        response_model=BelowIntensityResponse,
        summary="Open episodes whose latest judged week fell below the program's minimum "
        "hours, the largest shortfall first",
    )
    async def below_intensity(
        user: Reader,
        program_id: ProgramFilter = None,
        clinician_id: Annotated[
            str | None, Query(pattern=SAFE_VALUE, description="Only this primary clinician's")
        ] = None,
        limit: Limit = 500,
    ) -> BelowIntensityResponse:
        programs, program = _programs(user, program_id)
        rows = await worklists.below_intensity(programs, program, clinician_id, limit)
        return BelowIntensityResponse(episodes=[BelowIntensityEntry.of_row(row) for row in rows])

    return router
