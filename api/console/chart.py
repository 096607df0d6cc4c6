"""The episode chart (`/console/episodes/{id}`) and its actions as forms.

The chart shows one episode on the clinic's clock: a header (client reference, program,
stage and phase, care team, escalation level, consents), the attendance grid by week,
the treatment plan and its reviews, pending deadlines, the timeline from the event
store, and the actions the signed-in role may take. Each section is one read, made
together: the episode's state and its deadlines from the workflow (as the API's
`GET /episodes/{id}` and `/deadlines`), the weeks and the timeline from PostgreSQL
(`store.console_chart`).

An action is a page of its own (`/console/episodes/{id}/actions/{kind}`): the command's
form (`api.console.forms`), with a fresh Idempotency-Key per render, so a form submitted
twice applies once. A refused command shows the form again with the domain's message
next to the field it is about (422); an applied one leads back to the chart, which waits
for the read models to include it.

Only users whose programs include the episode see it (`api.scoping.EpisodeGate`, as the
API's reads); anyone else gets the same "not found" page as for an episode that does not
exist.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.command_specs import CommandSpec
from api.console.forms import (
    FormErrors,
    FormInvalid,
    actions_for,
    bind,
    form_for,
    parse_form,
    refusal_errors,
    validation_errors,
)
from api.console.routes import (
    PREFIX,
    Console,
    _label,
    checked_form,
    episode_program,
    humane_time,
    render,
    signed_in,
)
from api.console.routes import _to_signin as to_signin
from api.console.session import Session
from api.scoping import EpisodeGate
from domain.errors import CarePathError
from domain.state import EpisodeState
from domain.weeks import last_local_day, local_day
from store.console_chart import ChartQueries
from workflows.client import EpisodeNotFound

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Week:
    """One row of the attendance grid."""

    first_day: Any
    last_day: Any
    hours: float
    minimum: float | None
    attended: int
    partial: int
    excused: int
    no_shows: int
    open: bool
    below_minimum: bool


def _zone(console: Console, state: EpisodeState) -> str:
    """The clinic's time zone: the one the admission recorded, else the program's."""
    if state.rules.timezone:
        return state.rules.timezone
    program = episode_program(console, state)
    return program.timezone if program is not None else "UTC"


def _minimum(console: Console, state: EpisodeState) -> float | None:
    program = episode_program(console, state)
    return program.intensity.min_weekly_hours if program is not None else None


def _weeks(
    rows: list[dict[str, Any]], zone: str, minimum: float | None, now: datetime
) -> list[Week]:
    tz = ZoneInfo(zone)
    weeks = []
    for row in rows:
        start, end = row["week_start"], row["week_end"]
        weeks.append(
            Week(
                first_day=local_day(start, tz),
                last_day=last_local_day(end, tz),
                hours=float(row["hours"] or 0),
                minimum=float(row["minimum_hours"])
                if row["minimum_hours"] is not None
                else minimum,
                attended=row["attended"],
                partial=row["partial"],
                excused=row["excused"],
                no_shows=row["no_shows"],
                open=start <= now < end,
                below_minimum=bool(row["below_minimum"]),
            )
        )
    return weeks


def _not_found(request: Request, console: Console, session: Session, episode_id: str) -> Response:
    return render(
        request, console, "chart_missing.html", session, status=404, episode_id=episode_id
    )


def _choices(spec: CommandSpec, state: EpisodeState, zone: str) -> dict[str, list[tuple[str, str]]]:
    """Selects for the fields the command's path names, from the episode's state (the
    session to record, the task to resolve, the consent to revoke); none where the state
    has nothing to choose from (the input stays free text)."""
    found: dict[str, list[tuple[str, str]]] = {}
    if "session_id" in spec.path_params:
        found["session_id"] = [
            (
                s.session_id,
                f"{s.session_id} ({_label(s.kind.value)}, {humane_time(s.starts_at, zone)})",
            )
            for s in state.sessions
            if not s.cancelled
        ]
    if "task_id" in spec.path_params:
        found["task_id"] = [
            (t.task_id, f"{t.task_id} ({_label(t.kind.value)}, level {t.level})")
            for t in state.tasks
            if t.is_open
        ]
    if "consent_id" in spec.path_params:
        found["consent_id"] = [
            (c.consent_id, f"{c.consent_id} ({_label(c.recipient_kind.value)})")
            for c in state.consents
            if not c.revoked
        ]
    return {name: options for name, options in found.items() if options}


def _spec_of(role: Any, kind: str) -> CommandSpec | None:
    wanted = kind.replace("-", "_")
    return next((s for s in actions_for(role) if s.kind == wanted), None)


def chart_router(console: Console, charts: ChartQueries, gate: EpisodeGate) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    async def _state(episode_id: str) -> EpisodeState | None:
        return (await console.episodes.view(episode_id)).state

    @router.get("/episodes/{episode_id}", response_class=HTMLResponse)
    async def chart(
        request: Request, episode_id: str, after: int | None = None, done: str | None = None
    ) -> Response:
        session = signed_in(console, request)
        if session is None:
            return to_signin(request)
        try:
            program_id = await gate.check(request, session.user, episode_id)
        except EpisodeNotFound:
            return _not_found(request, console, session, episode_id)
        caught_up = await console.queries.caught_up(after)
        try:
            view, deadlines, week_rows, timeline = await asyncio.gather(
                console.episodes.view(episode_id),
                console.episodes.deadlines(episode_id),
                charts.attendance(episode_id),
                charts.timeline(episode_id),
            )
        except EpisodeNotFound:
            return _not_found(request, console, session, episode_id)
        state = view.state
        if state is None:
            return _not_found(request, console, session, episode_id)
        now = datetime.now(UTC)
        zone = _zone(console, state)
        reviews = [row for row in timeline if row["event_type"] == "plan_review_completed"]
        revisions = [row for row in timeline if row["event_type"] == "treatment_plan_recorded"]
        program = episode_program(console, state)
        program_name = program.name if program is not None else program_id
        return render(
            request,
            console,
            "chart.html",
            session,
            episode_id=episode_id,
            state=state,
            program_id=program_id,
            program_name=program_name,
            zone=zone,
            weeks=_weeks(week_rows, zone, _minimum(console, state), now),
            pending=sorted(deadlines.pending, key=lambda d: d.due_at),
            timeline=timeline,
            reviews=reviews,
            revisions=revisions,
            weekdays=WEEKDAYS,
            actions=actions_for(session.role),
            done=done,
            lagging=not caught_up,
        )

    async def _action_page(
        request: Request,
        session: Session,
        episode_id: str,
        spec: CommandSpec,
        state: EpisodeState,
        zone: str,
        *,
        values: Mapping[str, Any] | None = None,
        errors: FormErrors | None = None,
        status: int = 200,
    ) -> Response:
        form = bind(
            form_for(spec.kind),
            values=values,
            errors=errors,
            zone=ZoneInfo(zone),
            choices=_choices(spec, state, zone),
        )
        return render(
            request,
            console,
            "chart_action.html",
            session,
            status=status,
            episode_id=episode_id,
            client_ref=state.client_ref,
            form=form,
            action=f"{PREFIX}/episodes/{episode_id}/actions/{spec.kind}",
            idempotency_key=str(uuid.uuid4()),
        )

    async def _open(
        request: Request, episode_id: str, kind: str
    ) -> tuple[Session, CommandSpec, EpisodeState, str] | Response:
        session = signed_in(console, request)
        if session is None:
            return to_signin(request)
        try:
            await gate.check(request, session.user, episode_id)
            state = await _state(episode_id)
        except EpisodeNotFound:
            return _not_found(request, console, session, episode_id)
        if state is None:
            return _not_found(request, console, session, episode_id)
        spec = _spec_of(session.role, kind)
        if spec is None:
            return render(
                request,
                console,
                "chart_forbidden.html",
                session,
                status=403,
                episode_id=episode_id,
                kind=kind,
            )
        return session, spec, state, _zone(console, state)

    @router.get("/episodes/{episode_id}/actions/{kind}", response_class=HTMLResponse)
    async def action_form(request: Request, episode_id: str, kind: str) -> Response:
        opened = await _open(request, episode_id, kind)
        if isinstance(opened, Response):
            return opened
        session, spec, state, zone = opened
        return await _action_page(request, session, episode_id, spec, state, zone)

    @router.post("/episodes/{episode_id}/actions/{kind}", response_class=HTMLResponse)
    async def action(request: Request, episode_id: str, kind: str) -> Response:
        opened = await _open(request, episode_id, kind)
        if isinstance(opened, Response):
            return opened
        session, spec, state, zone = opened
        data = await checked_form(console, request, session)
        form = form_for(spec.kind)
        key = str(data.get("idempotency_key") or "") or str(uuid.uuid4())

        async def again(errors: Any) -> Response:
            """The form once more, with what was typed and why it was not applied."""
            return await _action_page(
                request, session, episode_id, spec, state, zone,
                values=data, errors=errors, status=422,
            )  # fmt: skip

        try:
            submission = parse_form(form, data, ZoneInfo(zone))
        except FormInvalid as err:
            return await again(err.errors)
        user = session.user
        try:
            command = spec.build(
                key, user.actor(), submission.body, submission.path,
                _server_fields(console, spec, state, submission.body),
            )  # fmt: skip
            result = await console.episodes.send(
                episode_id, command, programs=user.program_filter()
            )
        except EpisodeNotFound:
            return _not_found(request, console, session, episode_id)
        except ValidationError as err:  # the command's own checks, beyond the body's
            return await again(validation_errors(form, err))
        except CarePathError as err:
            return await again(refusal_errors(form, err))
        after = f"&after={result.position}" if result.position is not None else ""
        return RedirectResponse(
            f"{PREFIX}/episodes/{episode_id}?done={quote(spec.kind, safe='')}{after}#actions",
            status_code=303,
        )

    return router


def _server_fields(
    console: Console, spec: CommandSpec, state: EpisodeState, body: Any
) -> dict[str, Any]:
    """What the server fills in of a command, as the API's command route does: for a
    program migration, the definition of the named version of the episode's program,
    from the console's catalog (raises `UnknownProgramVersion` if it has no such one)."""
    if "program" not in spec.command.server_fields:
        return {}
    return {"program": console.programs.version(state.program_id, body.to_version)}
