"""Folding histories, the itemised deadline view, and program thresholds at the edges."""

from __future__ import annotations

import pytest
from domain_scenario import DAY, HOUR, SUPERVISOR, T0, Episode, catalog_with, types
from pydantic import ValidationError

from domain import commands as c
from domain.deadlines import pending_deadlines
from domain.decider import evolve, fold
from domain.vocabulary import ConsentScope, RecipientKind


class TestFold:
    def test_event_before_the_referral_means_a_corrupt_stream(self) -> None:
        history = Episode().admitted().history
        with pytest.raises(ValueError, match="before the referral"):
            evolve(None, history[1])

    def test_second_referral_event_means_a_corrupt_stream(self) -> None:
        ep = Episode().referred()
        with pytest.raises(ValueError, match="already started"):
            evolve(ep.state, ep.history[0])

    def test_fold_from_a_snapshot_continues_where_it_stopped(self) -> None:
        ep = Episode().in_program()
        snapshot = fold(ep.history[:3])
        assert fold(ep.history[3:], snapshot) == ep.state

    def test_late_record_of_an_earlier_session_keeps_the_latest_contact(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY).session("s2", T0 + 2 * DAY)
        ep.now = T0 + 3 * DAY
        ep.attendance("s2", "attended")
        ep.attendance("s1", "attended")
        assert ep.s.last_contact_at == T0 + 2 * DAY


class TestPendingDeadlines:
    def test_items_are_listed_earliest_first_with_their_references(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        items = pending_deadlines(ep.state)
        assert items[0] == ("session_no_show", T0 + DAY + 4 * HOUR, "s1")
        assert [kind for kind, _at, _ref in items] == [
            "session_no_show",
            "weekly_hours_check",
            "plan_review_reminder",
            "no_contact_review",
            "plan_review_overdue",
            "phase_review_due",
        ]

    def test_nothing_is_pending_for_a_closed_or_missing_episode(self) -> None:
        ep = Episode().in_program()
        ep.run(ep.make(c.Discharge, actor=SUPERVISOR, discharge_reason="other", summary="x"))
        assert pending_deadlines(ep.state) == ()
        assert pending_deadlines(None) == ()


class TestThresholdsFromTheProgram:
    def test_ladder_that_starts_at_two_no_shows_ignores_the_first(self) -> None:
        catalog = catalog_with(escalation={"consecutive_no_shows": (2, 3, 4)})
        ep = Episode(catalog=catalog).in_program().session("s1", T0 + DAY)
        ep.now = T0 + 2 * DAY
        assert types(ep.attendance("s1", "no_show")) == ["attendance_recorded"]

    def test_explicit_tick_command_id_is_kept(self) -> None:
        assert c.Tick(command_id="timer-7", now=T0).command_id == "timer-7"


class TestReplace:
    """`replace` stands in for `model_copy(update=...)` on every fold."""

    def test_a_replaced_state_is_what_model_copy_makes(self) -> None:
        state = Episode().in_program().session("s1", T0 + DAY).state
        changes = {"version": state.version + 1, "sessions": state.sessions[:0]}
        replaced, copied = state.replace(**changes), state.model_copy(update=changes)
        assert replaced == copied
        assert replaced.model_fields_set == copied.model_fields_set
        assert replaced.model_dump(mode="json") == copied.model_dump(mode="json")
        assert hash(replaced.sessions) == hash(copied.sessions)

    def test_the_original_is_left_as_it_was(self) -> None:
        state = Episode().in_program().state
        before = state.model_dump()
        replaced = state.replace(stage=state.stage.__class__.DISCHARGED)
        assert state.model_dump() == before
        assert replaced.stage != state.stage

    def test_the_copy_is_frozen_too(self) -> None:
        session = Episode().in_program().session("s1", T0 + DAY).state.sessions[0]
        replaced = session.replace(cancelled=True)
        assert replaced.cancelled
        assert not session.cancelled
        with pytest.raises(ValidationError, match="frozen"):
            replaced.cancelled = False  # type: ignore[misc]
        assert hash(replaced) != hash(session)


class TestEvolveLeavesItsInput:
    def test_no_state_given_to_evolve_changes_whatever_the_event(self) -> None:
        history = Episode().in_aftercare().reassessed_after_relapse().history
        state = None
        for event in history:
            before = None if state is None else (state.model_dump(), set(state.model_fields_set))
            after = evolve(state, event)
            assert after.version == event.seq
            if state is not None:
                assert (state.model_dump(), set(state.model_fields_set)) == before
                assert after is not state
            state = after

    def test_an_event_that_changes_nothing_else_still_moves_the_version_on_a_copy(self) -> None:
        ep = Episode().in_program()
        ep.run(
            ep.make(
                c.RecordConsent,
                consent_id="k1",
                recipient_ref="mother",
                recipient_kind=RecipientKind.FAMILY,
                scopes=(ConsentScope.ATTENDANCE,),
                expires_at=T0 + 90 * DAY,
            )
        )
        state = ep.state
        (party,) = ep.run(
            ep.make(
                c.NotifyParty,
                recipient_ref="mother",
                recipient_kind=RecipientKind.FAMILY,
                scope=ConsentScope.ATTENDANCE,
            )
        )
        assert party.type == "party_notified"
        moved = evolve(state, party)
        assert (moved.version, state.version) == (party.seq, party.seq - 1)
        assert moved.model_copy(update={"version": state.version}) == state
