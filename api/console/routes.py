"""The staff console: server-rendered pages on the API's own app, roles and access log.

Every page works without JavaScript: lists are links and forms post back. Pages are
Jinja2 templates (`api/console/templates`) with autoescaping, and every asset is served
from `/static` by CarePath itself, so the strict Content-Security-Policy of
`api.limits.SecurityHeadersMiddleware` holds (no inline script or style, forms post only
to this origin).

Sign-in (`/signin`) takes a user's token once and starts a session
(`api.console.session`); every form carries the session's CSRF token and a POST without
it is refused (403). A page view is recorded in the access log like an API read: the
console sets the signed-in user on the request before the access-log middleware writes
its record.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.auth import Authenticator, User
from api.command_specs import spec_for
from api.console.session import COOKIE, CSRF_FIELD, Session, Sessions
from api.problems import ProblemError
from domain.actors import Role
from domain.errors import CarePathError
from domain.programs import ProgramCatalog, ProgramDefinition
from domain.state import EpisodeState
from store.console import CASELOAD_ORDER, ConsoleQueries
from workflows.client import CommandRejected, EpisodeClient, EpisodeOutsidePrograms

if TYPE_CHECKING:
    from api.console.oidc import OidcLogin

log = structlog.get_logger("carepath.console")

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"
# Every page lives under this prefix: the API's own routes (`/tasks`, `/episodes/{id}`,
# ...) answer JSON at theirs. `/` leads here.
PREFIX = "/console"
# A double-submit cookie for the sign-in form itself (there is no session yet).
SIGNIN_COOKIE = "carepath_signin"
# Where the console lives; the API's routes keep their own paths.
CASELOAD_ROLES = frozenset(
    {Role.CLINICIAN, Role.SUPERVISOR, Role.CLINICAL_DIRECTOR, Role.INTAKE_COORDINATOR}
)

Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Console:
    """What the console's pages read and send commands through."""

    sessions: Sessions
    authenticator: Authenticator
    episodes: EpisodeClient
    queries: ConsoleQueries
    programs: ProgramCatalog
    # The identity provider staff sign in through (CAREPATH_OIDC_*), if any.
    oidc: OidcLogin | None = None
    # The identifier system of the Patient in FHIR exports (CAREPATH_FHIR_PATIENT_IDENTIFIER_SYSTEM).
    fhir_patient_system: str = "urn:carepath:client-ref"


# --- times in the clinic's words ---------------------------------------------------------


def episode_program(console: Console, state: EpisodeState) -> ProgramDefinition | None:
    """The program in the version the episode runs under; None for a program no longer in
    the catalog."""
    try:
        return console.programs.of_episode(state.program_id, state.program_version)
    except CarePathError:
        return None


def humane_time(moment: datetime | None, timezone: str, now: datetime | None = None) -> str:
    """`moment` on the clinic's clock, as staff say it: "today 14:00", "tomorrow 10:00",
    "yesterday 09:30", "Thu 10:00" within the coming week, else "3 Dec 2026 10:00"."""
    if moment is None:
        return "—"
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    clock = local.strftime("%H:%M")
    days = (local.date() - today).days
    if days == 0:
        return f"today {clock}"
    if days == 1:
        return f"tomorrow {clock}"
    if days == -1:
        return f"yesterday {clock}"
    if 1 < days < 7:
        return f"{local.strftime('%a')} {clock}"
    return f"{local.day} {local.strftime('%b %Y')} {clock}"


TEMPLATES.env.filters["humane"] = humane_time


def _label(value: str | None) -> str:
    return (value or "").replace("_", " ")


TEMPLATES.env.filters["label"] = _label


# --- rendering and the session -------------------------------------------------------------


def _secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def _set_session(request: Request, response: Response, console: Console, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        console.sessions.encode(session),
        max_age=int(console.sessions.lifetime_s),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )


def render(
    request: Request,
    console: Console,
    template: str,
    session: Session | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "csrf_field": CSRF_FIELD,
            "csrf_token": session.csrf if session else "",
            "now": datetime.now(UTC),
            "Role": Role,
            "base": PREFIX,
            **context,
        },
        status_code=status,
    )
    if session is not None and (touched := console.sessions.touched(session)) is not None:
        _set_session(request, response, console, touched)
    return response


