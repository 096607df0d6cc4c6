"""The payload converter every CarePath process uses: the SDK's pydantic converter, with
its encoding converters built once (`workers.temporal.SharedPydanticPayloadConverter`),
sealing and opening each payload itself (`workers.temporal.SealingPayloadConverter`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import WorkflowSerializationContext
from temporalio.worker._workflow import _CommandAwareDataConverter

from testing import samples
from testing.payload_keys import TEST_CONVERTER, TEST_KEYRING
from testing.sample_streams import episode_events
from workers.payload_codec import ENCODING, EncryptionCodec, Keyring
from workers.temporal import (
    PLAIN_CONVERTER,
    SealingPayloadConverter,
    SharedPydanticPayloadConverter,
    data_converter,
    payload_sealer,
)
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
        assert issubclass(TEST_CONVERTER.payload_converter_class, SharedPydanticPayloadConverter)

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


def _opened(payload: Payload) -> Payload:
    return EncryptionCodec(TEST_KEYRING).open(payload)


SEALING = TEST_CONVERTER.payload_converter


class TestSealingPayloadConverter:
    @pytest.mark.parametrize(("value", "hint"), VALUES, ids=lambda v: getattr(v, "__name__", None))
    def test_seals_what_the_sdk_converter_makes_and_reads_it_back(
        self, value: Any, hint: type
    ) -> None:
        [sealed] = SEALING.to_payloads([value])

        assert sealed.metadata["encoding"] == ENCODING
        assert _opened(sealed) == PydanticPayloadConverter().to_payload(value)
        assert SEALING.from_payloads([sealed], [hint]) == [value]

    async def test_reads_what_the_codec_sealed_and_the_codec_reads_what_it_seals(self) -> None:
        # Histories recorded when a payload codec encrypted, and the codec server.
        codec = EncryptionCodec(TEST_KEYRING)
        value = {"client_ref": "MRN-1"}
        [by_codec] = await codec.encode([PydanticPayloadConverter().to_payload(value)])

        assert SEALING.from_payloads([by_codec], [dict]) == [value]
        [by_converter] = await codec.decode(SEALING.to_payloads([value]))
        assert PydanticPayloadConverter().from_payloads([by_converter], [dict]) == [value]

    def test_reads_a_payload_recorded_before_encryption_as_it_is(self) -> None:
        plain = PydanticPayloadConverter().to_payload({"client_ref": "MRN-1"})

        assert SEALING.from_payloads([plain], [dict]) == [{"client_ref": "MRN-1"}]

    def test_a_raw_value_is_the_payload_as_it_came_and_is_not_sealed_twice(self) -> None:
        [sealed] = SEALING.to_payloads([{"n": 1}])
        plain = PydanticPayloadConverter().to_payload({"n": 2})

        [raw, value] = SEALING.from_payloads([sealed, sealed], [RawValue, dict])
        [passed_on, sealed_now] = SEALING.to_payloads([raw, RawValue(plain)])

        assert raw.payload is sealed
        assert value == {"n": 1}
        assert SEALING.from_payload(raw.payload) == {"n": 1}
        assert passed_on == sealed
        assert sealed_now.metadata["encoding"] == ENCODING
        assert _opened(sealed_now) == plain

    def test_a_converter_the_worker_derives_still_seals(self) -> None:
        derived = TEST_CONVERTER.with_context(CONTEXT)

        [payload] = derived.payload_converter.to_payloads([{"n": 1}])

        assert payload.metadata["encoding"] == ENCODING
        assert derived.payload_converter.from_payloads([payload]) == [{"n": 1}]

    def test_each_keyring_has_its_class_and_the_codec_server_gets_its_codec(self) -> None:
        other = Keyring({"k2": b"\x02" * 32}, "k2")
        converter = data_converter(other)
        made_by = converter.payload_converter_class

        assert issubclass(made_by, SealingPayloadConverter)
        assert made_by is not TEST_CONVERTER.payload_converter_class
        assert converter.payload_codec is None
        sealer = payload_sealer(converter)
        assert sealer is not None
        assert sealer.keyring is other
        assert payload_sealer(PLAIN_CONVERTER) is None
        [payload] = converter.payload_converter.to_payloads([{"n": 1}])
        assert payload.metadata["encryption-key-id"] == b"k2"
