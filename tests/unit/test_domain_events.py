"""Events and commands on the wire: JSON round trips, schema versions and upcasting."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, get_args

import pytest
from domain_scenario import SUPERVISOR, T0, Episode
from pydantic import AwareDatetime, ValidationError

from domain import commands as c
from domain import events as e
from domain.errors import CarePathError, InvalidCommand, StepDownRequiresAftercarePlan


def full_history() -> list[e.Event]:
    ep = Episode().in_aftercare().reassessed_after_relapse()
    ep.run(ep.make(c.ReadmitClient, new_episode_id="ep-2", summary="readmitted"))
    return ep.history


def test_every_event_round_trips_through_json() -> None:
    for event in full_history():
        assert e.load_event(e.dump_event(event)) == event


def test_every_event_loads_from_its_stored_json_text_as_from_its_document() -> None:
    for event in full_history():
        text = json.dumps(e.dump_event(event))
        assert e.load_event_json(text) == e.load_event(json.loads(text)) == event


def test_an_invalid_stored_text_is_refused_as_an_invalid_document_is() -> None:
    payload = e.dump_event(full_history()[0])
    payload["occurred_at"] = "2026-01-05T09:00:00"
    with pytest.raises(ValidationError, match="timezone"):
        e.load_event_json(json.dumps(payload))


def test_every_event_type_is_in_the_union() -> None:
    tags = {cls.model_fields["type"].default for cls in e.EVENT_TYPES}
    union_tags = set(e.EVENT_ADAPTER.core_schema["schema"]["choices"])  # type: ignore[index]
    assert tags == union_tags


def _leaf_types(annotation: Any) -> set[Any]:
    args = get_args(annotation)
    return set().union(*(_leaf_types(a) for a in args)) if args else {annotation}


def test_every_moment_an_event_carries_must_be_timezone_aware() -> None:
    moments = {
        f"{cls.__name__}.{name}": _leaf_types(field.annotation)
        for cls in [e.EventBase, *e.EVENT_TYPES]
        for name, field in cls.model_fields.items()
        if _leaf_types(field.annotation) & {datetime, AwareDatetime}
    }
    assert "EventBase.occurred_at" in moments
    assert "ClientSteppedDown.check_ins_due" in moments
    assert [name for name, leaves in moments.items() if datetime in leaves] == []


def test_an_event_time_without_offset_is_refused() -> None:
    payload = e.dump_event(full_history()[0])
    payload["occurred_at"] = "2026-01-05T09:00:00"
    with pytest.raises(ValidationError, match="timezone"):
        e.load_event(payload)


def test_commands_round_trip_through_the_adapter() -> None:
    ep = Episode()
    command = ep.make(
        c.ReferClient,
        client_ref="x",
        program_id="adult-iop",
        referral_source="court",
        actor=SUPERVISOR,
    )
    payload = c.COMMAND_ADAPTER.dump_python(command, mode="json")
    assert c.COMMAND_ADAPTER.validate_python(payload) == command
    tick = c.COMMAND_ADAPTER.validate_python({"type": "tick", "now": "2026-01-05T09:00:00Z"})
    assert isinstance(tick, c.Tick)
    assert tick.now == T0


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        c.COMMAND_ADAPTER.validate_python(
            {"type": "start_screening", "command_id": "x", "actor": SUPERVISOR, "x": 1}
        )


def test_events_are_frozen() -> None:
    event = full_history()[0]
    with pytest.raises(ValueError, match="frozen"):
        event.seq = 5  # type: ignore[misc]


def test_an_old_payload_is_upcast_before_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    referred = e.dump_event(full_history()[0])
    old = {k: v for k, v in referred.items() if k != "readmission_of"}
    old["referrer"] = "dr-who"  # a field version 1 had and version 2 dropped

    def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        data.pop("referrer")
        return data

    monkeypatch.setitem(e.UPCASTERS, ("client_referred", 1), v1_to_v2)
    assert e.current_schema_version("client_referred") == 2
    loaded = e.load_event(old)
    assert loaded.schema_version == 2
    assert loaded.readmission_of is None
    # Stored text takes the same way through the upcaster.
    assert e.load_event_json(json.dumps(old)) == loaded


def test_new_events_carry_the_current_schema_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(e.UPCASTERS, ("client_referred", 1), lambda data: data)
    assert Episode().referred().history[0].schema_version == 2


def test_errors_carry_their_class_name_as_code() -> None:
    error = StepDownRequiresAftercarePlan("record an aftercare plan before stepping down")
    assert error.code == "StepDownRequiresAftercarePlan"
    assert error.message == "record an aftercare plan before stepping down"
    assert isinstance(InvalidCommand("x"), CarePathError)


def test_every_error_class_says_when_it_is_raised() -> None:
    from domain import errors

    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, CarePathError)
    ]
    assert len(classes) > 20
    undocumented = [
        cls
        for cls in classes
        if cls is not CarePathError and "raise" not in (cls.__doc__ or "").lower()
    ]
    assert undocumented == []
