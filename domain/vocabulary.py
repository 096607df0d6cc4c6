"""The clinical vocabulary shared by commands, events, state and program definitions.

Enumerations and small value objects only: the bounded kinds of text and moments every
command is built from, stages, referral sources, levels of care, ASAM ratings, ICD-10
codes, plan content, session kinds, consent scopes. Kept apart so every other module can
import them without cycles, and so that events (the stored record) depend on nothing but
this vocabulary and `domain.actors`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined

# --- what a value may hold at all --------------------------------------------------------
#
# Every string and moment a command carries is bounded here, once, by its type: a value
# that passed the decider is stored in PostgreSQL, replayed from Temporal history and
# shown to staff, so one that any of those refuse (PostgreSQL refuses NUL; a year-9999
# session overflows the deadline arithmetic) would be retried forever and wedge the
# episode. The types say so in the OpenAPI document too (`pattern`, `maxLength`).

# No C0 or C1 control characters (NUL, escape sequences, backspace...): they corrupt
# logs and displays, and PostgreSQL refuses NUL outright. One-line values also refuse
# tab, line feed and the Unicode line and paragraph separators. The pattern check also
# refuses lone surrogates, which are not text.
_ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
# Multi-line free text keeps tab (\x09) and line feed (\x0a); not carriage return, so a
# line cannot overwrite another on a terminal.
_MULTI_LINE = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"

MAX_ITEMS = 20
"""The most items any list in a command may hold: more problems, goals, contacts or
diagnoses than this is a data-entry error, and the bound keeps the largest command well
under Temporal's payload limits."""


def items(*, at_least: int = 0, default: Any = PydanticUndefined) -> Any:
    """The field of a list: at least `at_least` and at most MAX_ITEMS items, checked
    fail-fast. A list of a thousand bad items is then one error, not thousands: the text
    of a refusal stays small, also where Temporal carries it (a workflow that refuses an
    update sends the refusal back in one message of at most 4 MB)."""
    return Field(default, min_length=at_least, max_length=MAX_ITEMS, fail_fast=True)


Ref = Annotated[str, Field(min_length=1, max_length=200, pattern=_ONE_LINE)]
"""An id or a reference to something outside CarePath: a session id, a payer's reference,
a user id. One line, no control characters."""

ShortText = Annotated[str, Field(min_length=1, max_length=500, pattern=_ONE_LINE)]
"""A line of text: a trigger, a coping strategy, a support contact, a resource."""

LongText = Annotated[str, Field(min_length=1, max_length=2000, pattern=_MULTI_LINE)]
"""Free text that may run over lines: summaries, notes, reasons, descriptions."""

# The moments any command may name, whatever the episode: wide enough for every date of
# care, narrow enough that deadline arithmetic (a year or two added or taken away) can
# never leave what Python, Temporal's timers and PostgreSQL can represent. How far from
# the decision's own time each kind of date may be is the decider's to judge
# (`domain.horizons`).
EARLIEST_MOMENT = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(2200, 1, 1, tzinfo=UTC)


