"""Program definitions: the data that sets phases, intensity, cadence and thresholds.

The model validates a definition; reading files is the job of `carepath.programs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from carepath.domain.errors import ProgramDefinitionInvalid, UnknownProgram


class Phase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    weeks: int = Field(ge=1, le=52)


class ProgramDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str = Field(min_length=1)
    population: str = Field(pattern=r"^(adult|adolescent)$")
    phases: tuple[Phase, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _phase_ids_unique(self) -> ProgramDefinition:
        ids = [phase.id for phase in self.phases]
        if len(ids) != len(set(ids)):
            raise ValueError(f"phase ids must be unique, got {ids}")
        return self


def parse_program(data: Mapping[str, Any], source: str = "<program>") -> ProgramDefinition:
    """Validate a program definition, naming the first bad field and why on failure."""
    try:
        return ProgramDefinition.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ProgramDefinitionInvalid(
            f"{source}: field {field!r}: {first['msg']} (fix the program definition file)"
        ) from exc


class ProgramCatalog:
    """The loaded program definitions, by id."""

    def __init__(self, programs: Mapping[str, ProgramDefinition]) -> None:
        self._programs = dict(programs)

    def get(self, program_id: str) -> ProgramDefinition:
        try:
            return self._programs[program_id]
        except KeyError:
            raise UnknownProgram(program_id, self.ids()) from None

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._programs))

    def __contains__(self, program_id: object) -> bool:
        return program_id in self._programs
