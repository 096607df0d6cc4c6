"""Commands about the program an episode runs under."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from domain.command_base import CommandBase, Endpoint
from domain.programs import ProgramDefinition


class MigrateProgram(CommandBase):
    """Move the episode to another recorded version of its program (supervisor and up)."""

    endpoint = Endpoint(
        "/program/migrate",
        example={"to_version": 2, "reason": "clinic adopted the 2-no-show escalation"},
    )
    server_fields: ClassVar[frozenset[str]] = frozenset({"program"})

    type: Literal["migrate_program"] = "migrate_program"
    to_version: int = Field(ge=1, description="The recorded version of the episode's program.")
    # The definition of `to_version`, filled in by the server from its catalog: the
    # workflow cannot read files, and the command must carry what it moves the episode to.
    program: ProgramDefinition | None = None
