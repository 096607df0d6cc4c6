"""The payload walks (`workers.payload_passes`) give what the SDK's three walks give: every
payload decoded and encoded alike, search attributes left as they are, headers as
configured, the SDK's refusal of externally stored payloads kept, the SDK's own walks for
a converter with external storage, and no walk for CarePath's converter, which opens and
seals each payload itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
import temporalio.bridge.worker as bridge
from temporalio.api.common.v1 import Memo, Payload, SearchAttributes
from temporalio.bridge.proto.activity_result import ActivityResolution, Success
from temporalio.bridge.proto.workflow_activation import (
    DoUpdate,
    InitializeWorkflow,
    QueryWorkflow,
    ResolveActivity,
    SignalWorkflow,
    WorkflowActivation,
    WorkflowActivationJob,
)
from temporalio.bridge.proto.workflow_commands import (
    CompleteWorkflowExecution,
    ContinueAsNewWorkflowExecution,
    QueryResult,
    QuerySuccess,
    ScheduleActivity,
    ScheduleLocalActivity,
    UpdateResponse,
    UpsertWorkflowSearchAttributes,
    WorkflowCommand,
)
from temporalio.bridge.proto.workflow_completion import (
    Success as CompletionSuccess,
)
from temporalio.bridge.proto.workflow_completion import (
    WorkflowActivationCompletion,
)
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.converter import _extstore as extstore

from testing.payload_keys import TEST_CONVERTER
from workers import payload_passes
from workers.payload_codec import ENCODING
from workers.temporal import PLAIN_CONVERTER, payload_sealer

WRAPPED = b"test/wrapped"


class WrappingCodec(PayloadCodec):
    """A deterministic codec (the payload, serialised, inside another), so that what the
    two walks encode can be compared byte for byte."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(metadata={"encoding": WRAPPED}, data=p.SerializeToString()) for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            opened = Payload()
            opened.ParseFromString(p.data)
            out.append(opened)
        return out


CONVERTER = dataclasses.replace(PLAIN_CONVERTER, payload_codec=WrappingCodec())


def _plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


def _wrapped(text: str) -> Payload:
    return Payload(metadata={"encoding": WRAPPED}, data=_plain(text).SerializeToString())


def _search_attributes() -> SearchAttributes:
    return SearchAttributes(indexed_fields={"ProgramId": _plain("sa")})


Walk = Callable[[Any, DataConverter, bool, int], Awaitable[object]]


def _activation(p: Callable[[str], Payload] = _wrapped) -> WorkflowActivation:
    """An activation with a payload in every place CarePath's workflows receive one."""
    return WorkflowActivation(
        run_id="run-1",
        jobs=[
            WorkflowActivationJob(
                initialize_workflow=InitializeWorkflow(
                    workflow_type="CarePathway",
                    arguments=[p("input")],
                    headers={"trace": p("init-header")},
                    memo=Memo(fields={"note": p("memo")}),
                    search_attributes=_search_attributes(),
                )
            ),
            WorkflowActivationJob(
                do_update=DoUpdate(
                    id="u1",
                    name="record_attendance",
                    input=[p("request")],
                    headers={"trace": p("uh")},
                )
            ),
            WorkflowActivationJob(
                resolve_activity=ResolveActivity(
                    seq=1, result=ActivityResolution(completed=Success(result=p("appended")))
                )
            ),
            WorkflowActivationJob(
                signal_workflow=SignalWorkflow(signal_name="s", input=[p("sig")])
            ),
            WorkflowActivationJob(
                query_workflow=QueryWorkflow(query_id="q", query_type="state", arguments=[p("qa")])
            ),
        ],
    )


def _completion(p: Callable[[str], Payload] = _plain) -> WorkflowActivationCompletion:
    """A completion with a payload in every place CarePath's workflows send one."""
    commands = [
        WorkflowCommand(
            schedule_local_activity=ScheduleLocalActivity(
                seq=1, activity_type="append_events", arguments=[p("events")], headers={"t": p("h")}
            )
        ),
        WorkflowCommand(
            update_response=UpdateResponse(protocol_instance_id="u1", completed=p("result"))
        ),
        WorkflowCommand(
            upsert_workflow_search_attributes=UpsertWorkflowSearchAttributes(
                search_attributes=_search_attributes()
            )
        ),
        WorkflowCommand(
            schedule_activity=ScheduleActivity(
                seq=2, activity_type="send_notifications", arguments=[p("n")]
            )
        ),
        WorkflowCommand(
            respond_to_query=QueryResult(query_id="q", succeeded=QuerySuccess(response=p("view")))
        ),
        WorkflowCommand(
            continue_as_new_workflow_execution=ContinueAsNewWorkflowExecution(
                workflow_type="CarePathway",
                arguments=[p("snapshot")],
                memo={"note": p("memo")},
                headers={"t": p("h2")},
                search_attributes=_search_attributes(),
            )
        ),
        WorkflowCommand(complete_workflow_execution=CompleteWorkflowExecution(result=p("view"))),
    ]
    return WorkflowActivationCompletion(
        run_id="run-1", successful=CompletionSuccess(commands=commands)
    )


async def _decoded(walk: Walk, headers: bool) -> WorkflowActivation:
    activation = _activation()
    await walk(activation, CONVERTER, headers, 4)
    return activation


async def _encoded(walk: Walk, headers: bool) -> WorkflowActivationCompletion:
    completion = _completion()
    await walk(completion, CONVERTER, headers, 4)
    return completion


