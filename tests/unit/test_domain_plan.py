"""Treatment plan (intensity bounds, care team), phases and plan reviews."""

from __future__ import annotations

import pytest
from domain_scenario import DAY, T0, Episode, catalog_with, plan, types

from domain import commands as c
from domain.errors import (
    InvalidCommand,
    NoFurtherPhase,
    ScheduleOutsideIntensityBounds,
    WrongStage,
)
from domain.state import Stage
from domain.vocabulary import Goal, GoalArea, ReviewOutcome, ScheduleBlock


class TestTreatmentPlan:
    def test_first_plan_starts_the_program_and_sets_the_review_due(self) -> None:
        ep = Episode().admitted()
        events = ep.run(ep.make(c.RecordTreatmentPlan, plan=plan()))
        assert types(events) == ["treatment_plan_recorded"]
        assert events[0].revision == 1
        assert events[0].review_due_at == T0 + 14 * DAY
        assert ep.s.stage is Stage.IN_PROGRAM
        assert ep.s.primary_clinician == "cal-clinician"

    def test_revision_keeps_the_review_due_date(self) -> None:
        ep = Episode().in_program().advance(3 * DAY)
        events = ep.run(ep.make(c.RecordTreatmentPlan, plan=plan(hours=4)))
        assert events[0].revision == 2
        assert events[0].review_due_at == T0 + 14 * DAY

    def test_adult_schedule_under_nine_hours_is_refused(self) -> None:
        ep = Episode().admitted()
        with pytest.raises(ScheduleOutsideIntensityBounds, match=r"totals 8 h.*9-19 h a week"):
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=plan(hours=2, days=4)))

    def test_adolescent_schedule_of_six_hours_is_accepted(self) -> None:
        ep = Episode(program_id="adolescent-iop").admitted()
        events = ep.run(ep.make(c.RecordTreatmentPlan, plan=plan(hours=2, days=3)))
        assert types(events) == ["treatment_plan_recorded"]

    def test_too_few_program_days_are_refused(self) -> None:
        ep = Episode().admitted()
        with pytest.raises(ScheduleOutsideIntensityBounds, match=r"2 program days.*3-5"):
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=plan(hours=4, days=2)))

    def test_program_day_over_four_hours_is_refused(self) -> None:
        ep = Episode().admitted()
        with pytest.raises(ScheduleOutsideIntensityBounds, match=r"lasts 5\.0 h"):
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=plan(hours=5, days=3)))

    def test_primary_clinician_must_be_on_the_care_team(self) -> None:
        ep = Episode().admitted()
        with pytest.raises(InvalidCommand, match="not on the care team"):
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=plan(primary="someone-else")))

    def test_weekday_listed_twice_is_refused(self) -> None:
        ep = Episode().admitted()
        doubled = plan().model_copy(
            update={"weekly_schedule": (ScheduleBlock(weekday=0, hours=3),) * 3}
        )
        with pytest.raises(InvalidCommand, match="weekday twice"):
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=doubled))

    def test_goal_naming_an_unknown_problem_is_refused(self) -> None:
        ep = Episode().admitted()
        stray = plan().model_copy(
            update={
                "goals": (Goal(area=GoalArea.RELATIONSHIPS, description="x", problem_ids=("p9",)),)
            }
        )
        with pytest.raises(InvalidCommand, match=r"unknown problems \['p9'\]"):
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=stray))

    def test_plan_before_admission_is_refused(self) -> None:
        ep = Episode().assessed()
        with pytest.raises(WrongStage, match="record a treatment plan"):
            ep.decide(ep.make(c.RecordTreatmentPlan, plan=plan()))


class TestPhases:
    def test_advancing_moves_to_the_next_phase(self) -> None:
        ep = Episode().in_program().phase_elapsed()
        events = ep.run(ep.make(c.AdvancePhase))
        assert types(events) == ["phase_advanced"]
        assert (events[0].from_phase, events[0].to_phase) == ("stabilization", "skills")
        assert ep.s.phase_id == "skills"

    def test_advancing_past_the_last_phase_suggests_step_down(self) -> None:
        ep = Episode().in_program().phase_elapsed()
        ep.run(ep.make(c.AdvancePhase))
        ep.phase_elapsed().run(ep.make(c.AdvancePhase))
        with pytest.raises(NoFurtherPhase, match="step the client down or discharge"):
            ep.decide(ep.make(c.AdvancePhase))

    def test_advancing_before_the_plan_is_refused(self) -> None:
        ep = Episode().admitted()
        with pytest.raises(WrongStage, match="in_program"):
            ep.decide(ep.make(c.AdvancePhase))


class TestPlanReviews:
    @pytest.mark.parametrize(
        "outcome",
        [
            ReviewOutcome.CONTINUE,
            ReviewOutcome.REVISE_PLAN,
            ReviewOutcome.STEP_DOWN,
            ReviewOutcome.STEP_UP,
            ReviewOutcome.DISCHARGE,
        ],
    )
    def test_review_sets_the_next_review_due(self, outcome: ReviewOutcome) -> None:
        ep = Episode().in_program().advance(13 * DAY)
        events = ep.run(ep.make(c.CompletePlanReview, outcome=outcome, notes="on track"))
        assert types(events) == ["plan_review_completed"]
        assert events[0].next_review_due_at == T0 + 27 * DAY
        assert ep.s.review_due_at == T0 + 27 * DAY

    def test_review_that_advances_the_phase_advances_it(self) -> None:
        ep = Episode().in_program().phase_elapsed()
        events = ep.run(ep.make(c.CompletePlanReview, outcome=ReviewOutcome.ADVANCE_PHASE))
        assert types(events) == ["plan_review_completed", "phase_advanced"]

    def test_review_advancing_from_the_last_phase_is_refused_whole(self) -> None:
        ep = Episode().in_program().phase_elapsed()
        ep.run(ep.make(c.AdvancePhase))
        ep.phase_elapsed().run(ep.make(c.AdvancePhase))
        with pytest.raises(NoFurtherPhase):
            ep.decide(ep.make(c.CompletePlanReview, outcome=ReviewOutcome.ADVANCE_PHASE))

    def test_review_cadence_comes_from_the_program(self) -> None:
        ep = Episode(catalog=catalog_with(planning={"review_every": "P30D"})).in_program()
        assert ep.s.review_due_at == T0 + 30 * DAY
