"""How the OpenAPI document reads: its tags, in the order a user meets them, and the
error answers every operation documents, each with an example problem document.

`problem_responses` is what a route declares (`responses=`); `describe` finishes the
document the app serves: it adds an example to every error answer that has none, puts
the paths in tag order (Swagger UI and ReDoc list operations as the paths come) and
keeps only the tags some operation uses.
"""

from __future__ import annotations

from typing import Any

from api.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE

PROBLEM_SCHEMA_REF = "#/components/schemas/ProblemDocument"

# The tags, in the order a user meets them; every operation has one of these.
TAGS: list[dict[str, str]] = [
    {
        "name": "episodes",
        "description": "Start here. Refer a client to a program (opening an episode of care), "
        "list the episodes you may see, and read one: its state, what falls due, attendance "
        "week by week, its timeline and its stored events.",
    },
    {
        "name": "commands",
        "description": "Record what happens in an episode, one endpoint per staff command "
        "(screening, assessment, admission, plans, sessions, step-down, discharge, ...). "
        "Send an `Idempotency-Key` so a retry is applied once; a refused command is a "
        "problem document naming the rule it broke.",
    },
    {
        "name": "worklists",
        "description": "Across episodes, from the read models: caseloads, open escalation "
        "tasks, upcoming deadlines and episodes below the program's weekly intensity. "
        "Lists are paged with `cursor` and `limit`; follow `next` or the `Link` header.",
    },
    {
        "name": "measures",
        "description": "For supervisors, the clinical director and auditors: quality "
        "measures over a date range and program, computed from the episodes' events "
        "(engagement, follow-up after step-down or discharge, completion, length of stay, "
        "attendance, intensity, escalations, task resolution, readmission). "
        "docs/measures.md defines each; they follow HEDIS measures but are not certified.",
    },
    {
        "name": "audit",
        "description": "For auditors: replay an episode as of a moment, verify the hash "
        "chains and signed checkpoints, export an episode (JSON lines, CSV, FHIR R4B).",
    },
    {
        "name": "access log",
        "description": "For auditors: who read or changed episode data, when, and with what "
        "outcome, as JSON or FHIR AuditEvents; paged like the other lists.",
    },
    {
        "name": "fhir",
        "description": "Read-only FHIR R4B for auditors and integrations: the server's "
        "CapabilityStatement, an episode as an EpisodeOfCare, searches by patient and by "
        "episode. Errors are OperationOutcomes.",
    },
    {
        "name": "codec",
        "description": "The payload codec the Temporal UI calls to show encrypted payloads "
        "to staff with a token.",
    },
    {
        "name": "health",
        "description": "Probes for orchestrators and monitors: liveness, readiness and the "
        "combined health check. Open to anyone; they say nothing about episodes.",
    },
]
TAG_ORDER = {tag["name"]: rank for rank, tag in enumerate(TAGS)}

# What each error status usually says, as (problem type, detail): the example shown when
# an operation documents the status without an example of its own.
_EXAMPLES: dict[int, tuple[str, str]] = {
    400: ("MalformedJson", "the request body is not valid JSON: fix its syntax"),
    401: (
        "AuthenticationRequired",
        "no bearer token: send 'Authorization: Bearer <token>' (`carepath users add` prints one)",
    ),
    403: (
        "AccessDenied",
        "role 'auditor' may not use this endpoint: ask a user with role clinician",
    ),
    404: (
        "EpisodeNotFound",
        "no episode '3f2c9a51-8d1e-4c1b-9a77-0e5d2b6c4f10': check the id (it is returned "
        "on referral)",
    ),
    409: (
        "EpisodeClosed",
        "episode '3f2c9a51-8d1e-4c1b-9a77-0e5d2b6c4f10' is closed (discharged, referred "
        "out or readmitted): nothing more can be recorded in it",
    ),
    413: (
        "PayloadTooLarge",
        "the request body is larger than 1048576 bytes: no CarePath request needs that "
        "much; send less",
    ),
    422: ("ValidationFailed", "the request is invalid at: limit; see 'errors' for each field"),
    429: (
        "TooManyFailedAuthentications",
        "10 failed authentications from this address in the last 60 s: wait 42 s, then "
        "send a valid token",
    ),
    500: (
        "InternalError",
        "an unexpected error occurred and was logged; if this was a command, retrying "
        "with the same Idempotency-Key is safe",
    ),
    503: (
        "TemporalUnavailable",
        "Temporal: connection refused; try again shortly",
    ),
}
_FIELD_ERRORS = [
    {
        "loc": ["query", "limit"],
        "msg": "Input should be greater than or equal to 1",
        "type": "greater_than_equal",
    }
]
# What a path parameter stands for in an example's `instance`.
_SAMPLE_ID = "3f2c9a51-8d1e-4c1b-9a77-0e5d2b6c4f10"


def problem_example(
    status: int, path: str = "/episodes", code: str | None = None
) -> dict[str, Any]:
    """An example problem document for `status` at `path` (its parameters filled in)."""
    default_code, detail = _EXAMPLES.get(status, ("HttpError", "the request failed"))
    example: dict[str, Any] = {
        "type": PROBLEM_BASE + (code or default_code),
        "title": code or default_code,
        "status": status,
        "detail": detail,
        "instance": _filled(path),
    }
    if status == 422 and (code or default_code) == "ValidationFailed":
        example["errors"] = _FIELD_ERRORS
    return example


def documented_problem(description: str, example: dict[str, Any] | None = None) -> dict[str, Any]:
    """One documented error answer: a problem document, with `example` if given (else
    `describe` adds the status's usual one)."""
    media: dict[str, Any] = {"schema": {"$ref": PROBLEM_SCHEMA_REF}}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: media}}


def problem_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: each status's description, answered by a problem document."""
    return {status: documented_problem(text) for status, text in descriptions.items()}


def _filled(path: str) -> str:
    parts = path.split("/")
    return "/".join(_SAMPLE_ID if p.startswith("{") else p for p in parts)


def _is_error(status: str) -> bool:
    return status[:1] in ("4", "5")


def _add_examples(path: str, operation: dict[str, Any]) -> None:
    for status, response in operation.get("responses", {}).items():
        if not _is_error(status):
            continue
        media = response.setdefault("content", {}).get(PROBLEM_MEDIA_TYPE)
        if media is None:
            continue
        media.setdefault("schema", {"$ref": PROBLEM_SCHEMA_REF})
        if "example" not in media and "examples" not in media:
            media["example"] = problem_example(int(status), path)


def _path_rank(item: tuple[int, tuple[str, dict[str, Any]]]) -> tuple[int, int, int]:
    index, (path, operations) = item
    tags = [t for op in operations.values() for t in op.get("tags", [])]
    rank = min((TAG_ORDER.get(t, len(TAGS)) for t in tags), default=len(TAGS))
    # Within episodes: refer and list (`/episodes`), then one episode, then its reads.
    depth = path.count("/")
    return rank, depth if rank == TAG_ORDER["episodes"] else 0, index


def describe(schema: dict[str, Any]) -> dict[str, Any]:
    """Finish the served document: examples on every problem answer, paths in tag order,
    the used tags (with their descriptions) in the order of `TAGS`."""
    paths: dict[str, Any] = schema.get("paths", {})
    for path, operations in paths.items():
        for operation in operations.values():
            _add_examples(path, operation)
    schema["paths"] = dict(item for _, item in sorted(enumerate(paths.items()), key=_path_rank))
    used = {t for ops in paths.values() for op in ops.values() for t in op.get("tags", [])}
    schema["tags"] = [tag for tag in TAGS if tag["name"] in used]
    return schema
