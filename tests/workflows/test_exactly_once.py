"""A command id applies once for the whole life of an episode, and the store has the last word.

Temporal deduplicates update ids within one run; these tests cross continue-as-new (a
small `history_event_limit`), restart an episode without the carried command-id filter,
and break the store on purpose (a constraint, a gap) with real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from occupant import Occupant
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
)
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.worker import Worker

from domain import commands as c
from domain.decider import fold
from domain.vocabulary import ConsentScope, DischargeReason, RecipientKind
from programs import load_catalog
from store.db import Pool
from store.event_store import EventStore
from testing import samples
from testing.episodes import admitted
from workflows.care_pathway import CarePathwayWorkflow
from workflows.client import CommandRejected, EpisodeClient, EpisodeNotFound
from workflows.messages import CarePathwayInput, EpisodeView, workflow_id_for

ADULT = load_catalog().get("adult-iop")

EpisodeFactory = Callable[..., EpisodeClient]


async def _consent_to_family(
    episodes: EpisodeClient, episode_id: str, ids: samples.CommandIds, start: datetime
) -> c.NotifyParty:
    """Record a family consent; return a notice that the decider would accept every time."""
    await episodes.send(
        episode_id,
        c.RecordConsent(
            command_id=ids(),
            actor=samples.CLINICIAN,
            consent_id="consent-1",
            recipient_ref="spouse-1",
            recipient_kind=RecipientKind.FAMILY,
            scopes=(ConsentScope.ATTENDANCE,),
            expires_at=start + timedelta(days=180),
        ),
    )
    return c.NotifyParty(
        command_id=ids(),
        actor=samples.CLINICIAN,
        recipient_ref="spouse-1",
        recipient_kind=RecipientKind.FAMILY,
        scope=ConsentScope.ATTENDANCE,
    )


async def _continue_as_new(
    client: Client,
    episodes: EpisodeClient,
    episode_id: str,
    ids: samples.CommandIds,
    start: datetime,
) -> None:
    """Schedule sessions until the episode's workflow has continued as new."""
    handle = client.get_workflow_handle(workflow_id_for(episode_id))
    first_run = (await handle.describe()).run_id
    for n in range(40):
        await episodes.send(
            episode_id,
            samples.session(ids, f"filler-{n}", start + timedelta(days=30, hours=6 * n)),
        )
        if (await handle.describe()).run_id != first_run:
            return
    raise AssertionError("the episode did not continue as new")


