"""The auditor's console pages: verify, replay as of a moment, the access log, exports.

The same implementation as the API's `/audit` routes and `carepath audit ...`
(`audit.verify`, `audit.replay`, `audit.export`) and the same role rule: every page is
for the auditor role only, others get 403 (the API's audit routes and its access log
allow no other role). Nothing here writes to the record.

Verifying the whole store reads every stream, so it runs as a background task held by
this process (`VerifyJobs`): the page that starts it leads to a progress page that
reloads itself (a `<meta http-equiv="refresh">`, no script) until the result is in. A
job lives in this process only: behind several replicas, its page answers on the
replica that started it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.console.routes import (
    PREFIX,
    Console,
    _to_signin,
    checked_form,
    episode_program,
    render,
    signed_in,
)
from api.console.session import Session
from audit.asof import diff_states
from audit.errors import EpisodeNotInStore
from audit.export import MEDIA_TYPES, ExportFormat, export_episode
from audit.replay import AuditReplay, replay_episode
from audit.verify import Progress, VerifyReport, verify_all, verify_episode
from domain.actors import Role
from domain.errors import CarePathError
from domain.state import EpisodeState
from store.audit_console import AuditQueries
from store.errors import CheckpointInvalid
from store.event_store import EventStore
from workflows.client import SAFE_VALUE

log = structlog.get_logger("carepath.console.audit")

AUDIT = f"{PREFIX}/audit"
# Seconds between reloads of a running verification's page.
REFRESH_SECONDS = 1
# Access records per page.
PAGE_SIZE = 50
# Field differences listed under the replay's side-by-side, at most.
MAX_DIFFERENCES = 300
_SAFE = re.compile(SAFE_VALUE)


# --- the whole-store verification, in the background ------------------------------------


@dataclass
class VerifyJob:
    """One run of the whole-store verification: its progress, then its report."""

    job_id: str
    started_by: str
    started_at: datetime
    done: int = 0
    total: int | None = None
    report: VerifyReport | None = None
    error: str | None = None
    finished_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.report is None and self.error is None

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


@dataclass
class VerifyJobs:
    """The verifications this process ran (the latest `keep`), at most one at a time."""

    keep: int = 10
    _jobs: OrderedDict[str, VerifyJob] = field(default_factory=OrderedDict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def get(self, job_id: str) -> VerifyJob | None:
        return self._jobs.get(job_id)

    def latest(self) -> VerifyJob | None:
        return next(reversed(self._jobs.values()), None)

    def start(self, user_id: str, work: Callable[[Progress], Awaitable[VerifyReport]]) -> VerifyJob:
        """Start `work` unless a run is already under way (then that run is returned)."""
        latest = self.latest()
        if latest is not None and latest.running:
            return latest
        job = VerifyJob(uuid.uuid4().hex, user_id, datetime.now(UTC))
        self._jobs[job.job_id] = job
        while len(self._jobs) > self.keep:
            self._jobs.popitem(last=False)
        task = asyncio.create_task(self._run(job, work), name=f"verify-{job.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    @staticmethod
    async def _run(job: VerifyJob, work: Callable[[Progress], Awaitable[VerifyReport]]) -> None:
        try:
            job.report = await work(job.progress)
            log.info("console_verify_done", job=job.job_id, ok=job.report.ok)
        except CarePathError as err:
            job.error = err.message
        except Exception as exc:  # the page must say it failed, whatever failed
            log.exception("console_verify_failed", job=job.job_id)
            job.error = f"the verification failed ({type(exc).__name__}): see the server's log"
        finally:
            job.finished_at = datetime.now(UTC)


# --- the replay's side by side ---------------------------------------------------------------


@dataclass(frozen=True)
class Compared:
    """One line of the side by side: a field's value then and now."""

    label: str
    then: str
    now: str

    @property
    def changed(self) -> bool:
        return self.then != self.now


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return "—" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _counts(values: list[str]) -> str:
    if not values:
        return "none"
    seen: dict[str, int] = {}
    for value in values:
        seen[value] = seen.get(value, 0) + 1
    return ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in seen.items())


def summary(state: EpisodeState | None, zone: ZoneInfo) -> dict[str, str]:
    """What an auditor compares first, in words: stage, phase, escalation, tasks, sessions,
    attendance, plan, consents."""
    if state is None:
        return {"Stage": "not referred yet"}
    open_tasks = [t for t in state.tasks if t.is_open]
    held = [s for s in state.sessions if not s.cancelled]
    return {
        "Stage": state.stage.value.replace("_", " "),
        "Phase": state.phase_id or "—",
        "Escalation level": str(state.escalation_level),
        "Open tasks": _counts([t.kind.value for t in open_tasks]),
        "Tasks in all": str(len(state.tasks)),
        "Sessions scheduled": str(len(held)),
        "Attendance": _counts([s.status.value for s in held if s.status is not None]),
        "Attended hours": f"{sum(s.attended_hours for s in held):g}",
        "Treatment plan revision": str(state.plan_revision),
        "Primary clinician": state.primary_clinician or "—",
        "Plan review due": _local(state.review_due_at, zone),
        "On hold": state.hold.kind.value.replace("_", " ") if state.hold else "no",
        "Active consents": str(sum(1 for c in state.consents if not c.revoked)),
        "Discharge reason": state.discharge_reason.value if state.discharge_reason else "—",
        "Events folded": str(state.version),
    }


