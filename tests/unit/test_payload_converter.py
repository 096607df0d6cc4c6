"""The payload converter every CarePath process uses: the SDK's pydantic converter, with
its encoding converters built once (`workers.temporal.SharedPydanticPayloadConverter`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import WorkflowSerializationContext
from temporalio.worker._workflow import _CommandAwareDataConverter

from testing import samples
from testing.payload_keys import TEST_CONVERTER
from testing.sample_streams import episode_events
from workers.temporal import PLAIN_CONVERTER, SharedPydanticPayloadConverter
from workflows.messages import AppendEventsInput, AppendEventsResult, CommandRequest

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
EVENTS = tuple(episode_events("ep-conv", sessions=3))


# What crosses the SDK: an update's request, an append's input and result, plain JSON,
# bytes and nothing; each with the type it is decoded as.
VALUES: list[tuple[Any, type]] = [
    (
        CommandRequest(
            command=samples.session(samples.CommandIds("conv"), "s-1", AT), programs=("adult-iop",)
        ),
        CommandRequest,
    ),
    (
        AppendEventsInput(episode_id="ep-conv", events=EVENTS, command_id="c-1", fingerprint="f"),
        AppendEventsInput,
    ),
    (
        AppendEventsResult(
            episode_id="ep-conv", head_seq=len(EVENTS), written=len(EVENTS), position=7
        ),
        AppendEventsResult,
    ),
    ({"client_ref": "MRN-1", "at": AT.isoformat()}, dict),
    (b"\x00raw", bytes),
    (None, type(None)),
]


CONTEXT = WorkflowSerializationContext(namespace="default", workflow_id="wf")


class TestSharedPydanticPayloadConverter:
    def test_instances_share_the_encoding_converters(self) -> None:
        first, second = SharedPydanticPayloadConverter(), SharedPydanticPayloadConverter()

        assert list(first.converters) == list(PydanticPayloadConverter().converters)
        for encoding, converter in first.converters.items():
            assert second.converters[encoding] is converter

    @pytest.mark.parametrize(("value", "hint"), VALUES, ids=lambda v: getattr(v, "__name__", None))
    def test_converts_as_the_sdk_pydantic_converter_does(self, value: Any, hint: type) -> None:
        sdk = PydanticPayloadConverter()

        [ours] = SharedPydanticPayloadConverter().to_payloads([value])
        [theirs] = sdk.to_payloads([value])

        assert ours == theirs
        assert SharedPydanticPayloadConverter().from_payloads([theirs], [hint]) == [value]
        assert sdk.from_payloads([ours], [hint]) == [value]

    def test_every_process_converter_uses_it(self) -> None:
        assert PLAIN_CONVERTER.payload_converter_class is SharedPydanticPayloadConverter
        assert TEST_CONVERTER.payload_converter_class is SharedPydanticPayloadConverter

    def test_a_converter_the_worker_derives_builds_no_encoding_converter(self) -> None:
        # What the workflow worker does for every activation and completion.
        derived = TEST_CONVERTER.with_context(CONTEXT)
        built = _CommandAwareDataConverter.create(
            instance=None,  # type: ignore[arg-type]
            context_free_dc=TEST_CONVERTER,
            workflow_context_dc=derived,
            workflow_context=CONTEXT,
        )

        shared = SharedPydanticPayloadConverter().converters
        for converter in (derived, built):
            inner = converter.payload_converter._inner_payload_converter  # type: ignore[attr-defined]
            assert all(inner.converters[e] is c for e, c in shared.items())

    async def test_a_sealed_payload_round_trips_through_the_derived_converter(self) -> None:
        converter = TEST_CONVERTER.with_context(CONTEXT)
        value = AppendEventsInput(episode_id="ep-conv", events=EVENTS)

        [payload] = await converter.encode([value])

        assert payload.metadata["encoding"] == b"binary/encrypted"
        assert await converter.decode([payload], [AppendEventsInput]) == [value]
