"""The console's Today page and intake board.

Today (`/console/today`) lists the sessions that start on the clinic's local day (each
program's time zone) in the user's programs (a clinician: their caseload's), and records
everyone's attendance in one form: a choice per session, posted once, each choice applied
as its own `record_attendance` command with its own idempotency key (fresh per render,
so a form submitted twice applies once). A refused choice is shown on its row; the others
are applied.

The intake board (`/console/intake`) lists the referrals not yet in the program by
stage, with what each is waiting for, how long it has waited and its next deadline.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.command_specs import spec_for
from api.console.routes import (
    PREFIX,
    TEMPLATES,
    Console,
    Refusal,
    _to_signin,
    checked_form,
    render,
    send_command,
    signed_in,
)
from domain.actors import Role
from domain.errors import CarePathError
from domain.vocabulary import AttendanceStatus
from store.console import INTAKE_STAGES

# The choices of the attendance form, in the order they are offered.
CHOICES = (
    (AttendanceStatus.ATTENDED, "attended"),
    (AttendanceStatus.PARTIAL, "partial"),
    (AttendanceStatus.EXCUSED, "excused"),
    (AttendanceStatus.NO_SHOW, "no-show"),
)


# --- how long, in the clinic's words -------------------------------------------------------


def humane_wait(since: datetime | None, now: datetime | None = None) -> str:
    """How long since `since`, as staff say it: "under a minute", "25 min", "5 h",
    "3 days", "2 weeks"."""
    if since is None:
        return "—"
    seconds = max(((now or datetime.now(UTC)) - since).total_seconds(), 0)
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h"
    days = int(seconds // 86400)
    if days < 14:
        return f"{days} days"
    return f"{days // 7} weeks"


TEMPLATES.env.filters["waited"] = humane_wait


# --- the clinic's day --------------------------------------------------------------------------


def _zone(console: Console, program_id: str) -> str:
    try:
        return console.programs.get(program_id).timezone
    except CarePathError:  # a program no longer in the catalog
        return "UTC"


def local_day_bounds(timezone: str, now: datetime) -> tuple[datetime, datetime]:
    """The start and end (exclusive) of the local calendar day at `now` in `timezone`,
    as instants (a day of 23 or 25 hours when the clocks change)."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    start = datetime.combine(today, time(), zone)
    end = datetime.combine(today + timedelta(days=1), time(), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def _programs_of(console: Console, programs: tuple[str, ...] | None) -> tuple[str, ...]:
    return console.programs.ids() if programs is None else programs


@dataclass(frozen=True)
class RowError:
    """Why one session's attendance was not recorded."""

    message: str
    fields: dict[str, str]


async def _today_rows(console: Console, session: Any, now: datetime) -> list[dict[str, Any]]:
    user = session.user
    days = [
        (program_id, *local_day_bounds(_zone(console, program_id), now))
        for program_id in _programs_of(console, user.program_filter())
    ]
    rows = await console.queries.sessions_on(
        days, clinician_id=user.user_id if user.role is Role.CLINICIAN else None
    )
    for row in rows:
        zone = ZoneInfo(_zone(console, row["program_id"]))
        starts = row["starts_at"].astimezone(zone)
        row["timezone"] = zone.key
        row["local_start"] = starts.strftime("%H:%M")
        row["local_end"] = (starts + timedelta(hours=float(row["hours"]))).strftime("%H:%M")
        row["started"] = row["starts_at"] <= now
    return rows


def _may_record(session: Any) -> bool:
    return bool(session.role in spec_for("record_attendance").roles)


def today_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    async def page(
        request: Request,
        session: Any,
        *,
        status: int = 200,
        recorded: int | None = None,
        errors: dict[str, RowError] | None = None,
        chosen: dict[str, tuple[str, str]] | None = None,
    ) -> Response:
        now = datetime.now(UTC)
        rows = await _today_rows(console, session, now)
        return render(
            request,
            console,
            "today.html",
            session,
            status=status,
            rows=rows,
            may_record=_may_record(session),
            choices=CHOICES,
            recorded=recorded,
            errors=errors or {},
            chosen=chosen or {},
            mine=session.role is Role.CLINICIAN,
            idempotency_key=str(uuid.uuid4()),
        )

    @router.get("/today", response_class=HTMLResponse)
    async def today(
        request: Request, after: int | None = None, recorded: int | None = None
    ) -> Response:
        session = signed_in(console, request)
        if session is None:
            return _to_signin(request)
        if session.role is Role.AUDITOR:
            return RedirectResponse(f"{PREFIX}/audit", status_code=303)
        await console.queries.caught_up(after)
        return await page(request, session, recorded=recorded)

    @router.post("/today/attendance", response_class=HTMLResponse)
    async def record(request: Request) -> Response:
        session = signed_in(console, request)
        if session is None:
            return _to_signin(request)
        form = await checked_form(console, request, session)
        key = str(form.get("idempotency_key") or "") or str(uuid.uuid4())
        errors: dict[str, RowError] = {}
        chosen: dict[str, tuple[str, str]] = {}
        positions: list[int] = []
        applied = 0
        for index in range(int(str(form.get("rows") or 0))):
            ref, choice = form.get(f"s{index}_ref"), form.get(f"s{index}_status")
            if not isinstance(ref, str) or "/" not in ref or not choice:
                continue
            episode_id, session_id = ref.split("/", 1)
            hours = str(form.get(f"s{index}_hours") or "").strip()
            body: dict[str, Any] = {"session_id": session_id, "status": str(choice)}
            if choice == AttendanceStatus.PARTIAL.value and hours:
                body["hours"] = hours
            outcome = await send_command(
                console,
                session.user,
                episode_id,
                "record_attendance",
                body,
                f"{key}-{index}",
            )
            if isinstance(outcome, Refusal):
                errors[ref] = RowError(outcome.message, outcome.fields)
                chosen[ref] = (str(choice), hours)
                continue
            applied += 1
            if outcome.position is not None:
                positions.append(outcome.position)
        if not errors:
            query = [f"recorded={applied}"]
            if positions:
                query.append(f"after={max(positions)}")
            return RedirectResponse(f"{PREFIX}/today?{'&'.join(query)}", status_code=303)
        if positions:
            await console.queries.caught_up(max(positions))
        return await page(
            request, session, status=422, recorded=applied, errors=errors, chosen=chosen
        )

    @router.get("/intake", response_class=HTMLResponse)
    async def intake(request: Request) -> Response:
        session = signed_in(console, request)
        if session is None:
            return _to_signin(request)
        if session.role is Role.AUDITOR:
            return RedirectResponse(f"{PREFIX}/audit", status_code=303)
        rows = await console.queries.intake(session.user.program_filter())
        stages: dict[str, list[dict[str, Any]]] = {stage: [] for stage in INTAKE_STAGES}
        for row in rows:
            row["timezone"] = _zone(console, row["program_id"])
            row["waiting_for"], row["since"] = waiting_for(row)
            stages[row["stage"]].append(row)
        return render(request, console, "intake.html", session, stages=stages, total=len(rows))

    return router


def waiting_for(row: dict[str, Any]) -> tuple[str, datetime | None]:
    """What a referral waits for at its stage, and since when (its referral, its
    admission, or else its last step)."""
    stage = row["stage"]
    if stage == "referred":
        return "screening to start", row["referred_at"]
    if stage == "screening":
        return "screening result", row["last_event_at"]
    if stage == "assessment":
        if row["assessed"]:
            return "admission decision", row["last_event_at"]
        return "assessment", row["last_event_at"]
    return "treatment plan", row["admitted_at"] or row["last_event_at"]
