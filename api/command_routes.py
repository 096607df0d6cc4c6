"""`POST /episodes/{episode_id}/<command>`: one typed endpoint per staff command.

Each endpoint: authenticates the caller and checks the role matrix before the body is
even read (`role_first`: 401 or 403 whatever the body holds, before anything is looked
up, so a refusal says nothing about the episode), builds the domain command with the
`Idempotency-Key` header as its command id (a retry with the same key is applied once)
and sends it, with the caller's programs, to the episode's workflow. The workflow's
validator hides an episode outside the caller's programs (404, recorded as denied) and
its decider has the last word; no read model is consulted on the way.
"""

# No `from __future__ import annotations`: the endpoints' signatures are built at run time
# and FastAPI reads their annotations as objects.

import inspect
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from api.auth import User, bearer_scheme, current_user
from api.command_specs import CommandSpec, command_specs
from api.metrics import measured_command
from api.openapi_docs import problem_responses
from api.problems import ProblemError
from api.schemas import CommandResponse
from api.scoping import EpisodeGate, denied
from domain.programs import ProgramCatalog
from domain.roles import check_allowed
from workflows.client import (
    CommandRejected,
    EpisodeClient,
    EpisodeNotFound,
    EpisodeOutsidePrograms,
)

IDEMPOTENCY_KEY = r"^[A-Za-z0-9._:@-]{1,200}$"

COMMAND_RESPONSES = problem_responses(
    {
        400: "Malformed JSON",
        401: "No bearer token, or one that does not verify",
        403: "The caller's role may not issue this command",
        404: "No such episode in the caller's programs",
        409: "The command conflicts with the episode's state (e.g. wrong stage, closed)",
        422: "Invalid body, or a command inconsistent with itself",
        503: "Temporal or PostgreSQL unavailable",
    }
)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY,
        description="Becomes the command id: a command retried with the same key is "
        "applied once and answered with the first result. Generated when absent.",
    ),
]
IncludeState = Annotated[
    bool,
    Query(description="Also return the whole episode state (larger history; off by default)"),
]


def role_first(kind: str) -> type[APIRoute]:
    """A route class that authenticates the caller and checks that their role may issue
    `kind` before FastAPI reads the request at all.

    FastAPI parses and validates the body before an endpoint (or a dependency's refusal)
    can answer, so a role that may not issue the command would learn about its body's
    faults (400, 422) instead of being refused (403). The OpenAPI document is unchanged:
    the route still declares its body model. Every answer is counted and timed as a
    command of that kind (`api.metrics`).
    """

    class RoleFirstRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def checked(request: Request) -> Response:
                async def answer() -> Response:
                    user = await current_user(request, await bearer_scheme(request))
                    check_allowed(kind, user.actor())
                    return await handler(request)

                # Counted and timed whatever the answer (api.metrics), refusals included.
                return await measured_command(kind, answer)

            return checked

    RoleFirstRoute.__name__ = RoleFirstRoute.__qualname__ = f"RoleFirstRoute[{kind}]"
    return RoleFirstRoute


def command_router(
    episodes: EpisodeClient, gate: EpisodeGate, programs: ProgramCatalog | None = None
) -> APIRouter:
    router = APIRouter(tags=["commands"])
    for spec in command_specs():
        _add_route(router, spec, episodes, gate, programs)
    return router


async def _server_fields(
    spec: CommandSpec,
    body: Any,
    request: Request,
    user: User,
    episode_id: str,
    gate: EpisodeGate,
    programs: ProgramCatalog | None,
) -> dict[str, Any]:
    """What the server fills in of a command (`CommandBase.server_fields`): the definition
    of the program version a migration names, from the catalog, for the episode's program
    (which the gate finds, hiding an episode outside the caller's programs)."""
    if "program" not in spec.command.server_fields:
        return {}
    program_id = await gate.check(request, user, episode_id)
    if programs is None:
        raise ProblemError(
            "ServiceUnavailable", "this server has no program catalog to migrate with", 503
        )
    return {"program": programs.version(program_id, body.to_version)}


def _body_parameter(spec: CommandSpec) -> inspect.Parameter:
    # A command whose fields are all optional (e.g. admission) may be sent without a body.
    optional = all(not f.is_required() for f in spec.request_model.model_fields.values())
    if optional:
        return inspect.Parameter(
            "body",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[spec.request_model | None, Body()],
            default=None,
        )
    return inspect.Parameter(
        "body", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[spec.request_model, Body()]
    )


def _add_route(
    router: APIRouter,
    spec: CommandSpec,
    episodes: EpisodeClient,
    gate: EpisodeGate,
    programs: ProgramCatalog | None,
) -> None:
    async def endpoint(**kwargs: Any) -> CommandResponse:
        request: Request = kwargs["request"]
        user: User = kwargs["user"]
        episode_id: str = kwargs["episode_id"]
        actor = user.actor()
        # The role matrix was checked before the body was read (role_first); the
        # program scope is checked by the workflow, with the programs sent along.
        command_id = kwargs["idempotency_key"] or str(uuid.uuid4())
        request.state.command_id = command_id
        path_values = {name: kwargs[name] for name in spec.path_params}
        try:
            body = kwargs["body"] or spec.request_model()
            supplied = await _server_fields(spec, body, request, user, episode_id, gate, programs)
            command = spec.build(command_id, actor, body, path_values, supplied)
        except ValidationError as err:
            raise ProblemError(
                "InvalidCommand",
                "the command is inconsistent: "
                + "; ".join(str(e["msg"]) for e in err.errors(include_url=False)),
                422,
            ) from None
        try:
            result = await episodes.send(
                episode_id,
                command,
                include_state=kwargs["include_state"],
                programs=user.program_filter(),
            )
        except EpisodeOutsidePrograms:
            raise denied(request, episode_id) from None
        except EpisodeNotFound:
            # No running workflow: the episode never existed, is another program's, or
            # has ended. Only the first two are the event store's to tell apart.
            await gate.check(request, user, episode_id)
            raise CommandRejected(
                "EpisodeClosed",
                f"episode {episode_id!r} is closed (discharged, referred out or readmitted): "
                "nothing more can be recorded in it",
            ) from None
        return CommandResponse.of(result)

    params = [
        inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
        inspect.Parameter(
            "episode_id",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[str, Path(min_length=1, max_length=200)],
        ),
        *(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[str, Path(min_length=1, max_length=200)],
            )
            for name in spec.path_params
        ),
        _body_parameter(spec),
        inspect.Parameter(
            "user",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[User, Depends(current_user)],
        ),
        inspect.Parameter(
            "idempotency_key",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=IdempotencyKey,
            default=None,
        ),
        inspect.Parameter(
            "include_state", inspect.Parameter.KEYWORD_ONLY, annotation=IncludeState, default=False
        ),
    ]
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = spec.kind
    roles = " or ".join(sorted(role.value for role in spec.roles))
    router.add_api_route(
        "/episodes/{episode_id}" + spec.path,
        endpoint,
        methods=["POST"],
        response_model=CommandResponse,
        responses=COMMAND_RESPONSES,
        summary=spec.summary,
        description=f"{(spec.command.__doc__ or '').strip()}\n\nRoles: {roles}.",
        operation_id=spec.kind,
        route_class_override=role_first(spec.kind),
    )
