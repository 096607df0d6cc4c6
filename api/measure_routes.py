"""`GET /measures`: the quality measures of a date range, for oversight and audit.

Computed on each request by the pure `domain.measures.compute_measures` from the event
streams of the episodes that may count in the range (`store.measure_streams`, one query),
limited to the caller's programs like every other list. docs/measures.md defines each
measure. The access log records each request, like every read of episode data.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.auth import User, require_role
from api.openapi_docs import problem_example, problem_responses
from api.problems import ProblemError
from api.worklist_routes import read_your_writes
from domain.actors import Role
from domain.measures import QualityMeasures, compute_measures
from domain.vocabulary import EARLIEST_MOMENT, LATEST_MOMENT
from store.db import Pool
from store.measure_streams import measure_streams
from store.worklists import Worklists
from workflows.client import SAFE_VALUE

MEASURE_ROLES = (Role.SUPERVISOR, Role.CLINICAL_DIRECTOR, Role.AUDITOR)
# The longest range one request measures: a few years of episodes, read in one query.
MAX_RANGE = timedelta(days=3 * 366)

_RANGE_EXAMPLE = problem_example(422, "/measures", "InvalidRange")
_RANGE_EXAMPLE["detail"] = "the range ends (2026-01-01) before it starts (2026-03-31): swap them"

MEASURE_RESPONSES = problem_responses(
    {
        401: "No bearer token, or one that does not verify",
        403: "The caller's role may not read the measures (supervisor, clinical director "
        "and auditor may)",
        503: "PostgreSQL unavailable, or the read models behind `min_position`",
    }
)
MEASURE_RESPONSES[422] = {
    "description": "A missing or invalid date, a range that ends before it starts or spans "
    "more than three years (InvalidRange)",
    "content": {"application/problem+json": {"example": _RANGE_EXAMPLE}},
}


def _rate(numerator: int, denominator: int) -> dict[str, Any]:
    return {
        "value": round(numerator / denominator, 4),
        "numerator": numerator,
        "denominator": denominator,
        "n": denominator,
    }


def _spread(mean: float, median: float, p90: float, n: int, unit: str) -> dict[str, Any]:
    return {"value": mean, "median": median, "p90": p90, "n": n, "unit": unit}


# What a quarter of a mid-sized program looks like.
MEASURES_EXAMPLE: dict[str, Any] = {
    "start": "2026-01-01",
    "end": "2026-03-31",
    "program_id": "adult-iop",
    "episodes": 84,
    "days_to_first_session": _spread(6.4, 5.0, 12.0, 71, "days"),
    "initiation_14_days": _rate(63, 72),
    "engagement_34_days": _rate(41, 58),
    "follow_up_7_days": _rate(22, 37),
    "follow_up_30_days": _rate(31, 33),
    "completion": _rate(29, 44),
    "length_of_stay": _spread(61.2, 63.0, 84.0, 44, "days"),
    "attendance": {"value": 0.8123, "numerator": 2210, "denominator": 2721, "n": 78},
    "weeks_below_intensity": {"value": 0.1841, "numerator": 121, "denominator": 657, "n": 76},
    "escalations_per_100_weeks": {
        "1": {"value": 14.2, "numerator": 101, "denominator": 711.3, "n": 80},
        "2": {"value": 5.1, "numerator": 36, "denominator": 711.3, "n": 80},
        "3": {"value": 1.3, "numerator": 9, "denominator": 711.3, "n": 80},
    },
    "task_resolution_hours": _spread(19.5, 11.0, 52.0, 139, "hours"),
    "readmission_30_days": _rate(3, 33),
    "readmission_90_days": _rate(5, 21),
}


def measure_router(pool: Pool) -> APIRouter:
    router = APIRouter(
        tags=["measures"],
        responses=MEASURE_RESPONSES,
        dependencies=[Depends(read_your_writes(Worklists(pool)))],
    )
    Overseer = Annotated[User, Depends(require_role(*MEASURE_ROLES))]

    @router.get(
        "/measures",
        response_model=QualityMeasures,
        summary="Quality measures over a date range: engagement, follow-up after step-down "
        "or discharge, and flow (docs/measures.md)",
        responses={200: {"content": {"application/json": {"example": MEASURES_EXAMPLE}}}},
    )
    async def measures(
        user: Overseer,
        start: Annotated[
            date,
            Query(description="First day of the range (in each program's time zone)"),
        ],
        end: Annotated[
            date,
            Query(description="Last day of the range, included; measured as of its end"),
        ],
        program: Annotated[
            str | None,
            Query(pattern=SAFE_VALUE, description="Only this program's episodes"),
        ] = None,
    ) -> QualityMeasures:
        for day in (start, end):
            if not EARLIEST_MOMENT.year <= day.year < LATEST_MOMENT.year:
                raise ProblemError(
                    "InvalidRange",
                    f"{day} is outside the years {EARLIEST_MOMENT.year}-"
                    f"{LATEST_MOMENT.year - 1}: check the year",
                    422,
                )
        if end < start:
            raise ProblemError(
                "InvalidRange",
                f"the range ends ({end}) before it starts ({start}): swap them",
                422,
            )
        if end - start > MAX_RANGE:
            raise ProblemError(
                "InvalidRange",
                f"the range {start}..{end} is longer than three years: measure it in parts",
                422,
            )
        scope = user.program_filter()
        streams = await measure_streams(
            pool,
            start=start,
            end=end,
            programs=None if scope is None else list(scope),
            program_id=program,
        )
        return compute_measures(streams, start=start, end=end, program_id=program)

    return router