def aware(moment: datetime) -> datetime:
    """Reject naive datetimes: every moment in CarePath carries its UTC offset."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetime must include a timezone (e.g. 2026-01-05T15:00:00Z)")
    return moment


def plausible(moment: datetime) -> datetime:
    """Reject moments outside the years 1900-2199 (a mistyped year, or a probe)."""
    if not EARLIEST_MOMENT <= moment < LATEST_MOMENT:
        raise ValueError(
            f"datetime must lie between {EARLIEST_MOMENT.year} and {LATEST_MOMENT.year - 1}: "
            "check the year"
        )
    return moment


Moment = Annotated[datetime, AfterValidator(aware), AfterValidator(plausible)]


class Stage(StrEnum):
    """Where an episode is on the care pathway (DESIGN.md section 2)."""

    REFERRED = "referred"
    SCREENING = "screening"
    ASSESSMENT = "assessment"
    TREATMENT_PLANNING = "treatment_planning"
    IN_PROGRAM = "in_program"
    ON_HOLD = "on_hold"
    AFTERCARE = "aftercare"
    REFERRED_OUT = "referred_out"
    DISCHARGED = "discharged"


class ReferralSource(StrEnum):
    SELF = "self"
    INPATIENT_STEP_DOWN = "inpatient_step_down"
    PHP_STEP_DOWN = "php_step_down"
    EMERGENCY_DEPARTMENT = "emergency_department"
    PRIMARY_CARE = "primary_care"
    COURT = "court"
    OTHER = "other"


def _absent(value: object) -> bool:
    return value is None


# A field added to a stored model after histories were recorded: left out of the stored
# form while unset, so every event recorded before it keeps its bytes and its hash.
def later_field(default: None = None) -> Any:
    return Field(default=default, exclude_if=_absent)


# The revisions of the pathway's rules. An episode keeps the revision it was admitted
# under for its whole life; see `DeadlineRules.revision`.
FIRST_RULES = 1
CURRENT_RULES = 2


class DeadlineRules(BaseModel):
    """The program's timing rules, fixed at admission, so `next_deadline(state)` needs no catalog.

    Revision 2 (episodes admitted from the clinical-depth release on) adds exact
    durations, the program's time zone and phase lengths, and the rules that come with
    them: one open task per concern, below-intensity tasks, local weeks, phase reviews,
    check-in windows and session guards. An episode admitted before keeps revision 1
    (`revision` unset) and the rules it was admitted under.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    no_show_grace_minutes: int = 60
    no_contact_days: int = 14
    review_reminder_days: int = 2
    revision: int | None = later_field()
    timezone: str | None = later_field()
    no_show_grace: timedelta | None = later_field()
    no_contact: timedelta | None = later_field()
    review_reminder: timedelta | None = later_field()
    # Each phase's planned duration, by phase id.
    phase_durations: dict[str, timedelta] | None = later_field()

    @property
    def current(self) -> bool:
        """Whether the episode runs under the current revision of the rules."""
        return (self.revision or FIRST_RULES) >= CURRENT_RULES

    @property
    def grace(self) -> timedelta:
        if self.no_show_grace is not None:
            return self.no_show_grace
        return timedelta(minutes=self.no_show_grace_minutes)

    @property
    def no_contact_after(self) -> timedelta:
        if self.no_contact is not None:
            return self.no_contact
        return timedelta(days=self.no_contact_days)

    @property
    def reminder_before_review(self) -> timedelta:
        if self.review_reminder is not None:
            return self.review_reminder
        return timedelta(days=self.review_reminder_days)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")


class LevelOfCare(StrEnum):
    """ASAM levels of care (and the IOP itself, ASAM 2.1).

    The values are stored in events and never change. Their names differ between the
    editions of the ASAM Criteria (2.5 is "partial hospitalization" in the 3rd edition,
    "high-intensity outpatient" in the 4th): `domain.asam` holds the level number and
    name of each value per edition. `RESIDENTIAL` and `WITHDRAWAL_MANAGEMENT` are the
    merged values of earlier releases: still read, and `RESIDENTIAL` still accepted; new
    episodes name the distinct withdrawal management level instead.
    """

    EARLY_INTERVENTION = "early_intervention"  # 3rd ed. 0.5
    OUTPATIENT = "outpatient"  # 3rd ed. 1, 4th ed. 1.5 outpatient therapy
    IOP = "iop"  # 2.1
    PHP = "php"  # 2.5: 3rd ed. partial hospitalization, 4th ed. high-intensity outpatient
    RESIDENTIAL = "residential"  # 3.x, level not named (merged, earlier releases)
    WITHDRAWAL_MANAGEMENT = "withdrawal_management"  # WM, level not named (merged, earlier)
    INPATIENT = "inpatient"  # 4, medically managed intensive inpatient
    # Added with the edition-aware vocabulary (`domain.asam`).
    REMISSION_MONITORING = "remission_monitoring"  # 4th ed. 1.0
    MEDICALLY_MANAGED_OUTPATIENT = "medically_managed_outpatient"  # 4th ed. 1.7
    MEDICALLY_MANAGED_INTENSIVE_OUTPATIENT = "medically_managed_intensive_outpatient"  # 4th 2.7
    LOW_INTENSITY_RESIDENTIAL = "low_intensity_residential"  # 3.1
    POPULATION_SPECIFIC_RESIDENTIAL = "population_specific_residential"  # 3rd ed. 3.3
    HIGH_INTENSITY_RESIDENTIAL = "high_intensity_residential"  # 3.5
    MEDICALLY_MANAGED_RESIDENTIAL = "medically_managed_residential"  # 3.7
    WITHDRAWAL_MANAGEMENT_1 = "withdrawal_management_1"  # 3rd ed. 1-WM
    WITHDRAWAL_MANAGEMENT_2 = "withdrawal_management_2"  # 3rd ed. 2-WM
    WITHDRAWAL_MANAGEMENT_3_2 = "withdrawal_management_3_2"  # 3rd ed. 3.2-WM
    WITHDRAWAL_MANAGEMENT_3_7 = "withdrawal_management_3_7"  # 3rd ed. 3.7-WM
    WITHDRAWAL_MANAGEMENT_4 = "withdrawal_management_4"  # 3rd ed. 4-WM


