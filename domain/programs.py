"""Program definitions: the data that sets phases, intensity, cadence and thresholds.

The model validates a definition; reading files is the job of `programs`.
Every default below is the adult IOP of DESIGN.md section 2, so a short definition
file still yields a complete, clinically sensible program.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.durations import Duration, PositiveDuration, legacy_units
from domain.errors import ProgramDefinitionInvalid, UnknownProgram, UnknownProgramVersion
from domain.vocabulary import LevelOfCare, StaffRecipient, TaskKind

WEEK = timedelta(weeks=1)


class _Section(BaseModel):
    """A part of a program definition. Durations are ISO 8601 (`PT60M`, `P14D`); the
    fields in `LEGACY` are the unit-named integers older definitions used instead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    LEGACY: ClassVar[dict[str, tuple[str, str]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _legacy_units(cls, data: Any) -> Any:
        return legacy_units(data, cls.LEGACY)


class Phase(_Section):
    """A phase of the program. `duration` is how long it is planned to last: when it is
    up, the primary clinician is reminded to review the phase. Advancing out of it before
    `min_duration` (by default the whole duration) needs a reason."""

    LEGACY: ClassVar[dict[str, tuple[str, str]]] = {"weeks": ("duration", "weeks")}

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    duration: PositiveDuration = Field(le=timedelta(weeks=52))
    min_duration: Duration | None = None

    @model_validator(mode="after")
    def _min_within(self) -> Phase:
        if self.min_duration is not None and self.min_duration > self.duration:
            raise ValueError("min_duration must not exceed duration")
        return self

    @property
    def weeks(self) -> float:
        return self.duration / WEEK

    @property
    def earliest_advance(self) -> timedelta:
        """How long after the phase began it may be advanced without a reason."""
        return self.duration if self.min_duration is None else self.min_duration


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
    LEGACY: ClassVar[dict[str, tuple[str, str]]] = {
        "initial_plan_due_days": ("initial_plan_due", "days"),
        "review_every_days": ("review_every", "days"),
        "review_reminder_days": ("review_reminder", "days"),
    }

    initial_plan_due: PositiveDuration = Field(default=timedelta(days=7), le=timedelta(days=60))
    review_every: PositiveDuration = Field(default=timedelta(days=14), le=timedelta(days=120))
    # How long before a review falls due its reminder goes out; zero sends none.
    review_reminder: Duration = Field(default=timedelta(days=2), le=timedelta(days=30))


class Attendance(_Section):
    """When an unrecorded session counts as a no-show, and what a session may be.

    `min_session` is the shortest session that may be scheduled; `backdate_window` how
    far in the past a session may still be scheduled (to record one held earlier)."""

    LEGACY: ClassVar[dict[str, tuple[str, str]]] = {
        "no_show_grace_minutes": ("no_show_grace", "minutes"),
    }

    no_show_grace: Duration = Field(default=timedelta(minutes=60), le=timedelta(days=7))
    min_session: PositiveDuration = Field(default=timedelta(minutes=30))
    backdate_window: Duration = Field(default=timedelta(days=7), le=timedelta(days=90))


class EscalationLevel(_Section):
    LEGACY: ClassVar[dict[str, tuple[str, str]]] = {"due_hours": ("due", "hours")}

    level: int = Field(ge=1, le=9)
    task: TaskKind
    due: PositiveDuration = Field(le=timedelta(days=30))
    notify: tuple[StaffRecipient, ...] = Field(min_length=1)


DEFAULT_LADDER = (
    EscalationLevel(
        level=1,
        task=TaskKind.OUTREACH,
        due=timedelta(hours=24),
        notify=(StaffRecipient.PRIMARY_CLINICIAN,),
    ),
    EscalationLevel(
        level=2,
        task=TaskKind.OUTREACH,
        due=timedelta(hours=24),
        notify=(StaffRecipient.CARE_COORDINATOR, StaffRecipient.SUPERVISOR),
    ),
    EscalationLevel(
        level=3,
        task=TaskKind.CASE_REVIEW,
        due=timedelta(hours=48),
        notify=(StaffRecipient.SUPERVISOR,),
    ),
    EscalationLevel(
        level=4,
        task=TaskKind.DIRECTOR_REVIEW,
        due=timedelta(hours=48),
        notify=(StaffRecipient.CLINICAL_DIRECTOR,),
    ),
)


class Escalation(_Section):
    """The absence ladder. `consecutive_no_shows[i]` consecutive no-shows open level i + 1.

    A week below the program's minimum hours opens a task at `below_intensity_level`."""

    LEGACY: ClassVar[dict[str, tuple[str, str]]] = {
        "window_days": ("window", "days"),
        "no_contact_days": ("no_contact", "days"),
        "no_contact_due_hours": ("no_contact_due", "hours"),
    }

    levels: tuple[EscalationLevel, ...] = Field(default=DEFAULT_LADDER, min_length=1)
    consecutive_no_shows: tuple[int, ...] = Field(default=(1, 2, 3), min_length=1)
    window_no_shows: int = Field(default=4, ge=1)
    window: PositiveDuration = timedelta(days=14)
    window_level: int = Field(default=3, ge=1)
    no_contact: PositiveDuration = timedelta(days=14)
    no_contact_level: int = Field(default=4, ge=1)
    no_contact_due: PositiveDuration = timedelta(hours=72)
    below_intensity_level: int = Field(default=1, ge=1)

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
        for name in ("window_level", "no_contact_level", "below_intensity_level"):
            if getattr(self, name) > len(numbers):
                raise ValueError(f"{name} names a level that is not defined")
        return self

    def level(self, number: int) -> EscalationLevel:
        return self.levels[min(number, len(self.levels)) - 1]

    @property
    def top_level(self) -> int:
        return len(self.levels)


class Hold(_Section):
    LEGACY: ClassVar[dict[str, tuple[str, str]]] = {"review_days": ("review", "days")}

    review: PositiveDuration = Field(default=timedelta(days=14), le=timedelta(days=90))


_CHECK_IN_OFFSETS = tuple(timedelta(days=d) for d in (7, 30, 90, 180, 365))


class Aftercare(_Section):
    """Aftercare check-ins fall due at each offset after step-down, and may be recorded
    within `check_in_window` either side of it (outside it only with a reason)."""

    LEGACY: ClassVar[dict[str, tuple[str, str]]] = {
        "check_in_offsets_days": ("check_in_offsets", "days"),
        "check_in_window_days": ("check_in_window", "days"),
        "reassessment_due_hours": ("reassessment_due", "hours"),
    }

    check_in_offsets: tuple[PositiveDuration, ...] = Field(
        default=_CHECK_IN_OFFSETS, min_length=1, max_length=20
    )
    check_in_window: Duration = Field(default=timedelta(days=7), le=timedelta(days=60))
    outreach_level: int = Field(default=1, ge=1)
    reassessment_level: int = Field(default=2, ge=1)
    reassessment_due: PositiveDuration = timedelta(hours=72)
    fhir_status: Literal["active", "finished"] = "active"

    @model_validator(mode="after")
    def _increasing(self) -> Aftercare:
        offsets = list(self.check_in_offsets)
        if offsets != sorted(set(offsets)):
            raise ValueError("check_in_offsets must be strictly increasing")
        return self


class Authorizations(_Section):
    LEGACY: ClassVar[dict[str, tuple[str, str]]] = {
        "reminder_days_before_expiry": ("reminder_before_expiry", "days"),
    }

    reminder_before_expiry: Duration = Field(default=timedelta(days=7), le=timedelta(days=90))


class ProgramDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    # Raised whenever the definition changes (docs/programs.md): an episode keeps the
    # version it was referred under. None only in definitions recorded before programs
    # had versions (workflow inputs of old episodes); the loader reads a file without
    # one as version 1.
    version: int | None = Field(default=None, ge=1)
    name: str = Field(min_length=1)
    population: str = Field(pattern=r"^(adult|adolescent)$")
    # The clinic's IANA time zone: weeks, clinic days and the times shown to staff are
    # local to it. Events are stored in UTC whatever it is.
    timezone: str = "UTC"
    # False for a drill or demo program whose timers are not clinical: its phases need
    # not add up to the weeks of a treatment plan.
    clinical: bool = True
    level_of_care: LevelOfCare = LevelOfCare.IOP
    phases: tuple[Phase, ...] = Field(min_length=1)
    intensity: Intensity = Intensity()
    planning: Planning = Planning()
    attendance: Attendance = Attendance()
    escalation: Escalation = Escalation()
    hold: Hold = Hold()
    aftercare: Aftercare = Aftercare()
    authorizations: Authorizations = Authorizations()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            near = sorted(z for z in available_timezones() if z.split("/")[-1] == name)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(
                f"{name!r} is not an IANA time zone such as 'America/New_York'{hint}"
            ) from None
        return name

    @model_validator(mode="after")
    def _consistent(self) -> ProgramDefinition:
        ids = [phase.id for phase in self.phases]
        if len(ids) != len(set(ids)):
            raise ValueError(f"phase ids must be unique, got {ids}")
        total = sum(phase.weeks for phase in self.phases)
        if self.clinical and not self.intensity.min_weeks <= total <= self.intensity.max_weeks:
            raise ValueError(
                f"phases last {total:g} weeks in total, outside intensity.min_weeks.."
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


def program_document(program: ProgramDefinition) -> dict[str, Any]:
    """The definition as JSON data, settings left at their defaults omitted: what its digest
    is computed over and what a migration records. Comments, layout and the unit a
    duration is written in do not show in it; a changed setting does."""
    document: dict[str, Any] = program.model_dump(mode="json", exclude_defaults=True)
    return document


def program_digest(program: ProgramDefinition) -> str:
    """SHA-256 (hex) of the definition's canonical JSON (`program_document`)."""
    text = json.dumps(
        program_document(program),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def version_label(program_id: str, version: int | None) -> str:
    """`adult-iop@2`; `adult-iop@unversioned` for a definition recorded before versions."""
    return f"{program_id}@{version if version is not None else 'unversioned'}"


class ProgramCatalog:
    """The loaded program definitions, by id: the current version of each (what a new
    referral gets) and, in `history`, every recorded version, current ones included (what
    an episode may be shown under or migrated to)."""

    def __init__(
        self,
        programs: Mapping[str, ProgramDefinition],
        history: Mapping[tuple[str, int], ProgramDefinition] | None = None,
    ) -> None:
        self._programs = dict(programs)
        self._history = dict(history or {})
        for program in self._programs.values():
            if program.version is not None:
                self._history.setdefault((program.id, program.version), program)

    def get(self, program_id: str) -> ProgramDefinition:
        try:
            return self._programs[program_id]
        except KeyError:
            raise UnknownProgram(program_id, self.ids()) from None

    def version(self, program_id: str, version: int) -> ProgramDefinition:
        """One recorded version of a program; raises `UnknownProgram` or
        `UnknownProgramVersion`."""
        self.get(program_id)
        try:
            return self._history[(program_id, version)]
        except KeyError:
            raise UnknownProgramVersion(program_id, version, self.versions(program_id)) from None

    def of_episode(self, program_id: str, version: int | None) -> ProgramDefinition:
        """The definition an episode runs under: the version it was admitted under or
        migrated to, while the catalog holds it; else the program's current version
        (an episode recorded before versions, or a version no longer shipped).
        Raises `UnknownProgram` for a program the catalog does not hold."""
        current = self.get(program_id)
        if version is None:
            return current
        return self._history.get((program_id, version), current)

    def versions(self, program_id: str) -> tuple[int, ...]:
        """The recorded versions of a program, oldest first."""
        return tuple(sorted(v for p, v in self._history if p == program_id))

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._programs))

    def __contains__(self, program_id: object) -> bool:
        return program_id in self._programs
