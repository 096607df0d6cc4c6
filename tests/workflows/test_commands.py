"""Commands on a running episode: validation, conflicts, duplicates, continue-as-new."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from asyncpg import Record
from temporalio.client import Client, WorkflowHistory

from domain import commands as c
from domain.decider import DecisionContext, decide
from domain.vocabulary import ConsentScope, LevelOfCare, RecipientKind
from programs import load_catalog
from store.event_store import EventStore
from testing import samples
from testing.episodes import admitted
from workflows.client import CommandRejected, EpisodeClient, EpisodeNotFound
from workflows.messages import EpisodeView, workflow_id_for

ADULT = load_catalog().get("adult-iop")


async def _episode_in_program(episodes: EpisodeClient, ids: samples.CommandIds) -> str:
    episode_id, _ = await admitted(episodes, ids)
    return episode_id


async def _ready_to_step_down(episodes: EpisodeClient, ids: samples.CommandIds) -> str:
    episode_id = await _episode_in_program(episodes, ids)
    await episodes.send(
        episode_id,
        c.RecordRelapsePreventionPlan(
            command_id=ids(), actor=samples.CLINICIAN, plan=samples.RELAPSE_PREVENTION
        ),
    )
    await episodes.send(
        episode_id,
        c.RecordAftercarePlan(command_id=ids(), actor=samples.CLINICIAN, plan=samples.AFTERCARE),
    )
    return episode_id


async def test_concurrent_step_down_and_step_up_apply_exactly_one(
    episodes: EpisodeClient, store: EventStore
) -> None:
    ids = samples.CommandIds("conflict")
    episode_id = await _ready_to_step_down(episodes, ids)
    before = len(await store.read_stream(episode_id))
    step_down = c.StepDown(command_id=ids(), actor=samples.CLINICIAN)
    step_up = c.StepUp(
        command_id=ids(),
        actor=samples.CLINICIAN,
        to_level=LevelOfCare.PHP,
        intent_to_return=False,
        summary="needs partial hospitalization",
    )

    outcomes = await asyncio.gather(
        episodes.send(episode_id, step_down),
        episodes.send(episode_id, step_up),
        return_exceptions=True,
    )

    applied = [o for o in outcomes if not isinstance(o, BaseException)]
    rejected = [o for o in outcomes if isinstance(o, CommandRejected)]
    assert len(applied) == 1
    assert len(rejected) == 1, outcomes
    # Whichever came second finds the episode moved on: aftercare, or closed by the step-up.
    assert rejected[0].code in {"WrongStage", "EpisodeClosed"}
    stored = await store.read_stream(episode_id)
    winner_types = {e.type for e in applied[0].events}
    assert {e.event_type for e in stored[before:]} == winner_types


async def test_duplicated_command_id_is_applied_once_and_answers_the_same(
    episodes: EpisodeClient, store: EventStore
) -> None:
    ids = samples.CommandIds("dup")
    episode_id = await _episode_in_program(episodes, ids)
    now = (await episodes.view(episode_id)).state.referred_at  # type: ignore[union-attr]
    command = samples.session(ids, "s1", now + timedelta(days=2))

    first, second = await asyncio.gather(
        episodes.send(episode_id, command), episodes.send(episode_id, command)
    )
    third = await episodes.send(episode_id, command)

    assert first == second == third
    scheduled = [
        e for e in await store.read_stream(episode_id) if e.event_type == "session_scheduled"
    ]
    assert len(scheduled) == 1


async def test_refused_command_reports_the_domain_error_and_writes_nothing(
    episodes: EpisodeClient, store: EventStore, client: Client
) -> None:
    ids = samples.CommandIds("refused")
    episode_id = await _episode_in_program(episodes, ids)
    await episodes.send(
        episode_id,
        c.RecordRelapsePreventionPlan(
            command_id=ids(), actor=samples.CLINICIAN, plan=samples.RELAPSE_PREVENTION
        ),
    )
    handle = client.get_workflow_handle(workflow_id_for(episode_id))
    stored_before = len(await store.read_stream(episode_id))
    accepted_before = _accepted_updates(await handle.fetch_history())

    with pytest.raises(CommandRejected, match="record an aftercare plan") as caught:
        await episodes.send(episode_id, c.StepDown(command_id=ids(), actor=samples.CLINICIAN))

    assert caught.value.code == "StepDownRequiresAftercarePlan"
    assert len(await store.read_stream(episode_id)) == stored_before
    assert _accepted_updates(await handle.fetch_history()) == accepted_before


def _accepted_updates(history: WorkflowHistory) -> int:
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


async def test_a_tick_cannot_be_sent_by_a_caller(episodes: EpisodeClient) -> None:
    ids = samples.CommandIds("tick")
    episode_id = await _episode_in_program(episodes, ids)
    state = (await episodes.view(episode_id)).state
    assert state is not None

    with pytest.raises(CommandRejected, match="timers") as caught:
        await episodes.send(episode_id, c.Tick(now=state.referred_at + timedelta(days=1)))

    assert caught.value.code == "CommandNotAllowed"


async def test_long_episode_continues_as_new_keeping_state_and_sequence(
    client: Client, make_episodes: Callable[..., EpisodeClient], store: EventStore
) -> None:
    episodes = make_episodes(history_event_limit=60)
    ids = samples.CommandIds("long")
    episode_id = await _episode_in_program(episodes, ids)
    start = (await episodes.view(episode_id)).state.referred_at  # type: ignore[union-attr]
    handle = client.get_workflow_handle(workflow_id_for(episode_id))
    first_run = (await handle.describe()).run_id

    for n in range(20):
        await episodes.send(
            episode_id, samples.session(ids, f"s{n}", start + timedelta(days=30, hours=n * 6))
        )

    latest = await handle.describe()
    stored = await store.read_stream(episode_id)
    view = await episodes.view(episode_id)
    assert latest.run_id != first_run, "the episode continued as new"
    assert view.state is not None
    assert view.state.version == len(stored) == 5 + 20
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert len(view.state.sessions) == 20
    # The next command after the boundary continues the sequence without a gap.
    result = await episodes.send(
        episode_id, samples.session(ids, "after", start + timedelta(days=40))
    )
    assert [e.seq for e in result.events] == [len(stored) + 1]


async def _resolve_reassessment(
    episodes: EpisodeClient, episode_id: str, ids: samples.CommandIds
) -> None:
    """Readmission waits for the reassessment a reported relapse opens."""
    view = await episodes.view(episode_id)
    assert view.state is not None
    for task in view.state.tasks:
        if task.kind.value == "reassessment" and not task.resolved:
            await episodes.send(
                episode_id,
                c.ResolveTask(
                    command_id=ids(),
                    actor=samples.CLINICIAN,
                    task_id=task.task_id,
                    outcome="reassessed: readmit to IOP",
                ),
            )


async def test_readmission_opens_a_new_linked_episode(
    episodes: EpisodeClient, store: EventStore, client: Client
) -> None:
    ids = samples.CommandIds("readmit")
    old_id = await _ready_to_step_down(episodes, ids)
    await episodes.send(old_id, c.StepDown(command_id=ids(), actor=samples.CLINICIAN))
    await episodes.send(old_id, c.ReportRelapse(command_id=ids(), actor=samples.CLINICIAN))
    await _resolve_reassessment(episodes, old_id, ids)
    new_id = str(uuid.uuid4())

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
    readmitted = [e for e in await store.read_stream(old_id) if e.event_type == "client_readmitted"]
    assert readmitted[0].payload["new_episode_id"] == new_id
    new_view = await _eventually_started(episodes, new_id)
    assert new_view.state is not None
    assert new_view.state.readmission_of == old_id
    assert new_view.state.client_ref == "MRN-000001"
    referral = (await store.read_stream(new_id))[0]
    assert referral.event_type == "client_referred"
    assert referral.payload["readmission_of"] == old_id
    # The old episode ends once its notifications are out: terminating it while one is
    # being sent would stop the time-skipping server from skipping time for later tests.
    await client.get_workflow_handle(workflow_id_for(old_id), result_type=EpisodeView).result()
    await client.get_workflow_handle(workflow_id_for(new_id)).terminate(reason="end of test")


async def _eventually_started(episodes: EpisodeClient, episode_id: str) -> EpisodeView:
    # The new episode is started after the readmission has been answered.
    for _ in range(100):
        with contextlib.suppress(EpisodeNotFound):
            view = await episodes.view(episode_id)
            if view.state is not None:
                return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"episode {episode_id} was not opened")


async def test_family_notice_under_active_consent_is_sent(
    episodes: EpisodeClient, store: EventStore
) -> None:
    ids = samples.CommandIds("family")
    episode_id = await _episode_in_program(episodes, ids)
    state = (await episodes.view(episode_id)).state
    assert state is not None
    await episodes.send(
        episode_id,
        c.RecordConsent(
            command_id=ids(),
            actor=samples.CLINICIAN,
            consent_id="consent-1",
            recipient_ref="spouse-1",
            recipient_kind=RecipientKind.FAMILY,
            scopes=(ConsentScope.ATTENDANCE,),
            expires_at=state.referred_at + timedelta(days=180),
        ),
    )

    result = await episodes.send(
        episode_id,
        c.NotifyParty(
            command_id=ids(),
            actor=samples.CLINICIAN,
            recipient_ref="spouse-1",
            recipient_kind=RecipientKind.FAMILY,
            scope=ConsentScope.ATTENDANCE,
        ),
    )

    seq = result.events[0].seq
    rows: list[Record] = []
    for _ in range(100):  # notifications go out after the command has been answered
        rows = await store.pool.fetch(
            "SELECT recipient FROM notifications_sent WHERE episode_id = $1 AND seq = $2",
            episode_id,
            seq,
        )
        if rows:
            break
        await asyncio.sleep(0.05)
    assert [r["recipient"] for r in rows] == ["family:spouse-1"]


async def test_events_stored_by_a_lost_workflow_task_are_adopted_not_contradicted(
    episodes: EpisodeClient, store: EventStore
) -> None:
    """A local activity's append outlives a workflow task whose completion is lost.

    Simulated here by storing the events of command X as that lost task would have. The
    next command finds them, the workflow adopts them, and X's own retry is answered with
    them: the store and the workflow agree, and nothing is stored twice.
    """
    ids = samples.CommandIds("lost")
    episode_id = await _episode_in_program(episodes, ids)
    state = (await episodes.view(episode_id)).state
    assert state is not None
    lost = c.RecordRelapsePreventionPlan(
        command_id=ids(), actor=samples.CLINICIAN, plan=samples.RELAPSE_PREVENTION
    )
    ctx = DecisionContext(
        episode_id=episode_id, now=state.referred_at + timedelta(hours=1), programs=load_catalog()
    )
    orphans = decide(state, lost, ctx)
    await store.append(episode_id, orphans)

    result = await episodes.send(
        episode_id, samples.session(ids, "s1", state.referred_at + timedelta(days=3))
    )
    retried = await episodes.send(episode_id, lost)

    stored = await store.read_stream(episode_id)
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert [e.seq for e in result.events] == [state.version + 2]
    assert retried.events == orphans
    view = (await episodes.view(episode_id)).state
    assert view is not None
    assert view.relapse_prevention_plan == samples.RELAPSE_PREVENTION
    assert view.version == len(stored) == state.version + 2