HIGHER_LEVELS_OF_CARE = frozenset(
    {
        LevelOfCare.PHP,
        LevelOfCare.RESIDENTIAL,
        LevelOfCare.WITHDRAWAL_MANAGEMENT,
        LevelOfCare.INPATIENT,
        LevelOfCare.MEDICALLY_MANAGED_INTENSIVE_OUTPATIENT,
        LevelOfCare.LOW_INTENSITY_RESIDENTIAL,
        LevelOfCare.POPULATION_SPECIFIC_RESIDENTIAL,
        LevelOfCare.HIGH_INTENSITY_RESIDENTIAL,
        LevelOfCare.MEDICALLY_MANAGED_RESIDENTIAL,
        LevelOfCare.WITHDRAWAL_MANAGEMENT_2,
        LevelOfCare.WITHDRAWAL_MANAGEMENT_3_2,
        LevelOfCare.WITHDRAWAL_MANAGEMENT_3_7,
        LevelOfCare.WITHDRAWAL_MANAGEMENT_4,
    }
)


class AsamEdition(StrEnum):
    THIRD = "asam-criteria-3"
    FOURTH = "asam-criteria-4"


# The 4th edition's names of the six dimensions, accepted as input names of the
# `AsamRatings` field that stores the dimension of the same number (see `domain.asam`).
ASAM_FOURTH_EDITION_FIELDS = (
    "intoxication_withdrawal_addiction_medications",
    "biomedical_conditions",
    "psychiatric_cognitive_conditions",
    "substance_use_related_risks",
    "recovery_environment_interactions",
    "person_centered_considerations",
)


def _rating(number: int) -> Any:
    """The field of dimension `number` (1..6): stored under its own name, read under that
    name or under the 4th edition's name of the same dimension number."""
    # The ratings model's own field names, in dimension order (they are stored).
    stored = _ASAM_STORED_FIELDS[number - 1]
    alias = ASAM_FOURTH_EDITION_FIELDS[number - 1]
    return Field(
        ge=0,
        le=4,
        validation_alias=AliasChoices(stored, alias),
        description=f"Dimension {number} of the recorded edition (4th-edition name: {alias}).",
    )


_ASAM_STORED_FIELDS = (
    "acute_intoxication_withdrawal",
    "biomedical",
    "emotional_behavioral_cognitive",
    "readiness_to_change",
    "relapse_continued_use",
    "recovery_environment",
)


