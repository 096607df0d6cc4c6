"""Read-only FHIR R4B endpoints for auditors and integrations, under `/fhir`.

- `GET /fhir/metadata`: the CapabilityStatement (open: a FHIR client reads it before it
  authenticates, and it says nothing about anyone);
- `GET /fhir/EpisodeOfCare/{id}`: one episode, the same resource as in the episode's export;
- `GET /fhir/EpisodeOfCare?patient=`: the client's episodes, as a searchset Bundle;
- `GET /fhir/CarePlan?episode-of-care=`: the episode's treatment plan, as a searchset Bundle.

The same access rules as the audit export (api.audit_routes): a bearer token of an
auditor, every request in the access log (the middleware records every `/fhir` path,
`metadata` included). Refusals answer an OperationOutcome, not a problem document:
401 without a valid token, 403 for another role, 404 for an episode that does not exist
or that the caller's programs exclude (recorded as denied), 400 for a malformed search.
Resources are built by audit.fhir from the episode's stored events, exactly as the
export builds them.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntrySearch, BundleLink
from fhir.resources.R4B.capabilitystatement import (
    CapabilityStatement,
    CapabilityStatementImplementation,
    CapabilityStatementRest,
    CapabilityStatementRestResource,
    CapabilityStatementRestResourceInteraction,
    CapabilityStatementRestResourceSearchParam,
    CapabilityStatementRestSecurity,
    CapabilityStatementSoftware,
)
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue
from fhir.resources.R4B.resource import Resource
from starlette.requests import Request as StarletteRequest

from api.auth import User, bearer_scheme, current_user
from api.problems import ProblemError
from audit import fhir
from audit.asof import fold_stored
from audit.export import aftercare_status
from domain.actors import Role
from domain.programs import ProgramCatalog
from store.event_store import EventStore
from store.fhir_lookup import episode_clients, episodes_of_client
from store.records import StoredEvent

FHIR_MEDIA_TYPE = "application/fhir+json"
PREFIX = "/fhir"
# Who may read: the audit export's rule (auditors only).
FHIR_ROLES = frozenset({Role.AUDITOR})
_ISSUE_CODE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found"}


def _outcome_example(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


FHIR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": text,
        "content": {
            FHIR_MEDIA_TYPE: {"schema": {"type": "object"}, "example": _outcome_example(code, why)}
        },
    }
    for status, (text, code, why) in {
        400: ("A malformed search (OperationOutcome)", "invalid", "a search needs 'patient'"),
        401: (
            "No bearer token, or one that does not verify (OperationOutcome)",
            "login",
            "this endpoint needs a bearer token",
        ),
        403: ("The caller is not an auditor (OperationOutcome)", "forbidden", "auditors only"),
        404: (
            "No such episode in the caller's programs (OperationOutcome)",
            "not-found",
            "no EpisodeOfCare '3f2c9a51' in your programs",
        ),
    }.items()
}


class FhirError(Exception):
    """Answered as an OperationOutcome with this HTTP status."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def fhir_response(resource: Resource, status: int = 200, **headers: str) -> Response:
    body = json.dumps(fhir.as_json(resource), ensure_ascii=False)
    return Response(body, status_code=status, media_type=FHIR_MEDIA_TYPE, headers=headers or None)


def operation_outcome(status: int, detail: str) -> OperationOutcome:
    return OperationOutcome(
        issue=[
            OperationOutcomeIssue(
                severity="error", code=_ISSUE_CODE.get(status, "processing"), diagnostics=detail
            )
        ]
    )


