"""What a command may carry: bounded text, bounded lists, plausible dates.

A value that the store or the timers cannot take would be retried forever once decided,
so the command types refuse it (pydantic's `ValidationError`) and the decider refuses
dates too far from the decision's time (`InvalidCommand`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from domain_scenario import DAY, INTAKE, T0, Episode, types
from pydantic import ValidationError, create_model

from domain import commands as c
from domain.errors import InvalidCommand
from domain.rules import registered
from domain.vocabulary import (
    FIRST_RULES,
    MAX_ITEMS,
    AftercarePlan,
    ConsentScope,
    RecipientKind,
    RelapsePreventionPlan,
    SessionKind,
)

YEAR = 365 * DAY


def _schedule(ep: Episode, starts_at: datetime, session_id: str = "s1") -> tuple[Any, ...]:
    return ep.run(
        ep.make(
            c.ScheduleSession,
            session_id=session_id,
            kind=SessionKind.GROUP_SKILLS,
            starts_at=starts_at,
            hours=3,
        )
    )


def _schema_nodes(node: Any) -> list[dict[str, Any]]:
    """Every object in a JSON schema, depth first."""
    if isinstance(node, dict):
        return [node, *(n for value in node.values() for n in _schema_nodes(value))]
    if isinstance(node, list):
        return [n for value in node for n in _schema_nodes(value)]
    return []


def _caller_schema() -> list[dict[str, Any]]:
    """The schema of what callers send: every command less the fields the server fills in
    from its own validated data (`CommandBase.server_fields`, e.g. a program definition)."""
    schemas = []
    for entry in registered():
        cls = entry.command
        fields: dict[str, Any] = {
            name: (info.annotation, info)
            for name, info in cls.model_fields.items()
            if name not in cls.server_fields
        }
        schemas.append(create_model(cls.__name__, **fields).model_json_schema())
    return schemas


class TestEveryCommandIsBounded:
    def test_every_free_string_in_every_command_has_a_length_and_a_pattern(self) -> None:
        schema = _caller_schema()
        loose = [
            node
            for node in _schema_nodes(schema)
            if node.get("type") == "string"
            and "enum" not in node
            and "const" not in node
            and node.get("format") != "date-time"
            and not ("maxLength" in node and "pattern" in node)
        ]
        assert not loose

    def test_every_list_in_every_command_has_a_most_items(self) -> None:
        schema = _caller_schema()
        unbounded = [
            node
            for node in _schema_nodes(schema)
            if node.get("type") == "array" and "maxItems" not in node
        ]
        assert not unbounded


class TestText:
    @pytest.mark.parametrize("bad", ["a\x00b", "a\x1bb", "a\rb", "a\x7fb", "a\x85b", "a\tb"])
    def test_one_line_values_refuse_control_characters(self, bad: str) -> None:
        with pytest.raises(ValidationError, match="session_id"):
            c.CancelSession(command_id="cmd-1", actor=INTAKE, session_id=bad)

    @pytest.mark.parametrize("bad", ["a\x00b", "a\x08b", "a\rb", "a\x9bb"])
    def test_free_text_refuses_control_characters(self, bad: str) -> None:
        with pytest.raises(ValidationError, match="summary"):
            c.Discharge(command_id="cmd-1", actor=INTAKE, discharge_reason="completed", summary=bad)

    def test_free_text_keeps_line_feeds_and_tabs(self) -> None:
        summary = "completed all phases\n\tplan:\taftercare in place"
        command = c.Discharge(
            command_id="cmd-1", actor=INTAKE, discharge_reason="completed", summary=summary
        )
        assert command.summary == summary

    def test_lone_surrogates_are_refused(self) -> None:
        with pytest.raises(ValidationError, match="reason"):
            c.StartScreening(command_id="cmd-1", actor=INTAKE, reason="\ud800")

    def test_text_longer_than_its_kind_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="at most 2000 characters"):
            c.StartScreening(command_id="cmd-1", actor=INTAKE, reason="x" * 2001)
        with pytest.raises(ValidationError, match="at most 200 characters"):
            c.StartScreening(command_id="c" * 201, actor=INTAKE)
        with pytest.raises(ValidationError, match="at most 500 characters"):
            AftercarePlan(continued_therapy="x" * 501)

    def test_the_actor_id_is_bounded_like_any_reference(self) -> None:
        with pytest.raises(ValidationError, match="user_id"):
            c.StartScreening(
                command_id="cmd-1", actor={"user_id": "ivy\x00", "role": "intake_coordinator"}
            )

    def test_lists_longer_than_the_most_items_are_refused(self) -> None:
        with pytest.raises(ValidationError, match=f"at most {MAX_ITEMS} items"):
            RelapsePreventionPlan(
                triggers=tuple(f"t{i}" for i in range(MAX_ITEMS + 1)), coping_strategies=("x",)
            )
        with pytest.raises(ValidationError, match=f"at most {MAX_ITEMS} items"):
            c.RecordConsent(
                command_id="cmd-1",
                actor=INTAKE,
                consent_id="k1",
                recipient_ref="mother",
                recipient_kind=RecipientKind.FAMILY,
                scopes=(ConsentScope.ATTENDANCE,) * (MAX_ITEMS + 1),
                expires_at=T0 + DAY,
            )

    def test_a_thousand_bad_items_are_a_couple_of_errors_not_a_thousand(self) -> None:
        # A refusal's text travels back through Temporal in a message of at most 4 MB.
        with pytest.raises(ValidationError) as refused:
            RelapsePreventionPlan(triggers=("bad\x00",) * 1000, coping_strategies=("x",))
        assert refused.value.error_count() <= 2


class TestMomentRange:
    @pytest.mark.parametrize(
        "moment",
        [
            datetime(9999, 12, 31, tzinfo=UTC),
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(1899, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2200, 1, 1, tzinfo=UTC),
        ],
    )
    def test_moments_outside_1900_to_2199_are_refused(self, moment: datetime) -> None:
        with pytest.raises(ValidationError, match="between 1900 and 2199"):
            c.Tick(now=moment)

    def test_moments_at_the_edges_of_the_range_are_accepted(self) -> None:
        assert c.Tick(now=datetime(1900, 1, 1, tzinfo=UTC)).now.year == 1900
        assert c.Tick(now=datetime(2199, 12, 31, 23, 59, tzinfo=UTC)).now.year == 2199

    def test_naive_moments_are_refused(self) -> None:
        with pytest.raises(ValidationError, match="timezone"):
            c.Tick(now=datetime(2026, 1, 5))


class TestSessionHorizon:
    def test_a_session_a_year_ahead_or_back_is_scheduled(self) -> None:
        # A year back is within the horizon; under the current rules the program's
        # backdate window is narrower, so this is an episode under the first rules.
        ep = Episode(rules_revision=FIRST_RULES).in_program()
        assert types(_schedule(ep, T0 + YEAR, "ahead")) == ["session_scheduled"]
        assert types(_schedule(ep, T0 - YEAR, "back")) == ["session_scheduled"]

    def test_a_session_more_than_a_year_ahead_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(InvalidCommand, match=r"starts_at .* too far after now"):
            _schedule(ep, T0 + YEAR + timedelta(minutes=1))

    def test_a_session_more_than_a_year_back_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(InvalidCommand, match="at most 1 year back and 1 year ahead"):
            _schedule(ep, T0 - YEAR - timedelta(minutes=1))

    def test_a_session_cannot_be_moved_beyond_the_horizon(self) -> None:
        ep = Episode().in_program()
        _schedule(ep, T0 + DAY)
        with pytest.raises(InvalidCommand, match="too far after now"):
            ep.run(ep.make(c.RescheduleSession, session_id="s1", starts_at=T0 + 2 * YEAR))


class TestConsentAndAuthorizationHorizons:
    def test_a_consent_expiring_more_than_two_years_ahead_is_refused(self) -> None:
        ep = Episode().referred()
        with pytest.raises(InvalidCommand, match="a consent's expiry may lie at most"):
            ep.run(
                ep.make(
                    c.RecordConsent,
                    actor=INTAKE,
                    consent_id="k1",
                    recipient_ref="mother",
                    recipient_kind=RecipientKind.FAMILY,
                    scopes=(ConsentScope.ATTENDANCE,),
                    expires_at=T0 + 2 * YEAR + DAY,
                )
            )

    @pytest.mark.parametrize(
        ("starts", "ends"),
        [(T0 - YEAR - DAY, T0), (T0, T0 + 2 * YEAR + DAY)],
        ids=["start-too-early", "end-too-late"],
    )
    def test_an_authorization_beyond_its_horizon_is_refused(
        self, starts: datetime, ends: datetime
    ) -> None:
        ep = Episode().referred()
        with pytest.raises(InvalidCommand, match="payer authorization's dates"):
            ep.run(
                ep.make(
                    c.RecordAuthorization,
                    actor=INTAKE,
                    authorization_id="a1",
                    payer_ref="payer-7",
                    units=10,
                    starts_at=starts,
                    ends_at=ends,
                )
            )