class AsamRatings(BaseModel):
    """Risk ratings (0 none .. 4 severe) on the six ASAM dimensions, by dimension number.

    Each field holds the rating of the dimension with that number in the edition the
    assessment records. The field names are the 3rd edition's and are kept because they
    are stored; `domain.asam` names each dimension per edition. The 4th edition's names
    (`intoxication_withdrawal_addiction_medications`, `biomedical_conditions`,
    `psychiatric_cognitive_conditions`, `substance_use_related_risks`,
    `recovery_environment_interactions`, `person_centered_considerations`) are accepted
    as input for dimensions 1 to 6 and stored under the same field as the number's
    3rd-edition name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    acute_intoxication_withdrawal: int = _rating(1)
    biomedical: int = _rating(2)
    emotional_behavioral_cognitive: int = _rating(3)
    readiness_to_change: int = _rating(4)
    relapse_continued_use: int = _rating(5)
    recovery_environment: int = _rating(6)


def _upper(code: str) -> str:
    return code.upper()


# ICD-10-CM: a letter, two characters, then optionally a dot and up to four more.
Icd10Code = Annotated[
    str,
    Field(pattern=r"^[A-Za-z][0-9][0-9A-Za-z](\.[0-9A-Za-z]{1,4})?$", max_length=8),
    AfterValidator(_upper),
]


class ScreeningFindings(BaseModel):
    """The seed's eligibility criteria (all must hold) and exclusions (none may hold)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    moderate_symptoms: bool
    stable_supportive_living_environment: bool
    reliable_transportation: bool
    motivated_for_treatment: bool
    able_to_participate_in_groups: bool
    severe_crisis: bool
    active_intoxication_needing_withdrawal_management: bool
    imminent_danger_to_self_or_others: bool

    def unmet_criteria(self) -> tuple[str, ...]:
        criteria = (
            "moderate_symptoms",
            "stable_supportive_living_environment",
            "reliable_transportation",
            "motivated_for_treatment",
            "able_to_participate_in_groups",
        )
        return tuple(name for name in criteria if not getattr(self, name))

    def exclusions_present(self) -> tuple[str, ...]:
        exclusions = (
            "severe_crisis",
            "active_intoxication_needing_withdrawal_management",
            "imminent_danger_to_self_or_others",
        )
        return tuple(name for name in exclusions if getattr(self, name))

    @property
    def eligible(self) -> bool:
        return not self.unmet_criteria() and not self.exclusions_present()


class GoalArea(StrEnum):
    COPING_STRATEGIES = "coping_strategies"
    EMOTIONAL_REGULATION = "emotional_regulation"
    RELATIONSHIPS = "relationships"
    DAILY_RESPONSIBILITIES = "daily_responsibilities"
    AFTERCARE_READINESS = "aftercare_readiness"


class Modality(StrEnum):
    CBT = "cbt"
    DBT = "dbt"
    MOTIVATIONAL_INTERVIEWING = "motivational_interviewing"
    TWELVE_STEP_FACILITATION = "twelve_step_facilitation"
    FAMILY_THERAPY = "family_therapy"
    PSYCHOEDUCATION = "psychoeducation"
    MEDICATION_MANAGEMENT = "medication_management"
    MINDFULNESS = "mindfulness"
    ART_THERAPY = "art_therapy"
    YOGA = "yoga"
    TRAUMA_INFORMED = "trauma_informed"


class Discipline(StrEnum):
    PSYCHIATRIST = "psychiatrist"
    PSYCHOLOGIST = "psychologist"
    THERAPIST = "therapist"
    SOCIAL_WORKER = "social_worker"
    NURSE = "nurse"
    CASE_MANAGER = "case_manager"


class SessionKind(StrEnum):
    INDIVIDUAL = "individual"
    GROUP_PROCESS = "group_process"
    GROUP_SKILLS = "group_skills"
    GROUP_RELAPSE_PREVENTION = "group_relapse_prevention"
    FAMILY = "family"
    PSYCHOEDUCATION = "psychoeducation"
    MEDICATION_MANAGEMENT = "medication_management"


class AttendanceStatus(StrEnum):
    ATTENDED = "attended"
    PARTIAL = "partial"
    EXCUSED = "excused"
    NO_SHOW = "no_show"


BILLABLE_ATTENDANCE = frozenset({AttendanceStatus.ATTENDED, AttendanceStatus.PARTIAL})


class Problem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    problem_id: Ref
    description: LongText


class Goal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    area: GoalArea
    description: LongText
    problem_ids: tuple[Ref, ...] = items(default=())