def side_by_side(
    then: EpisodeState | None, now: EpisodeState | None, zone: ZoneInfo
) -> list[Compared]:
    left, right = summary(then, zone), summary(now, zone)
    labels = [*right, *(k for k in left if k not in right)]
    return [Compared(k, left.get(k, "—"), right.get(k, "—")) for k in labels]


def _episode_zone(state: EpisodeState | None, console: Console) -> str:
    if state is None:
        return "UTC"
    if state.rules.timezone:
        return state.rules.timezone
    program = episode_program(console, state)
    return program.timezone if program is not None else "UTC"


def parse_moment(text: str, zone: ZoneInfo) -> datetime:
    """A `datetime-local` value on the clinic's clock (or an ISO time with its offset);
    ValueError if it is neither."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


# --- the pages -------------------------------------------------------------------------------


def _auditor(console: Console, request: Request) -> Session | Response:
    """The auditor's session; a sign-in redirect, or 403 for any other role."""
    session = signed_in(console, request)
    if session is None:
        return _to_signin(request)
    if session.role is not Role.AUDITOR:
        return render(request, console, "audit_forbidden.html", session, status=403)
    return session


def _episode_param(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if value and _SAFE.fullmatch(value) else None


def _day(value: str | None, zone: ZoneInfo, *, end: bool = False) -> datetime | None:
    """The start of a local day (the start of the next one for the end of a range)."""
    if not value:
        return None
    day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
    return datetime.combine(day, time(), zone)


def audit_pages(
    console: Console,
    store: EventStore,
    *,
    checkpoint_key: bytes | None = None,
    jobs: VerifyJobs | None = None,
) -> APIRouter:
    """The auditor's pages under `/console/audit`."""
    router = APIRouter(prefix=AUDIT, include_in_schema=False)
    queries = AuditQueries(store.pool)
    runs = jobs or VerifyJobs()
    zones = sorted({"UTC", *(console.programs.get(p).timezone for p in console.programs.ids())})

    def page(
        request: Request, session: Session, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return render(request, console, template, session, status=status, audit=AUDIT, **context)

    @router.get("", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        session = _auditor(console, request)
        if not isinstance(session, Session):
            return session
        return page(
            request,
            session,
            "audit_home.html",
            episodes=await queries.recent_episodes(),
            latest=runs.latest(),
            formats=list(ExportFormat),
        )

    @router.get("/verify", response_class=HTMLResponse)
    async def verify_one(request: Request, episode_id: str | None = None) -> Response:
        session = _auditor(console, request)
        if not isinstance(session, Session):
            return session
        wanted = _episode_param(episode_id)
        if wanted is None:
            return RedirectResponse(AUDIT, status_code=303)
        request.state.episode_id = wanted
        try:
            report = await verify_episode(store, wanted, key=checkpoint_key)
        except (EpisodeNotInStore, CheckpointInvalid) as err:
            status = 404 if isinstance(err, EpisodeNotInStore) else 409
            return page(
                request, session, "audit_verify.html", status, episode_id=wanted,
                report=None, error=err.message,
            )  # fmt: skip
        return page(
            request, session, "audit_verify.html", episode_id=wanted, report=report, error=None
        )

    @router.post("/verify/all")
    async def verify_every(request: Request) -> Response:
        session = _auditor(console, request)
        if not isinstance(session, Session):
            return session
        await checked_form(console, request, session)

        async def work(progress: Progress) -> VerifyReport:
            return await verify_all(store, key=checkpoint_key, progress=progress)

        job = runs.start(session.user_id, work)
        return RedirectResponse(f"{AUDIT}/verify/runs/{job.job_id}", status_code=303)

    @router.get("/verify/runs/{job_id}", response_class=HTMLResponse)
    async def verify_run(request: Request, job_id: str) -> Response:
        session = _auditor(console, request)
        if not isinstance(session, Session):
            return session
        job = runs.get(job_id)
        status = 200 if job is not None else 404
        return page(
            request,
            session,
            "audit_run.html",
            status,
            job=job,
            refresh=REFRESH_SECONDS,
        )

    @router.get("/replay", response_class=HTMLResponse)
    async def replay(
        request: Request, episode_id: str | None = None, at: str | None = None
    ) -> Response:
        session = _auditor(console, request)
        if not isinstance(session, Session):
            return session
        wanted = _episode_param(episode_id)
        context: dict[str, Any] = {"episode_id": wanted or "", "at": at or "", "error": None}
        if wanted is None:
            return page(request, session, "audit_replay.html", result=None, **context)
        request.state.episode_id = wanted
        try:
            current = await replay_episode(
                store, wanted, None, console.episodes, key=checkpoint_key
            )
        except (EpisodeNotInStore, CheckpointInvalid) as err:
            context["error"] = err.message
            status = 404 if isinstance(err, EpisodeNotInStore) else 409
            return page(request, session, "audit_replay.html", status, result=None, **context)
        timezone = _episode_zone(current.state, console)
        zone = ZoneInfo(timezone)
        context["timezone"] = timezone
        if not at:
            context["at"] = datetime.now(UTC).astimezone(zone).strftime("%Y-%m-%dT%H:%M")
            return page(
                request, session, "audit_replay.html", result=None, current=current, **context
            )
        try:
            moment = parse_moment(at, zone)
        except ValueError:
            context["error"] = (
                f"{at!r} is not a date and time: pick one, e.g. 2026-03-01T14:30 "
                f"(on the clinic's clock, {timezone})"
            )
            return page(
                request, session, "audit_replay.html", 422, result=None, current=current,
                **context,
            )  # fmt: skip
        then = await replay_episode(store, wanted, moment, key=checkpoint_key)
        return page(
            request,
            session,
            "audit_replay.html",
            result=_Replayed.of(then, current, zone),
            current=current,
            moment_label=moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
            **context,
        )

    @router.get("/access-log", response_class=HTMLResponse)
    async def access_log(
        request: Request,
        user_id: str | None = None,
        episode_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        tz: str | None = None,
        before: int | None = None,
    ) -> Response:
        session = _auditor(console, request)
        if not isinstance(session, Session):
            return session
        timezone = tz if tz in zones else "UTC"
        zone = ZoneInfo(timezone)
        filters = {
            "user_id": (user_id or "").strip(),
            "episode_id": (episode_id or "").strip(),
            "since": since or "",
            "until": until or "",
            "tz": timezone,
        }
        error = None
        try:
            start, end = _day(since, zone), _day(until, zone, end=True)
        except ValueError:
            start = end = None
            error = "the dates must be days such as 2026-03-01"
        for name in ("user_id", "episode_id"):
            if filters[name] and not _SAFE.fullmatch(filters[name]):
                error = f"the {name.replace('_', ' ')} has characters no id has"
        if error is not None:
            return page(
                request, session, "audit_access.html", 422, records=[], older=None,
                filters=filters, zones=zones, error=error, zone=zone, newer=None,
            )  # fmt: skip
        found = await queries.access_page(
            since=start,
            until=end,
            episode_id=filters["episode_id"] or None,
            user_id=filters["user_id"] or None,
            before=before,
            limit=PAGE_SIZE,
        )
        query = {k: v for k, v in filters.items() if v}
        older = f"?{urlencode({**query, 'before': found.older})}" if found.older else None
        newer = f"?{urlencode(query)}" if before is not None else None
        return page(
            request,
            session,
            "audit_access.html",
            records=found.records,
            older=older,
            newer=newer,
            filters=filters,
            zones=zones,
            zone=zone,
            error=None,
        )

    @router.get("/export")
    async def export_form(
        request: Request, episode_id: str | None = None, format: str | None = None
    ) -> Response:
        """The home page's export form: to the episode's export (a plain GET)."""
        session = _auditor(console, request)
        if not isinstance(session, Session):
            return session
        wanted = _episode_param(episode_id)
        chosen = format if format in {f.value for f in ExportFormat} else ExportFormat.FHIR.value
        if wanted is None:
            return RedirectResponse(AUDIT, status_code=303)
        return RedirectResponse(
            f"{AUDIT}/episodes/{wanted}/export?format={chosen}", status_code=303
        )

    @router.get("/episodes/{episode_id}/export")
    async def export(request: Request, episode_id: str, format: str = "fhir") -> Response:
        session = _auditor(console, request)
        if not isinstance(session, Session):
            return session
        try:
            chosen = ExportFormat(format)
        except ValueError:
            return page(
                request, session, "audit_forbidden.html", 422,
                error=f"no export format {format!r}: jsonl, csv or fhir",
            )  # fmt: skip
        try:
            text = await export_episode(
                store,
                episode_id,
                chosen,
                exporter=session.user.actor(),
                exported_at=datetime.now(UTC),
                programs=console.programs,
                patient_system=console.fhir_patient_system,
            )
        except EpisodeNotInStore as err:
            return page(request, session, "audit_forbidden.html", 404, error=err.message)
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", episode_id)
        return Response(
            text,
            media_type=MEDIA_TYPES[chosen],
            headers={
                "Content-Disposition": f'attachment; filename="episode-{safe_id}.{chosen.value}"'
            },
        )

    return router


@dataclass(frozen=True)
class _Replayed:
    """What the replay page shows: the report as of the moment, the side by side, every
    field that differs, and the events recorded after the moment."""

    then: AuditReplay
    compared: list[Compared]
    differences: list[Any]
    more_differences: int
    since: list[Any]

    @classmethod
    def of(cls, then: AuditReplay, now: AuditReplay, zone: ZoneInfo) -> _Replayed:
        differences = diff_states(then.state, now.state)
        return cls(
            then=then,
            compared=side_by_side(then.state, now.state, zone),
            differences=differences[:MAX_DIFFERENCES],
            more_differences=max(0, len(differences) - MAX_DIFFERENCES),
            since=list(now.timeline[then.events_included :]),
        )
