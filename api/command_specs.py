"""Every staff command as an HTTP endpoint: its path, its request body and an example.

The request bodies are built from the domain's command models (`create_model`), minus
what the server supplies: the command id (from the `Idempotency-Key` header), the actor
(from the bearer token), the `type` tag (from the path) and any field named in the path
(e.g. the session id of `/sessions/{session_id}/attendance`). A field added to a command
therefore appears in its endpoint at once. The referral has its own endpoint
(`POST /episodes`) and `Tick` is the system's, so neither is here.

No FastAPI here: the CLI imports this module to find a command's path and fields.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from api.command_examples import EXAMPLES
from domain import commands as c
from domain.command_base import CommandBase

# command type -> path under /episodes/{episode_id}
COMMAND_PATHS: dict[str, str] = {
    "start_screening": "/screening/start",
    "record_screening": "/screening",
    "refer_out": "/refer-out",
    "record_assessment": "/assessment",
    "override_level_of_care": "/level-of-care-override",
    "admit_client": "/admission",
    "record_treatment_plan": "/treatment-plan",
    "advance_phase": "/phase-advance",
    "complete_plan_review": "/plan-reviews",
    "place_on_hold": "/hold",
    "resume_from_hold": "/hold/resume",
    "step_up": "/step-up",
    "record_relapse_prevention_plan": "/relapse-prevention-plan",
    "record_aftercare_plan": "/aftercare-plan",
    "step_down": "/step-down",
    "discharge": "/discharge",
    "schedule_session": "/sessions",
    "reschedule_session": "/sessions/{session_id}/reschedule",
    "cancel_session": "/sessions/{session_id}/cancel",
    "record_attendance": "/sessions/{session_id}/attendance",
    "correct_attendance": "/sessions/{session_id}/attendance-correction",
    "resolve_task": "/tasks/{task_id}/resolution",
    "record_check_in": "/check-ins",
    "report_relapse": "/relapse",
    "readmit_client": "/readmission",
    "record_consent": "/consents",
    "revoke_consent": "/consents/{consent_id}/revocation",
    "notify_party": "/notifications",
    "record_authorization": "/authorizations",
}

# Set by the server, never by the caller's body.
SERVER_FIELDS = frozenset({"command_id", "actor", "type"})
# Commands without an endpoint here: the referral opens the episode (POST /episodes) and
# ticks are the workflow's own timers.
NOT_STAFF_COMMANDS = frozenset({"refer_client", "tick"})

_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class CommandSpec:
    """One staff command's endpoint."""

    kind: str
    command: type[CommandBase]
    path: str  # under /episodes/{episode_id}
    path_params: tuple[str, ...]
    request_model: type[BaseModel]

    @property
    def name(self) -> str:
        """The CLI's name for the command: its type with dashes."""
        return self.kind.replace("_", "-")

    @property
    def summary(self) -> str:
        return (self.command.__doc__ or self.kind).strip().splitlines()[0]

    def build(self, command_id: str, actor: Any, body: BaseModel, path: dict[str, Any]) -> Any:
        """The domain command from the request; raises pydantic's ValidationError."""
        fields = {name: getattr(body, name) for name in type(body).model_fields}
        return self.command(command_id=command_id, actor=actor, **fields, **path)


def command_classes() -> list[type[CommandBase]]:
    """Every command class of the domain's `Command` union."""
    union = typing.get_args(c.Command)[0]
    return list(typing.get_args(union))


def _command_type(cls: type[CommandBase]) -> str:
    default = cls.model_fields["type"].default
    assert isinstance(default, str)
    return default


def _request_model(
    cls: type[CommandBase], path_params: tuple[str, ...], example: dict[str, Any]
) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in cls.model_fields.items()
        if name not in SERVER_FIELDS and name not in path_params
    }
    model: type[BaseModel] = create_model(
        f"{cls.__name__}Request",
        __config__=ConfigDict(
            extra="forbid", frozen=True, json_schema_extra={"examples": [example]}
        ),
        __doc__=(cls.__doc__ or "").strip(),
        __module__=__name__,
        **fields,
    )
    return model


@cache
def command_specs() -> tuple[CommandSpec, ...]:
    """The spec of every staff command, in the order of the domain's union."""
    specs = []
    for cls in command_classes():
        kind = _command_type(cls)
        if kind in NOT_STAFF_COMMANDS:
            continue
        path = COMMAND_PATHS[kind]
        params = tuple(_PATH_PARAM.findall(path))
        example = {k: v for k, v in EXAMPLES[kind].items() if k not in params}
        specs.append(CommandSpec(kind, cls, path, params, _request_model(cls, params, example)))
    return tuple(specs)


def spec_for(name: str) -> CommandSpec:
    """The spec of a command by type (`record_attendance`) or CLI name (`record-attendance`)."""
    wanted = name.replace("-", "_")
    for spec in command_specs():
        if spec.kind == wanted:
            return spec
    known = ", ".join(s.name for s in command_specs())
    raise KeyError(f"unknown command {name!r}: use one of {known}")