async def _notified(store: EventStore, episode_id: str, seq: int) -> None:
    """Wait until the notice at `seq` went out (the time-skipping server stops skipping
    time for good if a workflow is terminated while an activity of it runs)."""
    for _ in range(200):
        if await store.pool.fetchval(
            "SELECT 1 FROM notifications_sent WHERE episode_id = $1 AND seq = $2", episode_id, seq
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the notice at seq {seq} was not sent")


def _accepted_updates(history: WorkflowHistory) -> int:
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


class TestRepeatsAcrossRuns:
    """A repeat is answered with the first events, whichever run receives it."""

    async def test_command_resent_after_continue_as_new_answers_with_its_first_events(
        self, client: Client, make_episodes: EpisodeFactory, store: EventStore
    ) -> None:
        episodes = make_episodes(history_event_limit=60)
        ids = samples.CommandIds("again")
        episode_id, start = await admitted(episodes, ids)
        notice = await _consent_to_family(episodes, episode_id, ids, start)
        session = samples.session(ids, "s1", start + timedelta(days=2))
        first_notice = await episodes.send(episode_id, notice)
        first_session = await episodes.send(episode_id, session)
        await _continue_as_new(client, episodes, episode_id, ids, start)
        stored_before = await store.read_stream(episode_id)

        # A notice the decider would accept again, and a session it would now refuse.
        notice_again = await episodes.send(episode_id, notice)
        session_again = await episodes.send(episode_id, session)

        assert notice_again.events == first_notice.events
        assert session_again.events == first_session.events
        stored = await store.read_stream(episode_id)
        assert stored == stored_before
        assert [e.event_type for e in stored].count("party_notified") == 1

    async def test_referral_resent_after_continue_as_new_answers_with_the_referral(
        self, client: Client, make_episodes: EpisodeFactory, store: EventStore
    ) -> None:
        episodes = make_episodes(history_event_limit=60)
        ids = samples.CommandIds("refer-again")
        episode_id = str(uuid.uuid4())
        referral = samples.referral(ids)
        first = await episodes.refer(episode_id, referral, ADULT)
        for command in samples.admission(ids):
            await episodes.send(episode_id, command)
        assert first.state is not None
        await _continue_as_new(client, episodes, episode_id, ids, first.state.referred_at)

        again = await episodes.refer(episode_id, referral, ADULT)

        assert again.events == first.events
        assert len([e for e in await store.read_stream(episode_id) if e.seq == 1]) == 1

    async def test_the_store_answers_a_repeat_the_run_has_no_record_of(
        self, client: Client, episodes: EpisodeClient, store: EventStore, task_queue: str
    ) -> None:
        """An episode continued as new before runs carried their command ids: the
        validator judges the repeat as new, and the store's lookup answers it."""
        ids = samples.CommandIds("arbiter")
        episode_id, start = await admitted(episodes, ids)
        notice = await _consent_to_family(episodes, episode_id, ids, start)
        first = await episodes.send(episode_id, notice)
        await _notified(store, episode_id, first.events[0].seq)
        handle = client.get_workflow_handle(workflow_id_for(episode_id))
        await handle.terminate(reason="replaced by a run without the command-id filter")
        stored_before = await store.read_stream(episode_id)
        await client.start_workflow(
            CarePathwayWorkflow.run,
            CarePathwayInput(
                episode_id=episode_id,
                program=ADULT,
                snapshot=fold(e.event for e in stored_before),
            ),
            id=workflow_id_for(episode_id),
            task_queue=task_queue,
        )

        again = await episodes.send(episode_id, notice)

        assert again.events == first.events
        assert await store.read_stream(episode_id) == stored_before


class TestIdempotencyKeyReused:
    """The same command id with another request is refused, and nothing is written."""

    async def test_same_id_with_another_body_is_refused_before_history(
        self, client: Client, episodes: EpisodeClient, store: EventStore
    ) -> None:
        ids = samples.CommandIds("reused")
        episode_id, start = await admitted(episodes, ids)
        first = samples.session(ids, "s1", start + timedelta(days=2))
        other = first.model_copy(update={"starts_at": start + timedelta(days=3)})
        await episodes.send(episode_id, first)
        handle = client.get_workflow_handle(workflow_id_for(episode_id))
        stored_before = await store.read_stream(episode_id)
        accepted_before = _accepted_updates(await handle.fetch_history())

        with pytest.raises(CommandRejected, match="already used for a different request") as err:
            await episodes.send(episode_id, other)

        assert err.value.code == "IdempotencyKeyReused"
        assert await store.read_stream(episode_id) == stored_before
        assert _accepted_updates(await handle.fetch_history()) == accepted_before
        # The first request, sent again, is still answered.
        assert (await episodes.send(episode_id, first)).events[0].seq == stored_before[-1].seq

    async def test_same_id_with_another_body_after_continue_as_new_is_refused_by_the_store(
        self, client: Client, make_episodes: EpisodeFactory, store: EventStore
    ) -> None:
        episodes = make_episodes(history_event_limit=60)
        ids = samples.CommandIds("reused-later")
        episode_id, start = await admitted(episodes, ids)
        first = samples.session(ids, "s1", start + timedelta(days=2))
        await episodes.send(episode_id, first)
        await _continue_as_new(client, episodes, episode_id, ids, start)
        stored_before = await store.read_stream(episode_id)

        with pytest.raises(CommandRejected) as err:
            await episodes.send(
                episode_id, first.model_copy(update={"starts_at": start + timedelta(days=3)})
            )

        assert err.value.code == "IdempotencyKeyReused"
        assert await store.read_stream(episode_id) == stored_before


class TestStoreFailures:
    """A store failure no retry can fix fails that command at once; the episode goes on."""

    async def test_refused_append_fails_the_command_and_the_next_command_succeeds(
        self, owner_pool: Pool, episodes: EpisodeClient, store: EventStore
    ) -> None:
        ids = samples.CommandIds("refused-append")
        episode_id, start = await admitted(episodes, ids)
        await owner_pool.execute(
            "ALTER TABLE events ADD CONSTRAINT no_poison "
            "CHECK (payload->>'session_id' IS DISTINCT FROM 'poison')"
        )
        stored_before = await store.read_stream(episode_id)

        with pytest.raises(CommandRejected, match="no_poison") as err:
            await asyncio.wait_for(
                episodes.send(episode_id, samples.session(ids, "poison", start + timedelta(1))),
                timeout=20,
            )
        result = await asyncio.wait_for(
            episodes.send(episode_id, samples.session(ids, "s2", start + timedelta(days=2))),
            timeout=20,
        )

        assert err.value.code == "StoreRefused"
        assert [e.seq for e in result.events] == [stored_before[-1].seq + 1]
        view = await episodes.view(episode_id)
        assert view.state is not None
        assert [s.session_id for s in view.state.sessions] == ["s2"]

    async def test_append_conflict_fails_the_command_at_once(
        self, owner_pool: Pool, episodes: EpisodeClient, store: EventStore
    ) -> None:
        """The store lost the last event (restored from an older backup): the workflow's
        next event would leave a gap, which no retry mends."""
        ids = samples.CommandIds("gap")
        episode_id, start = await admitted(episodes, ids)
        async with owner_pool.acquire() as conn, conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_refuse_update_delete")
            await conn.execute(
                "DELETE FROM events WHERE episode_id = $1 AND seq = "
                "(SELECT max(seq) FROM events WHERE episode_id = $1)",
                episode_id,
            )
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_refuse_update_delete")

        with pytest.raises(CommandRejected, match="gap") as err:
            await asyncio.wait_for(
                episodes.send(episode_id, samples.session(ids, "s1", start + timedelta(1))),
                timeout=20,
            )

        assert err.value.code == "AppendConflict"


class TestRunsWithoutAnEpisode:
    async def test_refused_referral_leaves_no_running_workflow(
        self, client: Client, episodes: EpisodeClient
    ) -> None:
        episode_id = str(uuid.uuid4())
        referral = samples.referral(samples.CommandIds("nowhere"), program_id="no-such-program")

        with pytest.raises(CommandRejected) as err:
            await episodes.refer(episode_id, referral, ADULT)

        assert err.value.code == "UnknownProgram"
        handle = client.get_workflow_handle(workflow_id_for(episode_id), result_type=EpisodeView)
        assert (await handle.result()).state is None
        assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED


class TestSearchAttributesAcrossRuns:
    async def test_value_that_becomes_empty_after_continue_as_new_is_unset(
        self, client: Client, make_episodes: EpisodeFactory
    ) -> None:
        episodes = make_episodes(history_event_limit=60)
        ids = samples.CommandIds("visibility")
        episode_id, start = await admitted(episodes, ids)
        await _continue_as_new(client, episodes, episode_id, ids, start)
        handle = client.get_workflow_handle(workflow_id_for(episode_id), result_type=EpisodeView)
        assert (await _attributes(client, episode_id))["NextDeadline"] is not None

        # Discharge leaves nothing pending: the next deadline becomes empty.
        await episodes.send(
            episode_id,
            c.Discharge(
                command_id=ids(),
                actor=samples.SUPERVISOR,
                discharge_reason=DischargeReason.AGAINST_ADVICE,
                summary="stopped attending after week one",
            ),
        )
        await handle.result()

        attributes = await _attributes(client, episode_id)
        assert attributes.get("NextDeadline") is None
        assert attributes["CarePathwayStage"] == "discharged"


async def _described(client: Client, episode_id: str) -> DescribeWorkflowExecutionResponse:
    # The raw answer: the time-skipping server keeps an unset datetime attribute as a null,
    # which the SDK's `describe()` cannot decode.
    return await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id_for(episode_id)),
        )
    )


