"""Request and response bodies of the HTTP API.

The HTTP contract is the API's own: a response never reuses a workflow message or an
audit report class, so a change to one of those cannot reach clients unnoticed. Where a
body has the shape of such a model, it is copied from it field by field (`of`) at the
route; a field added there appears here only when it is added here too. Bodies may hold
the domain's models (events, the episode state), which are the record itself.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, computed_field

from domain import asam
from domain.commands import ReferralSource
from domain.events import Event
from domain.local_text import local_iso
from domain.state import EpisodeState
from domain.vocabulary import AsamEdition, LevelOfCare, LongText, Ref
from domain.weeks import WeekReport, week_reports


class _Copied(BaseModel):
    """A response body that can be read off another model with the same field names."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, source: object) -> Self:
        """This body from `source`'s attributes of the same names (nested bodies too)."""
        return cls.model_validate(source, from_attributes=True)


class _Closed(_Copied):
    """A body whose schema admits no other fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ReferralRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "client_ref": "MRN-004211",
                    "program_id": "adult-iop",
                    "referral_source": "primary_care",
                }
            ]
        },
    )

    # The referral command's own kinds of text (domain.vocabulary), so the body refuses
    # what the command would.
    client_ref: Ref = Field(
        max_length=100,
        description="Opaque reference to the client in the provider's records; never a name.",
    )
    program_id: Ref = Field(max_length=100)
    referral_source: ReferralSource
    reason: LongText | None = None


class AsamDimensionResponse(_Closed):
    """One rated ASAM dimension, named as the assessment's edition names it."""

    number: int
    name: str
    rating: int
    stored_as: str = Field(description="The `asam_ratings` field that holds this rating.")


class LevelOfCareResponse(_Closed):
    """A level of care of the episode, with its number and name in the shown edition."""

    field: str = Field(description="The state field that holds the level.")
    value: LevelOfCare
    level: str
    name: str
    display: str


class AsamViewResponse(_Closed):
    """The episode's ASAM ratings and levels of care in words: the assessment's edition,
    or the 4th edition before an assessment names one."""

    edition: AsamEdition
    edition_name: str
    dimensions: list[AsamDimensionResponse]
    levels_of_care: list[LevelOfCareResponse]

    @classmethod
    def of_state(cls, state: EpisodeState) -> AsamViewResponse:
        edition = asam.edition_of(state)
        assessment = state.assessment
        dimensions = (
            [
                AsamDimensionResponse(
                    number=r.dimension.number,
                    name=r.dimension.name,
                    rating=r.rating,
                    stored_as=r.dimension.field,
                )
                for r in asam.rated(edition, assessment.asam_ratings)
            ]
            if assessment is not None
            else []
        )
        held = (
            ("recommended_level", assessment.recommended_level if assessment else None),
            ("referred_out_to", state.referred_out_to),
            ("stepped_up_to", state.stepped_up_to),
        )
        levels = []
        for name, level in held:
            if level is not None:
                shown = asam.level_name(level, edition)
                levels.append(
                    LevelOfCareResponse(
                        field=name,
                        value=level,
                        level=shown.code,
                        name=shown.name,
                        display=shown.display,
                    )
                )
        return cls(
            edition=edition,
            edition_name=asam.EDITION_NAMES[edition],
            dimensions=dimensions,
            levels_of_care=levels,
        )


def local_time(moment: datetime, timezone: str) -> str:
    """`moment` as the clinic's wall-clock time, with its offset (ISO 8601)."""
    return local_iso(moment, ZoneInfo(timezone))


class WeekResponse(_Closed):
    """One week of attendance against the program's minimum, in the clinic's local days.

    `start`/`end` are UTC moments (the week is `[start, end)`); `local_start`/`local_end`
    the same moments on the clinic's clock; `first_day`..`last_day` its local dates.
    `attended_hours` is the attendance as now recorded; `minimum_hours` and
    `below_minimum` are the weekly check's verdict, absent until the week is judged.
    """

    start: datetime
    end: datetime
    local_start: str
    local_end: str
    timezone: str
    first_day: date
    last_day: date
    attended_hours: float
    minimum_hours: float | None
    below_minimum: bool | None
    status: Literal["judged", "open", "cut_short"]

    @classmethod
    def of_report(cls, report: WeekReport) -> WeekResponse:
        return cls.model_validate(report, from_attributes=True)


class EpisodeResponse(_Copied):
    episode_id: str
    workflow_id: str
    state: EpisodeState | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def asam(self) -> AsamViewResponse | None:
        """The state's ASAM ratings and levels of care named in the assessment's edition."""
        return None if self.state is None else AsamViewResponse.of_state(self.state)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def weeks(self) -> list[WeekResponse]:
        """Hours attended against the program's minimum, week by week (local days)."""
        if self.state is None:
            return []
        return [WeekResponse.of_report(report) for report in week_reports(self.state)]


