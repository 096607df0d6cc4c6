"""What staff read of the weeks: the episode view's `weeks` in the clinic's local days,
due times on the clinic's clock, and a below-intensity worklist entry (no server)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from domain_scenario import DAY, HOUR, T0, Episode, plan
from test_domain_local_weeks import admitted_in_new_york, local

from api.schemas import DeadlinesResponse, EpisodeResponse, PendingDeadlineResponse
from api.worklist_routes import BelowIntensityEntry
from domain import commands as c
from domain.vocabulary import FIRST_RULES, HoldKind
from domain.weeks import latest_judged, week_reports


def view(ep: Episode) -> EpisodeResponse:
    return EpisodeResponse(episode_id="ep-1", workflow_id="episode-ep-1", state=ep.state)


class TestTheEpisodeViewShowsItsWeeks:
    def test_given_a_judged_week_in_new_york_then_the_view_shows_its_local_days_and_verdict(
        self,
    ) -> None:
        ep = admitted_in_new_york(local(2026, 3, 4, 15))
        ep.session("s1", local(2026, 3, 5, 18))
        ep.now = local(2026, 3, 5, 21)
        ep.attendance("s1", "attended")
        ep.tick(local(2026, 3, 11, 0, 30))

        weeks = view(ep).model_dump(mode="json")["weeks"]

        assert [w["status"] for w in weeks] == ["judged", "open"]
        judged = weeks[0]
        assert (judged["first_day"], judged["last_day"]) == ("2026-03-04", "2026-03-10")
        assert judged["local_start"] == "2026-03-04T00:00:00-05:00"
        assert judged["local_end"] == "2026-03-11T00:00:00-04:00"
        assert judged["timezone"] == "America/New_York"
        assert (judged["attended_hours"], judged["minimum_hours"]) == (3, 9)
        assert judged["below_minimum"] is True
        assert weeks[1]["minimum_hours"] is None

    def test_given_a_hold_then_the_week_it_cut_short_shows_as_such(self) -> None:
        ep = Episode().in_program()
        ep.now = T0 + 2 * DAY
        ep.run(ep.make(c.PlaceOnHold, kind=HoldKind.HOSPITALIZATION))
        ep.now = T0 + 4 * DAY
        ep.run(ep.make(c.ResumeFromHold))

        assert [w.status for w in week_reports(ep.s)] == ["cut_short", "open"]
        assert latest_judged(ep.s) is None

    def test_given_no_admission_yet_then_there_are_no_weeks(self) -> None:
        assert view(Episode().assessed()).weeks == []
        assert EpisodeResponse(episode_id="e", workflow_id="w", state=None).weeks == []

    def test_given_the_first_rules_then_weeks_are_shown_in_utc_days(self) -> None:
        ep = Episode(rules_revision=FIRST_RULES).assessed()
        ep.now = T0 + 10 * HOUR
        ep.run(ep.make(c.AdmitClient))
        ep.run(ep.make(c.RecordTreatmentPlan, plan=plan()))

        (week,) = week_reports(ep.s)

        assert (week.timezone, week.first_day, week.last_day) == (
            "UTC",
            date(2026, 1, 5),
            date(2026, 1, 12),
        )
        assert week.local_start == (T0 + 10 * HOUR).isoformat()


class TestDueTimesOnTheClinicsClock:
    def test_when_deadlines_are_shown_in_a_zone_then_each_has_its_local_time(self) -> None:
        due = datetime(2026, 3, 11, 4, tzinfo=UTC)
        answer = DeadlinesResponse(
            episode_id="ep-1",
            next_deadline=due,
            pending=(PendingDeadlineResponse(kind="weekly_hours_check", due_at=due),),
        )

        local_answer = answer.in_zone("America/New_York")

        assert local_answer.timezone == "America/New_York"
        assert local_answer.next_deadline_local == "2026-03-11T00:00:00-04:00"
        assert local_answer.pending[0].due_local == "2026-03-11T00:00:00-04:00"
        assert local_answer.pending[0].due_at == due

    def test_given_nothing_pending_then_no_local_time_is_shown(self) -> None:
        answer = DeadlinesResponse(episode_id="ep-1", next_deadline=None, pending=())
        assert answer.in_zone("UTC").next_deadline_local is None


def test_given_a_worklist_row_then_the_entry_has_local_days_and_the_shortfall() -> None:
    row = {
        "episode_id": "ep-1",
        "client_ref": "MRN-1",
        "program_id": "adult-iop",
        "stage": "in_program",
        "primary_clinician": "cal-clinician",
        "week_start": local(2026, 10, 28),
        "week_end": local(2026, 11, 4),
        "attended_hours": Decimal("6.00"),
        "minimum_hours": Decimal("9.00"),
        "timezone": "America/New_York",
    }

    entry = BelowIntensityEntry.of_row(row)

    assert (entry.first_day, entry.last_day) == (date(2026, 10, 28), date(2026, 11, 3))
    assert (entry.attended_hours, entry.minimum_hours, entry.shortfall_hours) == (6, 9, 3)