async def _attributes(client: Client, episode_id: str) -> dict[str, object]:
    """The search attributes of the episode's latest run; None for an unset one."""
    described = await _described(client, episode_id)
    fields = described.workflow_execution_info.search_attributes.indexed_fields
    return {name: json.loads(payload.data or b"null") for name, payload in fields.items()}


class TestReadmissionStart:
    async def test_readmission_start_is_retried_until_the_new_episode_id_is_free(
        self, client: Client, episodes: EpisodeClient
    ) -> None:
        ids = samples.CommandIds("readmit-retry")
        old_id, _ = await admitted(episodes, ids)
        for command in (
            c.RecordRelapsePreventionPlan(
                command_id=ids(), actor=samples.CLINICIAN, plan=samples.RELAPSE_PREVENTION
            ),
            c.RecordAftercarePlan(
                command_id=ids(), actor=samples.CLINICIAN, plan=samples.AFTERCARE
            ),
            c.StepDown(command_id=ids(), actor=samples.CLINICIAN),
            c.ReportRelapse(command_id=ids(), actor=samples.CLINICIAN),
        ):
            await episodes.send(old_id, command)
        view = await episodes.view(old_id)
        assert view.state is not None
        reassessment = next(t for t in view.state.tasks if t.kind.value == "reassessment")
        await episodes.send(
            old_id,
            c.ResolveTask(
                command_id=ids(),
                actor=samples.CLINICIAN,
                task_id=reassessment.task_id,
                outcome="reassessed: readmit to IOP",
            ),
        )
        new_id = str(uuid.uuid4())
        # Something else holds the new episode's workflow id for a while.
        queue = f"occupant-{uuid.uuid4().hex[:8]}"
        async with Worker(client, task_queue=queue, workflows=[Occupant]):
            occupant = await client.start_workflow(
                Occupant.run, id=workflow_id_for(new_id), task_queue=queue
            )

            result = await episodes.send(
                old_id,
                c.ReadmitClient(
                    command_id=ids(),
                    actor=samples.CLINICIAN,
                    new_episode_id=new_id,
                    summary="relapse after 3 months; reassessed for IOP",
                ),
            )

            assert result.stage == "discharged"
            running = WorkflowExecutionStatus.RUNNING.value
            assert (await _described(client, old_id)).workflow_execution_info.status == running
            await occupant.terminate(reason="the id is free again")
        # The old episode ends once its readmission's new episode is started (awaiting
        # its result lets the time-skipping server skip the retry's backoff).
        await client.get_workflow_handle(workflow_id_for(old_id), result_type=EpisodeView).result()
        new_view = await _started(episodes, new_id)
        assert new_view.state is not None
        assert new_view.state.readmission_of == old_id
        await client.get_workflow_handle(workflow_id_for(new_id)).terminate(reason="end of test")


async def _started(episodes: EpisodeClient, episode_id: str) -> EpisodeView:
    for _ in range(100):
        with contextlib.suppress(EpisodeNotFound, CommandRejected):
            view = await episodes.view(episode_id)
            if view.state is not None:
                return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"episode {episode_id} was not opened")