def _to_signin(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/signin?next={quote(target, safe='')}", status_code=303)


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never another origin (no open redirect)."""
    if not value:
        return f"{PREFIX}/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return f"{PREFIX}/"
    return value


def signed_in(console: Console, request: Request) -> Session | None:
    """The request's session, with its user set for the access log; None if signed out."""
    session = console.sessions.decode(request.cookies.get(COOKIE))
    if session is not None:
        request.state.user = session.user
    return session


async def checked_form(console: Console, request: Request, session: Session) -> dict[str, Any]:
    """The posted form, after its CSRF token matched the session's; 403 otherwise."""
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not console.sessions.csrf_ok(session, token if isinstance(token, str) else None):
        raise ProblemError(
            "CsrfRejected",
            "the form's CSRF token is missing or does not match this session: reload the "
            "page and submit it again",
            403,
        )
    return {key: form.getlist(key) if len(form.getlist(key)) > 1 else form.get(key) for key in form}


# --- commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a command from a form was not applied: a message, and per-field messages."""

    message: str
    fields: dict[str, str]


@dataclass(frozen=True)
class Applied:
    """A command from a form was applied; `position` is its last event's (the next page
    waits for the read models to include it)."""

    position: int | None


async def send_command(
    console: Console,
    user: User,
    episode_id: str,
    kind: str,
    body: dict[str, Any],
    idempotency_key: str | None,
) -> Refusal | Applied:
    """Apply a staff command as the API's command route does; a `Refusal` if the role,
    the body or the episode said no."""
    spec = spec_for(kind)
    if user.role not in spec.roles:
        return Refusal(f"your role ({user.role.value}) may not {_label(kind)}", {})
    path = {name: body.pop(name) for name in spec.path_params if name in body}
    try:
        request_body = spec.request_model.model_validate(body)
        command = spec.build(idempotency_key or str(uuid.uuid4()), user.actor(), request_body, path)
    except ValueError as err:
        errors = getattr(err, "errors", None)
        fields: dict[str, str] = {}
        if callable(errors):
            for item in errors(include_url=False):
                loc = [str(p) for p in item.get("loc", ()) if not str(p).isdigit()]
                fields.setdefault(".".join(loc) or "form", str(item.get("msg")))
        return Refusal("the form has errors: see the fields marked", fields)
    try:
        result = await console.episodes.send(episode_id, command, programs=user.program_filter())
    except EpisodeOutsidePrograms:
        return Refusal("no such episode in your programs", {})
    except CommandRejected as err:
        fields = {
            str(item.get("field")): str(item.get("message"))
            for item in err.errors
            if item.get("field")
        }
        return Refusal(err.message, fields)
    except CarePathError as err:
        return Refusal(err.message, {})
    return Applied(result.position)


# --- the router -------------------------------------------------------------------------------


def signin_page(
    request: Request,
    console: Console,
    next_path: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The sign-in page with a fresh one-time token for its form (a double-submit cookie,
    so nobody can sign a browser in as someone else) and, if any, why the last try failed."""
    nonce = secrets.token_urlsafe(24)
    response = render(
        request,
        console,
        "signin.html",
        None,
        status=status,
        next=next_path,
        nonce=nonce,
        error=error,
        oidc=console.oidc,
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        nonce,
        max_age=600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path=f"{PREFIX}/signin",
    )
    return response


def console_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    @router.get("/signin", response_class=HTMLResponse)
    async def signin_form(request: Request, next: str | None = None) -> Response:
        return signin_page(request, console, _safe_next(next))

    @router.post("/signin", response_class=HTMLResponse)
    async def signin(request: Request) -> Response:
        form = await request.form()
        nonce = form.get("nonce")
        target = _safe_next(str(form.get("next") or ""))
        expected = request.cookies.get(SIGNIN_COOKIE)
        if (
            not isinstance(nonce, str)
            or not expected
            or not secrets.compare_digest(nonce, expected)
        ):
            raise ProblemError(
                "CsrfRejected", "the sign-in form has expired: reload it and sign in again", 403
            )
        token = str(form.get("token") or "").strip()
        try:
            user = await console.authenticator.authenticate(token)
        except ProblemError:
            log.info("console_signin_refused")
            return signin_page(
                request,
                console,
                target,
                error="That token is not valid. Check it and try again.",
                status=401,
            )
        request.state.user = user
        session = console.sessions.begin(user)
        log.info("console_signed_in", user_id=user.user_id, role=user.role.value)
        moved = RedirectResponse(target, status_code=303)
        _set_session(request, moved, console, session)
        moved.delete_cookie(SIGNIN_COOKIE, path=f"{PREFIX}/signin")
        return moved

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        session = signed_in(console, request)
        if session is not None:
            await checked_form(console, request, session)
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/", response_class=HTMLResponse)
    async def caseload(
        request: Request,
        clinician: str | None = None,
        program: str | None = None,
        stage: str | None = None,
        sort: str = "deadline",
    ) -> Response:
        session = signed_in(console, request)
        if session is None:
            return _to_signin(request)
        user = session.user
        if user.role is Role.AUDITOR:
            return RedirectResponse(f"{PREFIX}/audit", status_code=303)
        # A clinician's caseload is their own; supervisors and directors see their
        # programs' (all clinicians unless they pick one).
        mine = user.role in (Role.CLINICIAN, Role.INTAKE_COORDINATOR)
        who = user.user_id if mine and user.role is Role.CLINICIAN else (clinician or None)
        rows = await console.queries.caseload(
            user.program_filter(),
            clinician_id=who,
            program_id=program or None,
            stage=stage or None,
            order=sort if sort in CASELOAD_ORDER else "deadline",
            now=datetime.now(UTC),
        )
        for row in rows:
            row["minimum_hours"] = _minimum_hours(console.programs, row["program_id"])
        return render(
            request,
            console,
            "caseload.html",
            session,
            rows=rows,
            clinician=who,
            program=program or "",
            stage=stage or "",
            sort=sort,
            orders=list(CASELOAD_ORDER),
            mine=mine and user.role is Role.CLINICIAN,
        )

    @router.get("/tasks", response_class=HTMLResponse)
    async def tasks(
        request: Request, done: str | None = None, after: int | None = None
    ) -> Response:
        session = signed_in(console, request)
        if session is None:
            return _to_signin(request)
        await console.queries.caught_up(after)
        rows = await console.queries.open_tasks(session.user.program_filter())
        may_resolve = session.role in spec_for("resolve_task").roles
        return render(
            request,
            console,
            "tasks.html",
            session,
            rows=rows,
            may_resolve=may_resolve,
            done=done,
            refusal=None,
            failed_task=None,
            idempotency_key=str(uuid.uuid4()),
        )

    @router.post("/tasks/{episode_id}/{task_id}/resolution", response_class=HTMLResponse)
    async def resolve_task(request: Request, episode_id: str, task_id: str) -> Response:
        session = signed_in(console, request)
        if session is None:
            return _to_signin(request)
        form = await checked_form(console, request, session)
        refusal = await send_command(
            console,
            session.user,
            episode_id,
            "resolve_task",
            {"task_id": task_id, "outcome": str(form.get("outcome") or "")},
            str(form.get("idempotency_key") or "") or None,
        )
        if isinstance(refusal, Applied):
            after = f"&after={refusal.position}" if refusal.position is not None else ""
            return RedirectResponse(
                f"{PREFIX}/tasks?done={quote(task_id, safe='')}{after}", status_code=303
            )
        rows = await console.queries.open_tasks(session.user.program_filter())
        return render(
            request,
            console,
            "tasks.html",
            session,
            status=422,
            rows=rows,
            may_resolve=True,
            done=None,
            refusal=refusal,
            failed_task=task_id,
            idempotency_key=str(uuid.uuid4()),
        )

    return router


def _minimum_hours(programs: ProgramCatalog, program_id: str) -> float | None:
    try:
        return programs.get(program_id).intensity.min_weekly_hours
    except CarePathError:  # a program no longer in the catalog
        return None