@pytest.mark.parametrize("headers", [True, False])
async def test_an_activation_decodes_as_the_sdks_three_walks_decode_it(headers: bool) -> None:
    ours = await _decoded(payload_passes.decode_activation, headers)
    theirs = await _decoded(payload_passes.SDK_DECODE_ACTIVATION, headers)
    assert ours == theirs
    assert ours != _activation()  # the codec did decode
    update = ours.jobs[1].do_update
    assert update.input[0] == _plain("request")
    assert (update.headers["trace"] == _plain("uh")) is headers
    # Search attributes are not the codec's: left as they came.
    init = ours.jobs[0].initialize_workflow
    assert init.search_attributes == _search_attributes()


@pytest.mark.parametrize("headers", [True, False])
async def test_a_completion_encodes_as_the_sdks_three_walks_encode_it(headers: bool) -> None:
    ours = await _encoded(payload_passes.encode_completion, headers)
    theirs = await _encoded(payload_passes.SDK_ENCODE_COMPLETION, headers)
    assert ours == theirs
    commands = ours.successful.commands
    assert commands[0].schedule_local_activity.arguments[0] == _wrapped("events")
    assert commands[1].update_response.completed == _wrapped("result")
    assert commands[2].upsert_workflow_search_attributes.search_attributes == (_search_attributes())
    assert (commands[0].schedule_local_activity.headers["t"] == _wrapped("h")) is headers


def _sealed_activation() -> WorkflowActivation:
    """`_activation`'s payloads as CarePath's converter seals them."""
    sealer = payload_sealer(TEST_CONVERTER)
    assert sealer is not None
    return _activation(lambda text: sealer.seal(_plain(text)))


async def test_carepaths_converter_gets_no_walk_and_opens_each_payload_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_visitor(headers: bool) -> None:
        raise AssertionError("walked the payloads of a converter that opens them itself")

    assert payload_passes.no_walk(TEST_CONVERTER)
    sealed = _sealed_activation()
    ours, theirs = WorkflowActivation(), WorkflowActivation()
    ours.CopyFrom(sealed)
    theirs.CopyFrom(sealed)
    await payload_passes.SDK_DECODE_ACTIVATION(theirs, TEST_CONVERTER, True, 4)
    monkeypatch.setattr(payload_passes, "_walker", no_visitor)
    await payload_passes.decode_activation(ours, TEST_CONVERTER, True, 4)
    completion = _completion()
    await payload_passes.encode_completion(completion, TEST_CONVERTER, True, 4)

    # The SDK's walks, with no codec, change nothing either.
    assert ours == theirs == sealed
    assert completion == _completion()
    update = ours.jobs[1].do_update.input[0]
    assert update.metadata["encoding"] == ENCODING
    assert TEST_CONVERTER.payload_converter.from_payloads([update]) == ["request"]


def test_a_converter_that_does_not_seal_its_payloads_itself_still_gets_the_walks() -> None:
    assert not payload_passes.no_walk(PLAIN_CONVERTER)
    assert not payload_passes.no_walk(CONVERTER)


@pytest.mark.parametrize(
    "metadata",
    [
        # Marked as a reference by the codec walk of a worker with external storage.
        {"encoding": b"binary/encrypted", extstore._REFERENCE_MARKER_KEY: b"true"},
        # A reference as the storage driver writes it.
        {"encoding": extstore._REFERENCE_ENCODING},
        {"encoding": b"json/protobuf", "messageType": extstore._REFERENCE_MESSAGE_TYPE},
    ],
)
async def test_an_externally_stored_payload_is_refused_as_the_sdk_refuses_it(
    metadata: dict[str, bytes],
) -> None:
    reference = Payload(metadata=metadata, data=b"{}")
    for walk in (payload_passes.decode_activation, payload_passes.SDK_DECODE_ACTIVATION):
        activation = _activation()
        activation.jobs[1].do_update.input[0].CopyFrom(reference)
        with pytest.raises(RuntimeError, match="TMPRL1105"):
            await walk(activation, CONVERTER, True, 4)
    # CarePath's converter, which no walk precedes, refuses it when the workflow reads it.
    with pytest.raises(RuntimeError, match="TMPRL1105"):
        TEST_CONVERTER.payload_converter.from_payloads([reference])


async def test_a_converter_with_external_storage_gets_the_sdks_walks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    async def sdk_decode(*args: object) -> extstore.StorageOperationMetrics:
        calls.append("decode")
        return extstore.StorageOperationMetrics()

    async def sdk_encode(*args: object) -> extstore.StorageOperationMetrics:
        calls.append("encode")
        return extstore.StorageOperationMetrics()

    monkeypatch.setattr(payload_passes, "SDK_DECODE_ACTIVATION", sdk_decode)
    monkeypatch.setattr(payload_passes, "SDK_ENCODE_COMPLETION", sdk_encode)
    stored = dataclasses.replace(CONVERTER)
    object.__setattr__(stored, "external_storage", object())
    assert not payload_passes.single_walk(stored)
    await payload_passes.decode_activation(_activation(), stored, True, 4)
    await payload_passes.encode_completion(_completion(), stored, True, 4)
    assert calls == ["decode", "encode"]
    # So does one that encodes storage references.
    monkeypatch.setattr(extstore, "_ENCODE_STORAGE_REFERENCES", True)
    assert not payload_passes.single_walk(CONVERTER)


def test_install_puts_the_one_walk_where_the_workflow_worker_calls_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bridge, "decode_activation", payload_passes.SDK_DECODE_ACTIVATION)
    monkeypatch.setattr(bridge, "encode_completion", payload_passes.SDK_ENCODE_COMPLETION)
    payload_passes.install()
    payload_passes.install()
    assert bridge.decode_activation is payload_passes.decode_activation
    assert bridge.encode_completion is payload_passes.encode_completion
