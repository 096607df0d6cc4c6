"""No walk over an activation's payloads where the SDK makes three, or one where that
is all a codec needs.

Before a workflow activation runs, the SDK walks the whole activation three times,
payload by payload: once to decode external-storage references, once to fetch externally
stored payloads, once to run the payload codec. The completion it answers with is walked
three times the same way. CarePath configures no external storage, so the first two walks
change nothing, yet each still visits every payload, works out its serialisation
context, copies it back into the message, and (the fetch walk) starts an asyncio task
for it.

CarePath's data converter has no codec either: its payload converter seals and opens
payloads itself (`workers.temporal.SealingPayloadConverter`), and refuses a payload that
points at external storage. For it, the walks have nothing left to do, and make none.

`install` replaces the SDK's two walkers (`temporalio.bridge.worker.decode_activation`
and `encode_completion`, which the workflow worker calls through that module) with ones
that walk for the codec only, for data converters without external storage, and not at
all for a sealing converter without a codec. Any other converter gets the SDK's own
walkers. The codec walk is the SDK's own visitor with the SDK's own codec step, so every
payload is decoded and encoded exactly as before. What the skipped decode walks would
have refused, a payload that points at external storage while none is configured, is
still refused, with the SDK's message.

The SDK's version is pinned (`pyproject.toml`); `tests/unit/test_payload_passes.py`
compares the two on an activation and a completion holding a payload in every place a
workflow receives or sends one, so an SDK whose walkers change is caught before it ships.
"""

from __future__ import annotations

from collections.abc import Sequence

import temporalio.bridge.worker as bridge
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import DataConverter
from temporalio.converter import _extstore as extstore
from temporalio.worker._command_aware_visitor import CommandAwarePayloadVisitor

from workers.temporal import UNFETCHABLE, SealingPayloadConverter, external_reference

SDK_DECODE_ACTIVATION = bridge.decode_activation
SDK_ENCODE_COMPLETION = bridge.encode_completion


def install() -> None:
    """Make the workflow workers of this process walk payloads once at most (idempotent)."""
    bridge.decode_activation = decode_activation
    bridge.encode_completion = encode_completion


def single_walk(data_converter: DataConverter) -> bool:
    """Whether the codec walk alone does all the SDK's walks would: no external storage,
    and references left unencoded (the SDK's default)."""
    return data_converter.external_storage is None and not extstore._ENCODE_STORAGE_REFERENCES


def no_walk(data_converter: DataConverter) -> bool:
    """Whether no walk is needed at all: a sealing payload converter (it opens and seals
    each payload itself) with no codec and, as `single_walk`, no external storage."""
    return (
        data_converter.payload_codec is None
        and issubclass(data_converter.payload_converter_class, SealingPayloadConverter)
        and single_walk(data_converter)
    )


async def decode_activation(
    activation: WorkflowActivation,
    data_converter: DataConverter,
    decode_headers: bool,
    storage_concurrency_limit: int,
) -> extstore.StorageOperationMetrics:
    """`temporalio.bridge.worker.decode_activation`, in one walk when `single_walk`, in none
    when `no_walk`."""
    if no_walk(data_converter):
        return extstore.StorageOperationMetrics()
    if not single_walk(data_converter):
        return await SDK_DECODE_ACTIVATION(
            activation, data_converter, decode_headers, storage_concurrency_limit
        )

    async def decode(payloads: Sequence[Payload]) -> list[Payload]:
        for payload in payloads:
            if external_reference(payload):
                raise RuntimeError(UNFETCHABLE)
        return await data_converter._decode_payload_sequence(payloads)

    await _walker(decode_headers).visit(bridge._Visitor(decode), activation)
    return extstore.StorageOperationMetrics()


async def encode_completion(
    completion: WorkflowActivationCompletion,
    data_converter: DataConverter,
    encode_headers: bool,
    storage_concurrency_limit: int,
) -> extstore.StorageOperationMetrics:
    """`temporalio.bridge.worker.encode_completion`, in one walk when `single_walk`, in none
    when `no_walk`."""
    if no_walk(data_converter):
        return extstore.StorageOperationMetrics()
    if not single_walk(data_converter):
        return await SDK_ENCODE_COMPLETION(
            completion, data_converter, encode_headers, storage_concurrency_limit
        )
    visitor = bridge._Visitor(data_converter._encode_payload_sequence)
    await _walker(encode_headers).visit(visitor, completion)
    return extstore.StorageOperationMetrics()


def _walker(headers: bool) -> CommandAwarePayloadVisitor:
    # As the SDK's codec walk: search attributes are never encoded, headers as configured.
    return CommandAwarePayloadVisitor(skip_search_attributes=True, skip_headers=not headers)
