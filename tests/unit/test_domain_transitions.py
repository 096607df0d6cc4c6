"""Hold and resume, step-up, step-down (with its required plans) and discharge."""

from __future__ import annotations

import pytest
from domain_scenario import (
    AFTERCARE_PLAN,
    DAY,
    DIRECTOR,
    RP_PLAN,
    SUPERVISOR,
    T0,
    Episode,
    types,
)

from domain import commands as c
from domain.errors import (
    EpisodeClosed,
    InvalidCommand,
    ReasonRequired,
    StepDownRequiresAftercarePlan,
    StepDownRequiresRelapsePreventionPlan,
    WrongStage,
)
from domain.state import Stage
from domain.vocabulary import DischargeReason, HoldKind, LevelOfCare


class TestHold:
    def test_hold_cancels_upcoming_sessions_and_sets_a_review_deadline(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY).session("s2", T0 + 2 * DAY)
        ep.advance(DAY + DAY / 2)  # s1 is past, s2 is upcoming
        events = ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        assert types(events) == ["episode_put_on_hold", "session_cancelled"]
        assert events[1].session_id == "s2"
        assert events[0].review_due_at == ep.now + 14 * DAY
        assert ep.s.stage is Stage.ON_HOLD

    def test_resume_returns_to_the_stage_before_the_hold(self) -> None:
        ep = Episode().admitted()
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.OTHER))
        events = ep.run(ep.make(c.ResumeFromHold))
        assert types(events) == ["episode_resumed"]
        assert ep.s.stage is Stage.TREATMENT_PLANNING

    def test_attendance_is_not_recorded_while_on_hold(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.OTHER))
        ep.advance(2 * DAY)
        with pytest.raises(WrongStage, match="on_hold"):
            ep.attendance("s1", "attended")

    def test_resume_when_not_on_hold_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(WrongStage, match="resume"):
            ep.decide(ep.make(c.ResumeFromHold))


class TestStepUp:
    def test_step_up_with_intent_to_return_puts_the_episode_on_hold(self) -> None:
        ep = Episode().in_program()
        events = ep.run(ep.make(c.StepUp, to_level=LevelOfCare.PHP, intent_to_return=True))
        assert types(events) == ["client_stepped_up", "episode_put_on_hold"]
        assert ep.s.hold is not None
        assert ep.s.hold.kind is HoldKind.STEP_UP_WITH_RETURN

    def test_step_up_without_return_discharges_as_transferred(self) -> None:
        ep = Episode().in_program()
        events = ep.run(
            ep.make(
                c.StepUp,
                to_level=LevelOfCare.RESIDENTIAL,
                intent_to_return=False,
                summary="transferred to residential care",
            )
        )
        assert types(events) == ["client_stepped_up", "episode_discharged"]
        assert ep.s.discharge_reason is DischargeReason.TRANSFERRED

    def test_step_up_without_return_needs_a_summary(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(ReasonRequired, match="discharge summary"):
            ep.decide(ep.make(c.StepUp, to_level=LevelOfCare.PHP, intent_to_return=False))

    def test_step_up_to_a_lower_level_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(InvalidCommand, match="not a higher level"):
            ep.decide(ep.make(c.StepUp, to_level=LevelOfCare.OUTPATIENT, intent_to_return=True))

    def test_step_up_from_hold_without_return_is_allowed(self) -> None:
        ep = Episode().in_program()
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        events = ep.run(
            ep.make(
                c.StepUp, to_level=LevelOfCare.INPATIENT, intent_to_return=False, summary="admitted"
            )
        )
        assert types(events)[-1] == "episode_discharged"


class TestStepDown:
    def test_step_down_starts_aftercare_with_check_ins_at_the_program_offsets(self) -> None:
        ep = Episode().ready_to_step_down()
        events = ep.run(ep.make(c.StepDown))
        assert types(events) == ["client_stepped_down"]
        assert [(due - T0).days for due in events[0].check_ins_due] == [7, 30, 90, 180, 365]
        assert ep.s.stage is Stage.AFTERCARE

    def test_step_down_requires_a_relapse_prevention_plan(self) -> None:
        ep = Episode().in_program()
        ep.run(ep.make(c.RecordAftercarePlan, plan=AFTERCARE_PLAN))
        with pytest.raises(
            StepDownRequiresRelapsePreventionPlan, match="record a relapse-prevention plan"
        ):
            ep.decide(ep.make(c.StepDown))

    def test_step_down_requires_an_aftercare_plan(self) -> None:
        ep = Episode().in_program()
        ep.run(ep.make(c.RecordRelapsePreventionPlan, plan=RP_PLAN))
        with pytest.raises(
            StepDownRequiresAftercarePlan, match="record an aftercare plan before stepping down"
        ):
            ep.decide(ep.make(c.StepDown))

    def test_step_down_to_a_higher_level_is_refused(self) -> None:
        ep = Episode().ready_to_step_down()
        with pytest.raises(InvalidCommand, match="not a step down"):
            ep.decide(ep.make(c.StepDown, to_level=LevelOfCare.PHP))


class TestDischarge:
    def test_supervisor_discharge_with_summary_closes_the_episode(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        events = ep.run(
            ep.make(
                c.Discharge,
                actor=SUPERVISOR,
                discharge_reason=DischargeReason.ADMINISTRATIVE,
                summary="no contact for 14 days after outreach",
            )
        )
        assert types(events) == ["session_cancelled", "episode_discharged"]
        assert ep.s.is_closed

    @pytest.mark.parametrize("reason", list(DischargeReason))
    def test_every_discharge_reason_is_accepted(self, reason: DischargeReason) -> None:
        ep = Episode().in_aftercare()
        ep.run(ep.make(c.Discharge, actor=DIRECTOR, discharge_reason=reason, summary="done"))
        assert ep.s.discharge_reason is reason

    def test_discharge_summary_is_required(self) -> None:
        with pytest.raises(ValueError, match="summary"):
            c.Discharge(
                command_id="x",
                actor=SUPERVISOR,
                discharge_reason=DischargeReason.COMPLETED,
                summary="",
            )

    def test_nothing_is_accepted_after_discharge(self) -> None:
        ep = Episode().in_program()
        ep.run(ep.make(c.Discharge, actor=SUPERVISOR, discharge_reason="completed", summary="done"))
        with pytest.raises(EpisodeClosed, match="refer the client again"):
            ep.decide(c.Tick(now=T0 + DAY))
