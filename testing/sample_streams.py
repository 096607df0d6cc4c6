"""Synthetic event streams for tests and benchmarks: whole episodes, produced by the decider.

Every event comes from running sample commands through `decide` with a moving clock, and
time-driven events come from `Tick`s at each `next_deadline`, exactly as the workflow does.
So a stream is always one the engine could have written. No real client data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain import commands as c
from domain.deadlines import next_deadline
from domain.decider import DecisionContext, decide, fold
from domain.events import Event
from domain.programs import ProgramCatalog
from domain.state import EpisodeState
from domain.vocabulary import (
    AttendanceStatus,
    ConsentScope,
    DischargeReason,
    RecipientKind,
)
from programs import load_catalog
from testing import samples

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # a Monday

# Attendance of successive sessions; two no-shows in a row escalate twice.
PATTERN = (
    AttendanceStatus.ATTENDED,
    AttendanceStatus.PARTIAL,
    AttendanceStatus.ATTENDED,
    AttendanceStatus.NO_SHOW,
    AttendanceStatus.NO_SHOW,
    AttendanceStatus.EXCUSED,
    AttendanceStatus.ATTENDED,
)


class StreamBuilder:
    """Runs commands for one episode through the decider, ticking through deadlines."""

    def __init__(
        self, episode_id: str, start: datetime = T0, catalog: ProgramCatalog | None = None
    ) -> None:
        self.episode_id = episode_id
        self.now = start
        self.catalog = catalog or load_catalog()
        self.state: EpisodeState | None = None
        self.events: list[Event] = []
        self.ids = samples.CommandIds(f"{episode_id}-cmd")

    def run(self, command: c.Command) -> tuple[Event, ...]:
        ctx = DecisionContext(episode_id=self.episode_id, now=self.now, programs=self.catalog)
        events = decide(self.state, command, ctx)
        self.state = fold(events, self.state)
        self.events.extend(events)
        return events

    def advance_to(self, moment: datetime) -> None:
        """Move the clock, applying every deadline that falls due on the way."""
        while True:
            due = next_deadline(self.state)
            if due is None or due > moment:
                break
            self.now = max(self.now, due)
            self.run(c.Tick(command_id=f"tick-{self.now.isoformat()}", now=self.now))
        self.now = max(self.now, moment)


def episode_events(
    episode_id: str,
    *,
    sessions: int = 12,
    start: datetime = T0,
    clinician: str = samples.CLINICIAN.user_id,
    discharge: bool = False,
    catalog: ProgramCatalog | None = None,
) -> list[Event]:
    """One adult IOP episode: admission, a family consent and notice, `sessions` sessions
    with mixed attendance (escalations included), a resolved task, optionally discharge.
    `catalog` replaces the built-in programs (e.g. the adult program in another zone)."""
    b = StreamBuilder(episode_id, start, catalog)
    b.run(samples.referral(b.ids, client_ref=f"MRN-{episode_id}"))
    for command in samples.admission(b.ids, primary=clinician):
        b.advance_to(b.now + timedelta(hours=1))
        b.run(command)
    b.run(
        c.RecordConsent(
            command_id=b.ids(),
            actor=samples.CLINICIAN,
            consent_id="consent-1",
            recipient_ref="family-contact-1",
            recipient_kind=RecipientKind.FAMILY,
            scopes=(ConsentScope.ATTENDANCE, ConsentScope.APPOINTMENTS),
            expires_at=start + timedelta(days=365),
        )
    )
    b.run(
        c.NotifyParty(
            command_id=b.ids(),
            actor=samples.CLINICIAN,
            recipient_ref="family-contact-1",
            recipient_kind=RecipientKind.FAMILY,
            scope=ConsentScope.APPOINTMENTS,
        )
    )
    first_day = start.replace(hour=9) + timedelta(days=1)
    for i in range(sessions):
        starts = first_day + timedelta(days=2 * i)
        b.advance_to(starts - timedelta(hours=2))
        b.run(samples.session(b.ids, f"s{i + 1}", starts, hours=3))
        b.advance_to(starts + timedelta(hours=3, minutes=5))
        status = PATTERN[i % len(PATTERN)]
        hours = 2.0 if status is AttendanceStatus.PARTIAL else None
        b.run(
            c.RecordAttendance(
                command_id=b.ids(),
                actor=samples.CLINICIAN,
                session_id=f"s{i + 1}",
                status=status,
                hours=hours,
            )
        )
        if i == 5:
            _resolve_first_open_task(b)
    if discharge:
        b.advance_to(b.now + timedelta(hours=1))
        b.run(
            c.Discharge(
                command_id=b.ids(),
                actor=samples.SUPERVISOR,
                discharge_reason=DischargeReason.COMPLETED,
                summary="completed the program",
            )
        )
    return b.events


def _resolve_first_open_task(b: StreamBuilder) -> None:
    assert b.state is not None
    task = next((t for t in b.state.tasks if t.is_open and t.level == 1), None)
    if task is not None:
        b.run(
            c.ResolveTask(
                command_id=b.ids(),
                actor=samples.CLINICIAN,
                task_id=task.task_id,
                outcome="client reached by phone",
            )
        )
