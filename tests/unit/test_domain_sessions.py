"""Sessions: schedule, reschedule, cancel, attendance and corrections."""

from __future__ import annotations

import pytest
from domain_scenario import DAY, HOUR, T0, Episode, types

from domain import commands as c
from domain.errors import (
    AttendanceAlreadyRecorded,
    AttendanceNotRecorded,
    DuplicateId,
    InvalidCommand,
    ReasonRequired,
    SessionClosed,
    SessionNotStarted,
    UnknownReference,
    WrongStage,
)
from domain.vocabulary import AttendanceStatus, SessionKind

S1 = T0 + DAY  # Tuesday 09:00


def with_session() -> Episode:
    ep = Episode().in_program().session("s1", S1)
    ep.now = S1 + 3 * HOUR
    return ep


class TestScheduling:
    def test_scheduling_adds_the_session(self) -> None:
        ep = Episode().admitted()
        events = ep.run(
            ep.make(
                c.ScheduleSession,
                session_id="s1",
                kind=SessionKind.FAMILY,
                starts_at=S1,
                hours=1.5,
            )
        )
        assert types(events) == ["session_scheduled"]
        session = ep.s.session("s1")
        assert session is not None
        assert session.ends_at == S1 + 1.5 * HOUR

    def test_session_id_cannot_be_reused(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        with pytest.raises(DuplicateId, match="reschedule the existing session"):
            ep.session("s1", S1 + DAY)

    def test_scheduling_before_admission_is_refused(self) -> None:
        ep = Episode().assessed()
        with pytest.raises(WrongStage, match="schedule a session"):
            ep.session("s1", S1)

    def test_rescheduling_moves_the_session_and_keeps_its_length(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        events = ep.run(ep.make(c.RescheduleSession, session_id="s1", starts_at=S1 + DAY))
        assert types(events) == ["session_rescheduled"]
        assert events[0].hours == 3
        assert ep.s.session("s1").starts_at == S1 + DAY  # type: ignore[union-attr]

    def test_rescheduling_an_unknown_session_asks_to_schedule_it(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(UnknownReference, match="schedule it first"):
            ep.decide(ep.make(c.RescheduleSession, session_id="nope", starts_at=S1))

    def test_cancelled_session_cannot_be_cancelled_again(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        assert types(ep.run(ep.make(c.CancelSession, session_id="s1"))) == ["session_cancelled"]
        with pytest.raises(SessionClosed, match="cancelled"):
            ep.decide(ep.make(c.CancelSession, session_id="s1"))

    def test_session_with_attendance_cannot_be_rescheduled(self) -> None:
        ep = with_session()
        ep.attendance("s1", "attended")
        with pytest.raises(SessionClosed, match="already has attendance"):
            ep.decide(ep.make(c.RescheduleSession, session_id="s1", starts_at=S1 + DAY))

    def test_naive_datetimes_are_rejected(self) -> None:
        with pytest.raises(ValueError, match="must include a timezone"):
            c.ScheduleSession(
                command_id="x",
                actor=Episode().make(c.AdvancePhase).actor,
                session_id="s1",
                kind=SessionKind.INDIVIDUAL,
                starts_at=S1.replace(tzinfo=None),
                hours=1,
            )


class TestAttendance:
    def test_attended_session_counts_its_full_hours_and_is_contact(self) -> None:
        ep = with_session()
        events = ep.attendance("s1", "attended")
        assert types(events) == ["attendance_recorded"]
        assert events[0].hours == 3
        assert ep.s.last_contact_at == S1

    def test_partial_attendance_records_the_hours(self) -> None:
        ep = with_session()
        events = ep.attendance("s1", "partial", hours=1.5)
        assert events[0].hours == 1.5

    def test_partial_attendance_without_hours_asks_for_them(self) -> None:
        ep = with_session()
        with pytest.raises(InvalidCommand, match="needs the hours attended"):
            ep.attendance("s1", "partial")

    def test_hours_for_full_attendance_are_refused(self) -> None:
        ep = with_session()
        with pytest.raises(InvalidCommand, match="only for partial"):
            ep.attendance("s1", "attended", hours=2)

    def test_excused_absence_records_zero_hours_and_opens_nothing(self) -> None:
        ep = with_session()
        events = ep.attendance("s1", "excused")
        assert types(events) == ["attendance_recorded"]
        assert events[0].hours == 0

    def test_attendance_before_the_session_starts_is_refused(self) -> None:
        ep = Episode().in_program().session("s1", S1)
        with pytest.raises(SessionNotStarted, match="once it has started"):
            ep.attendance("s1", "attended")

    def test_attendance_twice_points_to_corrections(self) -> None:
        ep = with_session()
        ep.attendance("s1", "attended")
        with pytest.raises(AttendanceAlreadyRecorded, match="correct it with a reason"):
            ep.attendance("s1", "no_show")

    def test_attendance_for_a_cancelled_session_is_refused(self) -> None:
        ep = with_session()
        ep.run(ep.make(c.CancelSession, session_id="s1"))
        with pytest.raises(SessionClosed, match="was cancelled"):
            ep.attendance("s1", "attended")


class TestCorrections:
    def test_correction_replaces_the_record_with_a_new_event(self) -> None:
        ep = with_session()
        ep.attendance("s1", "attended")
        events = ep.run(
            ep.make(
                c.CorrectAttendance,
                session_id="s1",
                status=AttendanceStatus.EXCUSED,
                reason="entered for the wrong client",
            )
        )
        assert types(events) == ["attendance_corrected"]
        assert events[0].previous_status is AttendanceStatus.ATTENDED
        assert events[0].previous_hours == 3
        assert ep.s.session("s1").status is AttendanceStatus.EXCUSED  # type: ignore[union-attr]
        assert types(ep.history).count("attendance_recorded") == 1

    def test_correction_without_reason_is_refused(self) -> None:
        ep = with_session()
        ep.attendance("s1", "attended")
        with pytest.raises(ReasonRequired, match="say why"):
            ep.decide(
                ep.make(c.CorrectAttendance, session_id="s1", status=AttendanceStatus.EXCUSED)
            )

    def test_correction_of_an_unrecorded_session_asks_to_record_it(self) -> None:
        ep = with_session()
        with pytest.raises(AttendanceNotRecorded, match="record it instead"):
            ep.decide(
                ep.make(
                    c.CorrectAttendance,
                    session_id="s1",
                    status=AttendanceStatus.EXCUSED,
                    reason="x",
                )
            )

    def test_correction_to_the_same_record_is_refused(self) -> None:
        ep = with_session()
        ep.attendance("s1", "attended")
        with pytest.raises(InvalidCommand, match="nothing to correct"):
            ep.decide(
                ep.make(
                    c.CorrectAttendance,
                    session_id="s1",
                    status=AttendanceStatus.ATTENDED,
                    reason="x",
                )
            )

    def test_correcting_attendance_into_a_no_show_escalates(self) -> None:
        ep = with_session()
        ep.attendance("s1", "attended")
        events = ep.run(
            ep.make(
                c.CorrectAttendance,
                session_id="s1",
                status=AttendanceStatus.NO_SHOW,
                reason="signed in by mistake",
            )
        )
        assert types(events) == ["attendance_corrected", "escalation_raised"]
