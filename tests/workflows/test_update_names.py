"""Readable histories: each staff command under its own update name, summaries on timers,
activities and the workflow start; the older `command` update still applies commands."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.embedded_temporal import find_binary
from domain import commands as c
from domain.vocabulary import AttendanceStatus
from programs import load_catalog
from store.event_store import EventStore
from testing import samples
from testing.episodes import admitted
from testing.payload_keys import TEST_CONVERTER
from workers.temporal import register_search_attributes
from workflows.client import EpisodeClient
from workflows.messages import (
    COMMAND_UPDATE,
    WORKFLOW_NAME,
    CarePathwayInput,
    CommandRequest,
    CommandResult,
    update_id_for,
    workflow_id_for,
)

ADULT = load_catalog().get("adult-iop")


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own: the shared one can be left unable to
    skip time by an earlier test (see test_full_episode), and one test here sleeps a day."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=TEST_CONVERTER,
    )
    try:
        await register_search_attributes(env.client, env.client.namespace)
        yield env
    finally:
        await env.shutdown()


async def _summary(client: Client, payload: Payload) -> str:
    """A summary as the UI shows it through the codec server: decoded, then read."""
    [text] = await client.data_converter.decode([payload], [str])
    assert isinstance(text, str)
    return text


def _update_names(history: WorkflowHistory) -> list[str]:
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


async def _summaries(client: Client, history: WorkflowHistory, event_type: int) -> list[str]:
    return [
        await _summary(client, e.user_metadata.summary)
        for e in history.events
        if e.event_type == event_type and e.user_metadata.HasField("summary")
    ]


async def _session_command(
    env: WorkflowEnvironment, ids: samples.CommandIds, session_id: str
) -> c.ScheduleSession:
    tomorrow = await env.get_current_time() + timedelta(days=1)
    return samples.session(ids, session_id, tomorrow.replace(hour=17, minute=0, second=0))


async def test_given_an_admitted_episode_when_a_command_is_sent_under_its_type_name_then_it_is_applied(
    time_skipping_env: WorkflowEnvironment, episodes: EpisodeClient, store: EventStore
) -> None:
    ids = samples.CommandIds("named")
    episode_id, _ = await admitted(episodes, ids)
    command = await _session_command(time_skipping_env, ids, "s-1")
    handle = time_skipping_env.client.get_workflow_handle(workflow_id_for(episode_id))

    result = await handle.execute_update(
        "schedule_session",
        CommandRequest(command=command),
        id=update_id_for(command),
        result_type=CommandResult,
    )

    assert [e.type for e in result.events] == ["session_scheduled"]
    stored = await store.read_stream(episode_id)
    assert stored[-1].event_type == "session_scheduled"
    assert stored[-1].event.command_id == command.command_id


async def test_given_an_admitted_episode_when_a_command_is_sent_under_the_command_update_then_it_is_still_applied(
    time_skipping_env: WorkflowEnvironment, episodes: EpisodeClient, store: EventStore
) -> None:
    ids = samples.CommandIds("legacy")
    episode_id, _ = await admitted(episodes, ids)
    command = await _session_command(time_skipping_env, ids, "s-1")
    handle = time_skipping_env.client.get_workflow_handle(workflow_id_for(episode_id))

    result = await handle.execute_update(
        COMMAND_UPDATE,
        CommandRequest(command=command),
        id=update_id_for(command),
        result_type=CommandResult,
    )

    assert [e.type for e in result.events] == ["session_scheduled"]
    assert _update_names(await handle.fetch_history())[-1] == COMMAND_UPDATE
    assert (await store.read_stream(episode_id))[-1].event_type == "session_scheduled"


async def test_given_an_update_named_after_another_command_when_it_is_sent_then_it_is_refused_before_history(
    time_skipping_env: WorkflowEnvironment, episodes: EpisodeClient, store: EventStore
) -> None:
    ids = samples.CommandIds("misnamed")
    episode_id, _ = await admitted(episodes, ids)
    before = len(await store.read_stream(episode_id))
    command = await _session_command(time_skipping_env, ids, "s-1")
    handle = time_skipping_env.client.get_workflow_handle(workflow_id_for(episode_id))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            "discharge",
            CommandRequest(command=command),
            id=f"misnamed-{uuid.uuid4()}",
            result_type=CommandResult,
        )

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "InvalidCommand"
    assert "discharge" not in _update_names(await handle.fetch_history())
    assert len(await store.read_stream(episode_id)) == before


async def test_given_an_episode_through_a_session_when_its_history_is_read_then_it_names_each_command_and_summarises_timers_and_activities(
    time_skipping_env: WorkflowEnvironment, episodes: EpisodeClient
) -> None:
    ids = samples.CommandIds("readable")
    episode_id, _ = await admitted(episodes, ids)
    schedule = await _session_command(time_skipping_env, ids, "s-3")
    await episodes.send(episode_id, schedule)
    await time_skipping_env.sleep(
        schedule.starts_at + timedelta(hours=1) - await time_skipping_env.get_current_time()
    )
    await episodes.send(
        episode_id,
        c.RecordAttendance(
            command_id=ids(),
            actor=samples.CLINICIAN,
            session_id="s-3",
            status=AttendanceStatus.ATTENDED,
        ),
    )
    client = time_skipping_env.client

    history = await client.get_workflow_handle(workflow_id_for(episode_id)).fetch_history()

    assert _update_names(history) == [
        "refer_client",
        "record_screening",
        "record_assessment",
        "admit_client",
        "record_treatment_plan",
        "schedule_session",
        "record_attendance",
    ]
    started = history.events[0]
    assert (
        await _summary(client, started.user_metadata.summary) == f"adult-iop episode {episode_id}"
    )
    timers = await _summaries(client, history, EventType.EVENT_TYPE_TIMER_STARTED)
    assert "no-show check for session s-3" in timers
    assert all(summary for summary in timers)
    appends = await _summaries(client, history, EventType.EVENT_TYPE_MARKER_RECORDED)
    assert "append 1 event" in appends


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class WorkflowBeforeUpdateNames:
    """A CarePathway as workers knew it before per-command names: one `command` update."""

    @workflow.run
    async def run(self, inp: CarePathwayInput) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update(name=COMMAND_UPDATE)
    async def command(self, request: CommandRequest) -> CommandResult:
        return CommandResult(
            episode_id=workflow.info().workflow_id, events=(), version=0, stage="referred"
        )


async def test_given_a_worker_that_predates_update_names_when_commands_are_sent_then_they_go_as_the_command_update(
    client: Client,
) -> None:
    task_queue = f"tq-old-{uuid.uuid4().hex[:8]}"
    episodes = EpisodeClient(client, task_queue)
    ids = samples.CommandIds("old-worker")
    episode_id = str(uuid.uuid4())
    async with Worker(client, task_queue=task_queue, workflows=[WorkflowBeforeUpdateNames]):
        referred = await episodes.refer(episode_id, samples.referral(ids), ADULT)
        screened = await episodes.send(episode_id, samples.admission(ids)[0])
        handle = client.get_workflow_handle(workflow_id_for(episode_id))
        names = _update_names(await handle.fetch_history())
        await handle.terminate(reason="end of test")

    assert referred.stage == screened.stage == "referred"
    assert names == [COMMAND_UPDATE, COMMAND_UPDATE]
