"""What the projector sends and remembers of an episode's read-model rows: the document
`project_episode` reads, and the digests that say which rows changed."""

from __future__ import annotations

import json

import pytest
from domain_scenario import DAY, T0, Episode

from domain.decider import evolve
from domain.state import EpisodeState
from domain.weeks import tally, weeks_so_far
from store.projections import _changes, _digests, _document, _kept_sessions, _rows, _rows_to_send
from testing.sample_streams import episode_events


def _episode() -> Episode:
    ep = Episode().in_program().session("s1", T0 + DAY).session("s2", T0 + 2 * DAY)
    ep.now = T0 + 3 * DAY
    ep.attendance("s1", "attended")
    return ep


def test_a_document_with_the_state_holds_the_rows_and_the_state_as_json() -> None:
    ep = _episode()
    rows = _rows(ep.s, ep.now)
    document = json.loads(_document(rows, ep.s))
    assert document == {"state": ep.s.model_dump(mode="json"), **json.loads(json.dumps(rows))}


def test_a_document_without_rows_may_still_carry_the_state() -> None:
    ep = _episode()
    assert json.loads(_document({}, ep.s)) == {"state": ep.s.model_dump(mode="json")}
    assert json.loads(_document({}, None)) == {}


def test_only_the_rows_an_event_changed_are_sent_again() -> None:
    ep = _episode()
    before = _digests(_rows(ep.s, ep.now))
    ep.attendance("s2", "attended")
    rows = _rows(ep.s, ep.now)
    changes = _changes(before, _digests(rows), rows)
    sessions = changes["upsert"]["console_sessions"]
    assert [row["session_id"] for row in sessions] == ["s2"]
    assert "caseload" not in changes.get("upsert", {})


def test_rows_with_lists_among_their_values_have_digests_that_follow_the_lists() -> None:
    row = {"episode_id": "ep-1", "task_id": "t1", "notify": ["primary_clinician"]}
    changed = {**row, "notify": ["primary_clinician", "supervisor"]}
    digests = _digests({"open_tasks": [row]})["open_tasks"]
    assert digests != _digests({"open_tasks": [changed]})["open_tasks"]
    assert digests == _digests({"open_tasks": [dict(row)]})["open_tasks"]


def test_after_an_attendance_every_session_but_the_recorded_one_is_carried_over() -> None:
    ep = _episode()
    before = ep.s
    known = _digests(_rows(before, ep.now))
    ep.attendance("s2", "attended")
    assert _kept_sessions(ep.s, before, known["console_sessions"]) == {"s1"}
    rows, _ = _rows_to_send(ep.s, ep.now, before, known)
    assert [row["session_id"] for row in rows["upsert"]["console_sessions"]] == ["s2"]


@pytest.mark.parametrize("discharge", [False, True])
def test_folding_on_sends_what_building_every_row_would_at_every_event(discharge: bool) -> None:
    """`_rows_to_send` skips building the rows of sessions carried over from the state
    before: at each event of a whole episode it sends the same changes, and remembers the
    same digests, as building every row and comparing them all."""
    state: EpisodeState | None = None
    known = None
    skipped = 0
    for event in episode_events("ep-rows", sessions=24, discharge=discharge):
        before, state = state, evolve(state, event)
        every = _rows(state, event.occurred_at)
        digests = _digests(every)
        rows, remembered = _rows_to_send(state, event.occurred_at, before, known)
        assert remembered == digests
        assert rows == (every if known is None else _changes(known, digests, every))
        if known is not None and before is not None:
            skipped += len(_kept_sessions(state, before, known.get("console_sessions", {})))
        known = remembered
    assert skipped > 0


def test_each_week_row_counts_the_sessions_that_start_in_that_week() -> None:
    """The attended-hours rows find each week's sessions by bisecting their start times:
    at every event they agree with `tally` over all the sessions."""
    state: EpisodeState | None = None
    for event in episode_events("ep-weeks", sessions=30):
        state = evolve(state, event)
        rows = _rows(state, event.occurred_at)["attended_hours"]
        weeks = weeks_so_far(state)
        assert len(rows) == len(weeks)
        for row, week in zip(rows, weeks, strict=True):
            expected = tally(state.sessions, week.start, week.end)
            assert (row["hours"], row["attended"], row["partial"]) == (
                round(expected.hours, 2),
                expected.attended,
                expected.partial,
            )
            assert (row["excused"], row["no_shows"]) == (expected.excused, expected.no_shows)
