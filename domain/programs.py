"""Program definitions: the data that sets phases, intensity, cadence and thresholds.

The model validates a definition; reading files is the job of `programs`.
Every default below is the adult IOP of DESIGN.md section 2, so a short definition
file still yields a complete, clinically sensible program.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.errors import ProgramDefinitionInvalid, UnknownProgram
from domain.vocabulary import LevelOfCare, StaffRecipient, TaskKind


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Phase(_Section):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    weeks: int = Field(ge=1, le=52)


class Intensity(_Section):
    """Weekly intensity bounds (ASAM 2.1: at least 9 h for adults, 6 h for adolescents)."""

    min_weekly_hours: float = Field(default=9, gt=0)
    max_weekly_hours: float = Field(default=19, gt=0)
    min_sessions_per_week: int = Field(default=3, ge=1, le=7)
    max_sessions_per_week: int = Field(default=5, ge=1, le=7)
    min_session_hours: float = Field(default=2, gt=0)
    max_session_hours: float = Field(default=4, gt=0)
    min_weeks: int = Field(default=4, ge=1)
    max_weeks: int = Field(default=12, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Intensity:
        pairs = (
            ("min_weekly_hours", "max_weekly_hours"),
            ("min_sessions_per_week", "max_sessions_per_week"),
            ("min_session_hours", "max_session_hours"),
            ("min_weeks", "max_weeks"),
        )
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} must not exceed {high}")
        return self


class Planning(_Section):
    initial_plan_due_days: int = Field(default=7, ge=1, le=60)
    review_every_days: int = Field(default=14, ge=1, le=120)
    review_reminder_days: int = Field(default=2, ge=0, le=30)


class Attendance(_Section):
    no_show_grace_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)


class EscalationLevel(_Section):
    level: int = Field(ge=1, le=9)
    task: TaskKind
    due_hours: int = Field(ge=1, le=24 * 30)
    notify: tuple[StaffRecipient, ...] = Field(min_length=1)


DEFAULT_LADDER = (
    EscalationLevel(
        level=1, task=TaskKind.OUTREACH, due_hours=24, notify=(StaffRecipient.PRIMARY_CLINICIAN,)
    ),
    EscalationLevel(
        level=2,
        task=TaskKind.OUTREACH,
        due_hours=24,
        notify=(StaffRecipient.CARE_COORDINATOR, StaffRecipient.SUPERVISOR),
    ),
    EscalationLevel(
        level=3, task=TaskKind.CASE_REVIEW, due_hours=48, notify=(StaffRecipient.SUPERVISOR,)
    ),
    EscalationLevel(
        level=4,
        task=TaskKind.DIRECTOR_REVIEW,
        due_hours=48,
        notify=(StaffRecipient.CLINICAL_DIRECTOR,),
    ),
)


class Escalation(_Section):
    """The absence ladder. `consecutive_no_shows[i]` consecutive no-shows open level i + 1."""

    levels: tuple[EscalationLevel, ...] = Field(default=DEFAULT_LADDER, min_length=1)
    consecutive_no_shows: tuple[int, ...] = Field(default=(1, 2, 3), min_length=1)
    window_no_shows: int = Field(default=4, ge=1)
    window_days: int = Field(default=14, ge=1)
    window_level: int = Field(default=3, ge=1)
    no_contact_days: int = Field(default=14, ge=1)
    no_contact_level: int = Field(default=4, ge=1)
    no_contact_due_hours: int = Field(default=72, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Escalation:
        numbers = [level.level for level in self.levels]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"levels must be numbered 1..n in order, got {numbers}")
        counts = list(self.consecutive_no_shows)
        if counts != sorted(set(counts)) or counts[0] < 1:
            raise ValueError("consecutive_no_shows must be strictly increasing positive counts")
        if len(counts) > len(numbers):
            raise ValueError("consecutive_no_shows names more levels than are defined")
        for name in ("window_level", "no_contact_level"):
            if getattr(self, name) > len(numbers):
                raise ValueError(f"{name} names a level that is not defined")
        return self

    def level(self, number: int) -> EscalationLevel:
        return self.levels[min(number, len(self.levels)) - 1]

    @property
    def top_level(self) -> int:
        return len(self.levels)


class Hold(_Section):
    review_days: int = Field(default=14, ge=1, le=90)


class Aftercare(_Section):
    check_in_offsets_days: tuple[int, ...] = Field(default=(7, 30, 90, 180, 365), min_length=1)
    check_in_window_days: int = Field(default=7, ge=0, le=60)
    outreach_level: int = Field(default=1, ge=1)
    reassessment_level: int = Field(default=2, ge=1)
    reassessment_due_hours: int = Field(default=72, ge=1)
    fhir_status: Literal["active", "finished"] = "active"

    @model_validator(mode="after")
    def _increasing(self) -> Aftercare:
        offsets = list(self.check_in_offsets_days)
        if offsets != sorted(set(offsets)) or offsets[0] < 1:
            raise ValueError("check_in_offsets_days must be strictly increasing positive days")
        return self


class Authorizations(_Section):
    reminder_days_before_expiry: int = Field(default=7, ge=0, le=90)


class ProgramDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str = Field(min_length=1)
    population: str = Field(pattern=r"^(adult|adolescent)$")
    level_of_care: LevelOfCare = LevelOfCare.IOP
    phases: tuple[Phase, ...] = Field(min_length=1)
    intensity: Intensity = Intensity()
    planning: Planning = Planning()
    attendance: Attendance = Attendance()
    escalation: Escalation = Escalation()
    hold: Hold = Hold()
    aftercare: Aftercare = Aftercare()
    authorizations: Authorizations = Authorizations()

    @model_validator(mode="after")
    def _consistent(self) -> ProgramDefinition:
        ids = [phase.id for phase in self.phases]
        if len(ids) != len(set(ids)):
            raise ValueError(f"phase ids must be unique, got {ids}")
        total = sum(phase.weeks for phase in self.phases)
        if not self.intensity.min_weeks <= total <= self.intensity.max_weeks:
            raise ValueError(
                f"phases last {total} weeks in total, outside intensity.min_weeks.."
                f"max_weeks ({self.intensity.min_weeks}..{self.intensity.max_weeks})"
            )
        top = self.escalation.top_level
        if max(self.aftercare.outreach_level, self.aftercare.reassessment_level) > top:
            raise ValueError("aftercare escalation levels must be defined in escalation.levels")
        return self

    def phase_after(self, phase_id: str | None) -> Phase | None:
        """The phase that follows `phase_id`, or None if it is the last."""
        ids = [phase.id for phase in self.phases]
        index = ids.index(phase_id) + 1 if phase_id in ids else len(ids)
        return self.phases[index] if index < len(ids) else None


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
