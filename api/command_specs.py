"""Every staff command as an HTTP endpoint: its path, its request body and an example.

Derived from the domain's rule registry (`domain.rules`): every registered command whose
class declares an `endpoint` gets one, at the path the class names, open to the roles its
rule names, with the class's example. The request bodies are built from the command
models (`create_model`), minus what the server supplies: the command id (from the
`Idempotency-Key` header), the actor (from the bearer token), the `type` tag (from the
path) and any field named in the path (e.g. the session id of
`/sessions/{session_id}/attendance`). A field added to a command therefore appears in its
endpoint at once. The referral has its own endpoint (`POST /episodes`) and `Tick` is the
system's, so neither declares an endpoint here.

No FastAPI here: the CLI imports this module to find a command's path and fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from domain.actors import Role
from domain.command_base import CommandBase
from domain.rules import registered

# Set by the server, never by the caller's body.
SERVER_FIELDS = frozenset({"command_id", "actor", "type"})

_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class CommandSpec:
    """One staff command's endpoint."""

    kind: str
    command: type[CommandBase]
    roles: frozenset[Role]
    path: str  # under /episodes/{episode_id}
    path_params: tuple[str, ...]
    # The fields a caller supplies, path fields included (the class's declared example).
    example: dict[str, Any]
    request_model: type[BaseModel]

    @property
    def name(self) -> str:
        """The CLI's name for the command: its type with dashes."""
        return self.kind.replace("_", "-")

    @property
    def summary(self) -> str:
        return (self.command.__doc__ or self.kind).strip().splitlines()[0]

    @property
    def body_example(self) -> dict[str, Any]:
        """The example request body: the example less the fields the path carries."""
        return {k: v for k, v in self.example.items() if k not in self.path_params}

    @property
    def path_example(self) -> dict[str, Any]:
        """The example's values of the path fields."""
        return {k: self.example[k] for k in self.path_params}

    def build(
        self,
        command_id: str,
        actor: Any,
        body: BaseModel,
        path: dict[str, Any],
        supplied: dict[str, Any] | None = None,
    ) -> Any:
        """The domain command from the request, with the fields the server `supplied`
        (`CommandBase.server_fields`); raises pydantic's ValidationError."""
        fields = {name: getattr(body, name) for name in type(body).model_fields}
        return self.command(
            command_id=command_id, actor=actor, **fields, **path, **(supplied or {})
        )


def _request_model(
    cls: type[CommandBase], path_params: tuple[str, ...], example: dict[str, Any]
) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in cls.model_fields.items()
        if name not in SERVER_FIELDS | cls.server_fields and name not in path_params
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
    for entry in registered():
        endpoint = entry.command.endpoint
        if endpoint is None:
            continue
        params = tuple(_PATH_PARAM.findall(endpoint.path))
        body_example = {k: v for k, v in endpoint.example.items() if k not in params}
        specs.append(
            CommandSpec(
                kind=entry.kind,
                command=entry.command,
                roles=entry.roles,
                path=endpoint.path,
                path_params=params,
                example=endpoint.example,
                request_model=_request_model(entry.command, params, body_example),
            )
        )
    return tuple(specs)


def spec_for(name: str) -> CommandSpec:
    """The spec of a command by type (`record_attendance`) or CLI name (`record-attendance`)."""
    wanted = name.replace("-", "_")
    for spec in command_specs():
        if spec.kind == wanted:
            return spec
    known = ", ".join(s.name for s in command_specs())
    raise KeyError(f"unknown command {name!r}: use one of {known}")
