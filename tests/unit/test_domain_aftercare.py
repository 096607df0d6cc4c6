"""Aftercare: check-ins at the program's offsets, missed check-ins, relapse, readmission."""

from __future__ import annotations

import pytest
from domain_scenario import AFTERCARE_PLAN, DAY, HOUR, INTAKE, RP_PLAN, T0, Episode, types

from domain import commands as c
from domain import next_deadline
from domain.errors import (
    CheckInAlreadyCompleted,
    InvalidCommand,
    RelapseNotReported,
    UnknownReference,
    WrongStage,
)
from domain.state import Stage
from domain.vocabulary import FIRST_RULES, EscalationTrigger, TaskKind


class TestCheckIns:
    def test_completed_check_in_is_recorded(self) -> None:
        ep = Episode().in_aftercare().advance(7 * DAY)
        events = ep.run(ep.make(c.RecordCheckIn, actor=INTAKE, check_in=1))
        assert types(events) == ["check_in_completed"]
        assert next_deadline(ep.s) == T0 + 37 * DAY  # check-in 2 closes 30 + 7 days out

    def test_missed_check_in_opens_outreach_when_its_window_closes(self) -> None:
        ep = Episode().in_aftercare()
        events = ep.tick(T0 + 14 * DAY)
        assert types(events) == ["check_in_missed", "escalation_raised"]
        assert events[1].task_kind is TaskKind.AFTERCARE_OUTREACH
        assert events[1].trigger is EscalationTrigger.CHECK_IN_MISSED

    def test_given_the_first_rules_when_a_check_in_is_late_then_it_is_still_recorded(
        self,
    ) -> None:
        ep = Episode(rules_revision=FIRST_RULES).in_aftercare()
        ep.tick(T0 + 14 * DAY)
        ep.advance(15 * DAY)
        assert types(ep.run(ep.make(c.RecordCheckIn, check_in=1))) == ["check_in_completed"]

    def test_completed_check_in_cannot_be_recorded_twice(self) -> None:
        ep = Episode().in_aftercare()
        ep.run(ep.make(c.RecordCheckIn, check_in=1))
        with pytest.raises(CheckInAlreadyCompleted, match="record the next one"):
            ep.decide(ep.make(c.RecordCheckIn, check_in=1))

    def test_unknown_check_in_number_names_the_range(self) -> None:
        ep = Episode().in_aftercare()
        with pytest.raises(UnknownReference, match="from 1 to 5"):
            ep.decide(ep.make(c.RecordCheckIn, check_in=6))

    def test_check_in_before_aftercare_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(WrongStage, match="aftercare"):
            ep.decide(ep.make(c.RecordCheckIn, check_in=1))

    def test_absence_clocks_stop_in_aftercare(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        ep.run(ep.make(c.RecordRelapsePreventionPlan, plan=RP_PLAN))
        ep.run(ep.make(c.RecordAftercarePlan, plan=AFTERCARE_PLAN))
        ep.now = T0 + DAY + 3 * HOUR
        ep.attendance("s1", "attended")
        ep.run(ep.make(c.StepDown))
        assert "weekly_attendance_checked" not in types(ep.tick(T0 + 8 * DAY))


class TestRelapseAndReadmission:
    def test_reported_relapse_opens_a_reassessment_task(self) -> None:
        ep = Episode().in_aftercare()
        events = ep.run(ep.make(c.ReportRelapse, actor=INTAKE))
        assert types(events) == ["relapse_reported", "escalation_raised"]
        assert events[1].task_kind is TaskKind.REASSESSMENT
        assert events[1].due_at == T0 + 72 * HOUR

    def test_readmission_links_the_new_episode_and_closes_this_one(self) -> None:
        ep = Episode().in_aftercare().reassessed_after_relapse()
        events = ep.run(
            ep.make(c.ReadmitClient, new_episode_id="ep-2", summary="relapse; readmitted to IOP")
        )
        assert types(events) == ["client_readmitted", "episode_discharged"]
        assert ep.s.readmitted_as == "ep-2"
        assert ep.s.stage is Stage.DISCHARGED

    def test_readmission_without_a_reported_relapse_is_refused(self) -> None:
        ep = Episode().in_aftercare()
        with pytest.raises(RelapseNotReported, match="report the relapse first"):
            ep.decide(ep.make(c.ReadmitClient, new_episode_id="ep-2", summary="x"))

    def test_readmission_into_the_same_episode_is_refused(self) -> None:
        ep = Episode().in_aftercare()
        ep.run(ep.make(c.ReportRelapse))
        with pytest.raises(InvalidCommand, match="new episode id"):
            ep.decide(ep.make(c.ReadmitClient, new_episode_id="ep-1", summary="x"))
