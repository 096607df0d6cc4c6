"""`store.chain.fast_canonical_json` writes exactly the bytes `canonical_json` writes (or
fails as it fails), so the hashes the store computes with it are the ones every auditor,
and every chain stored before it, computes with `canonical_json`."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.canonical import canonical_json
from domain.events import dump_event
from store.chain import fast_canonical_json
from testing.sample_streams import episode_events

# Every kind of JSON number, all of unicode (lone surrogates included), keys of every
# kind of string, nested.
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None), max_size=12)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(max_size=8), values, min_size=1, max_size=6)


def _outcome(encode: Any, payload: dict[str, Any]) -> bytes | type[BaseException]:
    try:
        return encode(payload)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        return type(exc)


@settings(max_examples=1500, deadline=None)
@given(payloads)
def test_any_payload_encodes_to_the_same_bytes_or_fails_alike(payload: dict[str, Any]) -> None:
    assert _outcome(fast_canonical_json, payload) == _outcome(canonical_json, payload)


@pytest.mark.parametrize(
    "number",
    [1e-05, -1.5e-07, 9.9e-05, 1e-4, 0.5, 12.0, 1e15, 1e16, 1.2345e21, 5e-324, 2**63, 2**64],
)
def test_numbers_either_side_of_where_the_spellings_part(number: float) -> None:
    payload = {"hours": number, "nested": [{"value": number}]}
    assert fast_canonical_json(payload) == canonical_json(payload)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_as_before(number: float) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"value": number})
    with pytest.raises(ValueError, match="JSON compliant"):
        fast_canonical_json({"value": number})


@pytest.mark.parametrize("value", [object(), {1: "int key", "b": "str key"}, "\ud800"])
def test_what_json_refuses_is_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json({"value": value})
    with pytest.raises((TypeError, ValueError)):
        fast_canonical_json({"value": value})


def test_keys_that_json_turns_into_strings_are_written_as_json_writes_them() -> None:
    payload = {"by_week": {1: 2.0, 10: 3.5, 2: 0.0}}
    assert fast_canonical_json(payload) == canonical_json(payload)


def test_every_sample_event_encodes_alike() -> None:
    events = [e for i in range(2) for e in episode_events(f"canonical-{i}", sessions=30)]
    for event in events:
        payload = dump_event(event)
        assert fast_canonical_json(payload) == canonical_json(payload), event.type