class ScheduleBlock(BaseModel):
    """One program day in the weekly schedule: weekday 0 (Monday) .. 6, hours of treatment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weekday: int = Field(ge=0, le=6)
    hours: float = Field(gt=0, le=12)
    kinds: tuple[SessionKind, ...] = items(at_least=1, default=(SessionKind.GROUP_PROCESS,))


class CareTeamMember(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: Ref
    discipline: Discipline


class TreatmentPlan(BaseModel):
    """Problems, goals, modalities, weekly schedule and the care team with its primary clinician."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    problems: tuple[Problem, ...] = items(at_least=1)
    goals: tuple[Goal, ...] = items(at_least=1)
    modalities: tuple[Modality, ...] = items(at_least=1)
    weekly_schedule: tuple[ScheduleBlock, ...] = items(at_least=1)
    care_team: tuple[CareTeamMember, ...] = items(at_least=1)
    primary_clinician: Ref

    @property
    def weekly_hours(self) -> float:
        return sum(block.hours for block in self.weekly_schedule)


class RelapsePreventionPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    triggers: tuple[ShortText, ...] = items(at_least=1)
    coping_strategies: tuple[ShortText, ...] = items(at_least=1)
    support_contacts: tuple[ShortText, ...] = items(default=())


class AftercarePlan(BaseModel):
    """Continued therapy, peer support (e.g. AA/NA, SMART Recovery) and community resources."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    continued_therapy: ShortText
    peer_support: tuple[ShortText, ...] = items(default=())
    community_resources: tuple[ShortText, ...] = items(default=())


class DischargeReason(StrEnum):
    COMPLETED = "completed"
    TRANSFERRED = "transferred"  # transferred or stepped up to another level of care
    AGAINST_ADVICE = "against_advice"
    ADMINISTRATIVE = "administrative"  # e.g. non-attendance
    OTHER = "other"


class HoldKind(StrEnum):
    HOSPITALIZATION = "hospitalization"
    STEP_UP_WITH_RETURN = "step_up_with_return"
    OTHER = "other"


class ReviewOutcome(StrEnum):
    CONTINUE = "continue"
    REVISE_PLAN = "revise_plan"
    ADVANCE_PHASE = "advance_phase"
    STEP_DOWN = "step_down"
    STEP_UP = "step_up"
    DISCHARGE = "discharge"


class RecipientKind(StrEnum):
    FAMILY = "family"
    EXTERNAL_PROVIDER = "external_provider"
    PAYER = "payer"
    LEGAL = "legal"
    OTHER = "other"


class ConsentScope(StrEnum):
    """What may be disclosed under a 42 CFR Part 2 consent."""

    ATTENDANCE = "attendance"
    TREATMENT_PROGRESS = "treatment_progress"
    DIAGNOSIS = "diagnosis"
    DISCHARGE_SUMMARY = "discharge_summary"
    APPOINTMENTS = "appointments"


class StaffRecipient(StrEnum):
    """Internal recipients of escalation notices (no consent needed within the care team)."""

    PRIMARY_CLINICIAN = "primary_clinician"
    CARE_COORDINATOR = "care_coordinator"
    SUPERVISOR = "supervisor"
    CLINICAL_DIRECTOR = "clinical_director"


class TaskKind(StrEnum):
    OUTREACH = "outreach"
    CASE_REVIEW = "case_review"
    DIRECTOR_REVIEW = "director_review"
    ADMINISTRATIVE_DISCHARGE_REVIEW = "administrative_discharge_review"
    AFTERCARE_OUTREACH = "aftercare_outreach"
    REASSESSMENT = "reassessment"
    # A week below the program's minimum hours: review the plan's intensity with the client.
    INTENSITY_REVIEW = "intensity_review"


class EscalationTrigger(StrEnum):
    CONSECUTIVE_NO_SHOWS = "consecutive_no_shows"
    NO_SHOWS_IN_WINDOW = "no_shows_in_window"
    TASK_OVERDUE = "task_overdue"
    NO_CONTACT = "no_contact"
    CHECK_IN_MISSED = "check_in_missed"
    RELAPSE_REPORTED = "relapse_reported"
    BELOW_INTENSITY = "below_intensity"


class AuthorizationFlag(StrEnum):
    NO_AUTHORIZATION_COVERS_DATE = "no_authorization_covers_date"
    UNITS_EXHAUSTED = "units_exhausted"