async def _on_fhir_error(_request: StarletteRequest, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    response = fhir_response(operation_outcome(exc.status, exc.detail), exc.status)
    response.headers.update(exc.headers or {})
    return response


async def fhir_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> User:
    """The caller, if an auditor; refusals as FhirError (an OperationOutcome)."""
    try:
        user = await current_user(request, credentials)
    except ProblemError as err:
        raise FhirError(err.status, err.detail, err.headers) from None
    if user.role not in FHIR_ROLES:
        raise FhirError(
            403,
            f"role {user.role.value!r} may not read FHIR resources: ask a user with role "
            + " or ".join(sorted(r.value for r in FHIR_ROLES)),
        )
    return user


Reader = Annotated[User, Depends(fhir_reader)]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _strip(value: str, kind: str) -> str:
    """The id of a reference given as `Kind/id`, `urn:uuid:id`, an absolute URL or a bare id."""
    value = value.strip()
    for prefix in ("urn:uuid:", f"{kind}/"):
        if value.startswith(prefix):
            return value[len(prefix) :]
    marker = f"/{kind}/"
    if marker in value:
        return value.rsplit(marker, 1)[1]
    return value


class _Ids:
    """Resource ids back to CarePath's: ids are name-based UUIDs (audit.fhir), so they are
    computed for every known episode once and kept (an episode's ids never change)."""

    def __init__(self, store: EventStore, patient_system: str) -> None:
        self._store = store
        self._system = patient_system
        self._episodes: dict[str, str] = {}  # EpisodeOfCare / CarePlan id -> episode id
        self._patients: dict[str, str] = {}  # Patient id -> client_ref
        self._seen: set[str] = set()

    async def _refresh(self) -> None:
        for episode_id, client_ref in await episode_clients(self._store.pool):
            if episode_id in self._seen:
                continue
            self._seen.add(episode_id)
            self._episodes[fhir.episode_of_care_id(episode_id)] = episode_id
            self._episodes[fhir.care_plan_id(episode_id)] = episode_id
            self._patients[fhir.patient_id(client_ref, self._system)] = client_ref

    async def episode(self, resource_id: str) -> str:
        """The episode id of an EpisodeOfCare id; a CarePath episode id passes unchanged."""
        if not _UUID.match(resource_id):
            return resource_id
        if resource_id not in self._episodes:
            await self._refresh()
        return self._episodes.get(resource_id, resource_id)

    async def client(self, patient_id: str) -> str | None:
        if patient_id not in self._patients:
            await self._refresh()
        return self._patients.get(patient_id)


def capability_statement(base_url: str) -> CapabilityStatement:
    """What the server answers: reads and searches of episodes and plans, JSON only."""
    read = CapabilityStatementRestResourceInteraction(code="read")
    search = CapabilityStatementRestResourceInteraction(code="search-type")
    return CapabilityStatement(
        status="active",
        date=datetime(2026, 1, 1, tzinfo=UTC),
        kind="instance",
        software=CapabilityStatementSoftware(name="CarePath", version=version("carepath")),
        implementation=CapabilityStatementImplementation(
            description="CarePath episodes of Intensive Outpatient Programs, read-only",
            url=base_url,
        ),
        fhirVersion="4.3.0",
        format=["json"],
        rest=[
            CapabilityStatementRest(
                mode="server",
                documentation="Read-only; each request needs an auditor's bearer token "
                "and is recorded in the access log.",
                security=CapabilityStatementRestSecurity(
                    description="Authorization: Bearer <token> of a user with role auditor"
                ),
                resource=[
                    CapabilityStatementRestResource(
                        type="EpisodeOfCare",
                        interaction=[read, search],
                        searchParam=[
                            CapabilityStatementRestResourceSearchParam(
                                name="patient",
                                type="reference",
                                documentation="Patient/<id>, or the client's identifier "
                                "as <system>|<client_ref>",
                            )
                        ],
                    ),
                    CapabilityStatementRestResource(
                        type="CarePlan",
                        interaction=[search],
                        searchParam=[
                            CapabilityStatementRestResourceSearchParam(
                                name="episode-of-care",
                                type="reference",
                                documentation="EpisodeOfCare/<id>, or the CarePath episode id",
                            )
                        ],
                    ),
                ],
            )
        ],
    )


def searchset(request: Request, resources: Sequence[Resource]) -> Bundle:
    base = str(request.base_url).rstrip("/") + PREFIX
    return Bundle(
        type="searchset",
        timestamp=datetime.now(UTC),
        total=len(resources),
        link=[BundleLink(relation="self", url=str(request.url))],
        entry=[
            BundleEntry(
                fullUrl=f"{base}/{r.get_resource_type()}/{r.id}",
                resource=r,
                search=BundleEntrySearch(mode="match"),
            )
            for r in resources
        ]
        or None,
    )


def fhir_router(
    store: EventStore,
    programs: ProgramCatalog,
    *,
    patient_system: str = fhir.CLIENT_SYSTEM,
) -> APIRouter:
    """The /fhir endpoints over the event store."""
    router = APIRouter(prefix=PREFIX, tags=["fhir"], responses=FHIR_RESPONSES)
    ids = _Ids(store, patient_system)

    async def stream(request: Request, user: User, episode_id: str) -> list[StoredEvent]:
        """The episode's events; 404 if it has none or is outside the caller's programs."""
        stored = await store.read_stream(episode_id)
        missing = f"no EpisodeOfCare {episode_id!r} in your programs"
        if not stored:
            raise FhirError(404, missing)
        if not user.may_access(stored[0].payload.get("program_id")):  # pragma: no cover
            request.state.access_outcome = "denied"  # auditors read every program
            raise FhirError(404, missing)
        request.state.episode_id = episode_id
        return stored

    def episode_resource(stored: list[StoredEvent]) -> Resource:
        state = fold_stored(stored)
        assert state is not None  # a stored stream starts with its referral
        return fhir.episode_of_care(
            state, stored, aftercare_status(stored, programs), patient_system
        )

    def plan_resource(stored: list[StoredEvent]) -> Resource:
        state = fold_stored(stored)
        assert state is not None
        return fhir.care_plan(state, stored, patient_system)

    @router.get(
        "/metadata",
        summary="The server's CapabilityStatement (no token needed)",
        responses={200: {"content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}}}},
    )
    async def metadata(request: Request) -> Response:
        base = str(request.base_url).rstrip("/") + PREFIX
        return fhir_response(capability_statement(base))

    @router.get(
        "/EpisodeOfCare/{resource_id}",
        summary="One episode as an EpisodeOfCare, as the episode's FHIR export holds it",
        responses={200: {"content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}}}},
    )
    async def read_episode(request: Request, resource_id: str, user: Reader) -> Response:
        episode_id = await ids.episode(resource_id)
        return fhir_response(episode_resource(await stream(request, user, episode_id)))

    @router.get(
        "/EpisodeOfCare",
        summary="The client's episodes (searchset Bundle of EpisodeOfCare)",
        responses={200: {"content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}}}},
    )
    async def search_episodes(
        request: Request,
        user: Reader,
        patient: Annotated[
            str | None,
            Query(description="Patient/<id>, or the identifier as <system>|<client_ref>"),
        ] = None,
    ) -> Response:
        if not patient:
            raise FhirError(400, "search by patient: ?patient=Patient/<id> or <system>|<value>")
        if "|" in patient:
            system, _, value = patient.partition("|")
            client_ref: str | None = value if system in ("", patient_system) else None
        else:
            client_ref = await ids.client(_strip(patient, "Patient"))
        found: list[Resource] = []
        for episode_id in await episodes_of_client(store.pool, client_ref) if client_ref else []:
            stored = await store.read_stream(episode_id)
            if stored and user.may_access(stored[0].payload.get("program_id")):
                found.append(episode_resource(stored))
        return fhir_response(searchset(request, found))

    @router.get(
        "/CarePlan",
        summary="The episode's treatment plan (searchset Bundle of CarePlan)",
        responses={200: {"content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}}}},
    )
    async def search_plans(
        request: Request,
        user: Reader,
        episode_of_care: Annotated[
            str | None,
            Query(
                alias="episode-of-care",
                description="EpisodeOfCare/<id>, or the CarePath episode id",
            ),
        ] = None,
    ) -> Response:
        if not episode_of_care:
            raise FhirError(400, "search by episode: ?episode-of-care=EpisodeOfCare/<id>")
        episode_id = await ids.episode(_strip(episode_of_care, "EpisodeOfCare"))
        stored = await store.read_stream(episode_id)
        found: list[Resource] = []
        if stored and user.may_access(stored[0].payload.get("program_id")):
            request.state.episode_id = episode_id
            found.append(plan_resource(stored))
        return fhir_response(searchset(request, found))

    return router


def install_fhir(
    app: FastAPI,
    store: EventStore,
    programs: ProgramCatalog,
    *,
    patient_system: str = fhir.CLIENT_SYSTEM,
) -> None:
    """The /fhir endpoints and their OperationOutcome answers."""
    app.add_exception_handler(FhirError, _on_fhir_error)
    app.include_router(fhir_router(store, programs, patient_system=patient_system))
