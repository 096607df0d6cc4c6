"""What the quality measures read from one episode's stream: its moments of care.

`timeline(stream, as_of)` walks the events once, in order, and keeps what the measures
(`domain.measures`) count: referral, admission, the exit from treatment, the sessions and
their final attendance, aftercare check-ins, escalation tasks, judged weeks. Events that
occurred at or after `as_of` are left out, so a measure computed for a past range gives
the same answer whenever it is asked. Pure: the clock is never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

from domain import events as ev
from domain.vocabulary import BILLABLE_ATTENDANCE, AttendanceStatus, DischargeReason


class ExitKind(StrEnum):
    """How an admitted client left IOP treatment."""

    STEP_DOWN = "step_down"  # to aftercare at a lower level of care
    STEP_UP = "step_up"  # to a higher level of care, without return
    DISCHARGE = "discharge"  # discharged from treatment (or from a hold)


@dataclass
class SessionRecord:
    """A session as it stands: its (last) start, cancelled or not, its final attendance."""

    starts_at: datetime
    cancelled: bool = False
    status: AttendanceStatus | None = None

    @property
    def attended(self) -> bool:
        return not self.cancelled and self.status in BILLABLE_ATTENDANCE


@dataclass
class Timeline:
    """One episode's moments of care, as of a moment. `zone` is the program's time zone
    from the admission's rules (UTC for an episode never admitted, or admitted under
    rules that name none): the measures count days in it."""

    episode_id: str
    program_id: str
    client_ref: str
    referred_at: datetime
    zone: tzinfo = UTC
    admitted_at: datetime | None = None
    referred_out: bool = False
    exit_at: datetime | None = None
    exit_kind: ExitKind | None = None
    discharge_reason: DischargeReason | None = None
    closed_at: datetime | None = None
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    check_ins: list[datetime] = field(default_factory=list)
    # (raised at, level) of each escalation task, and each task's raising moment by id.
    escalations: list[tuple[datetime, int]] = field(default_factory=list)
    task_raised: dict[str, datetime] = field(default_factory=dict)
    # (raised at, resolved at) of each task staff resolved.
    resolutions: list[tuple[datetime, datetime]] = field(default_factory=list)
    # (week start, below the program's minimum) of each judged week.
    weeks: list[tuple[datetime, bool]] = field(default_factory=list)
    _stepping_up_out: bool = False

    def day(self, moment: datetime) -> date:
        """The moment's calendar day in the program's time zone."""
        return moment.astimezone(self.zone).date()

    def attended_starts(self) -> list[datetime]:
        """The start of every attended (or partly attended) session, earliest first."""
        return sorted(s.starts_at for s in self.sessions.values() if s.attended)


def episode_zone(stream: Sequence[ev.Event]) -> tzinfo:
    """The program's time zone recorded at admission; UTC when none is recorded."""
    for event in stream:
        if isinstance(event, ev.ClientAdmitted) and event.rules.timezone:
            return ZoneInfo(event.rules.timezone)
    return UTC


def timeline(stream: Sequence[ev.Event], as_of: datetime) -> Timeline | None:
    """The episode's timeline from the events before `as_of`; None when it was not yet
    referred then. The first event must be the referral, as in every stored stream."""
    if not stream or not isinstance(stream[0], ev.ClientReferred):
        raise ValueError("a stream starts with the client's referral (client_referred)")
    first = stream[0]
    if first.occurred_at >= as_of:
        return None
    line = Timeline(
        episode_id=first.episode_id,
        program_id=first.program_id,
        client_ref=first.client_ref,
        referred_at=first.occurred_at,
        zone=episode_zone(stream),
    )
    for event in stream[1:]:
        if event.occurred_at >= as_of:
            break
        _apply(line, event)
    return line


def _apply(line: Timeline, event: ev.Event) -> None:
    match event:
        case ev.ClientAdmitted():
            line.admitted_at = event.occurred_at
        case ev.ClientReferredOut():
            line.referred_out = True
            line.closed_at = event.occurred_at
        case ev.SessionScheduled() | ev.SessionRescheduled():
            record = line.sessions.setdefault(event.session_id, SessionRecord(event.starts_at))
            record.starts_at = event.starts_at
        case ev.SessionCancelled():
            line.sessions[event.session_id].cancelled = True
        case ev.AttendanceRecorded() | ev.AttendanceCorrected():
            line.sessions[event.session_id].status = event.status
        case ev.ClientSteppedDown():
            _exit(line, event.occurred_at, ExitKind.STEP_DOWN)
        case ev.ClientSteppedUp() if not event.intent_to_return:
            line._stepping_up_out = True
        case ev.EpisodeDischarged():
            line.closed_at = event.occurred_at
            line.discharge_reason = event.discharge_reason
            if line.admitted_at is not None:
                kind = ExitKind.STEP_UP if line._stepping_up_out else ExitKind.DISCHARGE
                _exit(line, event.occurred_at, kind)
        case ev.CheckInCompleted():
            line.check_ins.append(event.occurred_at)
        case ev.EscalationRaised():
            line.escalations.append((event.occurred_at, event.level))
            line.task_raised[event.task_id] = event.occurred_at
        case ev.TaskResolved():
            line.resolutions.append((line.task_raised[event.task_id], event.occurred_at))
        case ev.WeeklyAttendanceChecked():
            line.weeks.append((event.week_start, event.below_minimum))
        case _:
            pass


def _exit(line: Timeline, moment: datetime, kind: ExitKind) -> None:
    """The first exit from treatment is the one measured (a discharge from aftercare
    closes an episode that already left treatment by stepping down)."""
    if line.exit_at is None:
        line.exit_at, line.exit_kind = moment, kind