class EpisodeSummaryResponse(_Copied):
    """One episode as the list shows it, from Temporal's visibility records."""

    episode_id: str
    workflow_id: str
    status: str
    stage: str | None
    program_id: str | None
    primary_clinician: str | None
    escalation_level: int
    next_deadline: datetime | None
    started_at: datetime | None


class EpisodeListResponse(BaseModel):
    episodes: list[EpisodeSummaryResponse]
    # The next page's URL (also the `Link` header); None on the last page.
    next: str | None = None


class CommandResponse(_Closed):
    """What a command recorded: its events, the episode's version and stage after it."""

    episode_id: str
    events: tuple[Event, ...]
    version: int
    stage: str
    state: EpisodeState | None = None
    position: int | None = Field(
        default=None,
        description="Where the command's last event stands in the store's global order: "
        "pass it as `min_position` to a worklist to see this change there. Null when "
        "nothing new was stored (a repeated or idempotent command).",
    )


class PendingDeadlineResponse(_Closed):
    kind: str
    due_at: datetime
    ref: str | None = None
    # `due_at` on the clinic's clock (the episode's time zone), once the route adds it.
    due_local: str | None = None


class DeadlinesResponse(_Closed):
    """Everything pending for an episode, and the earliest moment among them.

    Moments are UTC; `timezone` is the clinic's and the `*_local` fields show the same
    moments on its clock.
    """

    episode_id: str
    next_deadline: datetime | None
    pending: tuple[PendingDeadlineResponse, ...]
    timezone: str | None = None
    next_deadline_local: str | None = None

    def in_zone(self, timezone: str) -> DeadlinesResponse:
        """This answer with every due time also shown on the clock of `timezone`."""
        return self.model_copy(
            update={
                "timezone": timezone,
                "next_deadline_local": (
                    local_time(self.next_deadline, timezone) if self.next_deadline else None
                ),
                "pending": tuple(
                    item.model_copy(update={"due_local": local_time(item.due_at, timezone)})
                    for item in self.pending
                ),
            }
        )


class AttendanceWeekResponse(_Closed):
    """One row of the attended-hours read model: a week's attendance as now recorded
    (`hours` and the count of each outcome) beside the weekly check's verdict
    (`checked_hours`, `minimum_hours`, `below_minimum`; absent until judged)."""

    week_start: datetime
    week_end: datetime
    local_start: str
    local_end: str
    first_day: date
    last_day: date
    hours: float
    attended: int
    partial: int
    excused: int
    no_shows: int
    checked_hours: float | None
    minimum_hours: float | None
    below_minimum: bool | None


class AttendanceResponse(_Closed):
    """An episode's weeks of attendance, oldest first, the open one included."""

    episode_id: str
    program_id: str
    timezone: str
    weeks: tuple[AttendanceWeekResponse, ...]


class TimelineEntryResponse(_Closed):
    seq: int
    type: str
    occurred_at: datetime
    actor_id: str
    actor_role: str


class TimelineResponse(_Closed):
    """The episode's timeline: every stored event, in order, without payloads."""

    episode_id: str
    entries: tuple[TimelineEntryResponse, ...]


class StoredEventResponse(BaseModel):
    seq: int
    type: str
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime
    actor_id: str
    actor_role: str
    command_id: str
    hash: str
    payload: dict[str, Any]


class EventsResponse(BaseModel):
    episode_id: str
    events: list[StoredEventResponse]


# --- audit ------------------------------------------------------------------------------


class StreamReportResponse(_Closed):
    """The outcome of verifying one episode's stream, as auditors read it."""

    episode_id: str
    ok: bool
    events_checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None
    # The checkpoint the stream was compared with (None: the chain only).
    checkpoint_id: int | None = None


class VerifyReportResponse(_Closed):
    """The outcome of verifying every stream; `ok` only if each one verified and the
    checkpoints form a whole sequence."""

    ok: bool
    streams: tuple[StreamReportResponse, ...]
    # What is wrong with the sequence of checkpoints, each naming a checkpoint.
    checkpoint_problems: tuple[str, ...] = ()


class AuditTimelineItemResponse(_Closed):
    """One stored event as an auditor reads it: when, what, who, and its place in the chain."""

    seq: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    actor_id: str
    actor_role: str
    command_id: str
    hash: str


class FieldDifferenceResponse(_Closed):
    """One field whose value differs between the stored record and the live workflow."""

    path: str
    stored: Any
    live: Any


class LiveComparisonResponse(_Closed):
    """The record folded from the store against the running workflow's state."""

    compared: bool
    matches: bool
    differences: tuple[FieldDifferenceResponse, ...] = ()
    # Why no comparison was made (the workflow is gone, Temporal is down).
    unavailable: str | None = None


class AuditReplayResponse(_Closed):
    """An episode's record as of a moment: its timeline, its state then, and how far to trust it."""

    episode_id: str
    as_of: datetime | None
    verification: StreamReportResponse
    events_total: int
    events_included: int
    timeline: tuple[AuditTimelineItemResponse, ...]
    state: EpisodeState | None
    live: LiveComparisonResponse | None = None
