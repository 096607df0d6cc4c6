"""Program scoping in the workflow: the caller's programs travel with each command, and
the update validator refuses an episode of any other program before anything is written."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client, WorkflowHistory

from domain import commands as c
from programs import load_catalog
from store.event_store import EventStore
from testing import samples
from workflows.client import EpisodeClient, EpisodeNotFound, EpisodeOutsidePrograms
from workflows.messages import workflow_id_for

ADULT = load_catalog().get("adult-iop")


async def _referred(episodes: EpisodeClient, ids: samples.CommandIds) -> str:
    episode_id = str(uuid.uuid4())
    await episodes.refer(episode_id, samples.referral(ids), ADULT)
    return episode_id


def _accepted_updates(history: WorkflowHistory) -> int:
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


async def test_given_an_adult_episode_when_a_command_carries_only_other_programs_then_the_validator_refuses_it_as_not_found_and_nothing_is_written(
    episodes: EpisodeClient, store: EventStore, client: Client
) -> None:
    ids = samples.CommandIds("scope-out")
    episode_id = await _referred(episodes, ids)
    handle = client.get_workflow_handle(workflow_id_for(episode_id))
    stored_before = await store.read_stream(episode_id)
    accepted_before = _accepted_updates(await handle.fetch_history())
    screening = samples.admission(ids)[0]

    for programs in (("adolescent-iop",), ()):
        with pytest.raises(EpisodeOutsidePrograms) as caught:
            await episodes.send(episode_id, screening, programs=programs)
        assert isinstance(caught.value, EpisodeNotFound)
        assert caught.value.code == "EpisodeNotFound"
        assert caught.value.message == (
            f"no episode {episode_id!r} in your programs: check the id (it is returned on referral)"
        )

    assert await store.read_stream(episode_id) == stored_before
    assert _accepted_updates(await handle.fetch_history()) == accepted_before


async def test_given_an_adult_episode_when_a_command_carries_its_program_or_every_program_then_it_is_applied(
    episodes: EpisodeClient, store: EventStore
) -> None:
    ids = samples.CommandIds("scope-in")
    episode_id = await _referred(episodes, ids)
    screening, assessment, *_ = samples.admission(ids)

    scoped = await episodes.send(episode_id, screening, programs=("drill", "adult-iop"))
    unscoped = await episodes.send(episode_id, assessment, programs=None)

    assert [e.type for e in scoped.events][:1] == ["screening_recorded"]
    assert unscoped.events
    assert len(await store.read_stream(episode_id)) == 1 + len(scoped.events) + len(unscoped.events)


async def test_given_a_command_applied_before_when_a_caller_outside_the_program_repeats_its_id_then_the_answer_is_not_found(
    episodes: EpisodeClient,
) -> None:
    ids = samples.CommandIds("scope-repeat")
    episode_id = await _referred(episodes, ids)
    screening = samples.admission(ids)[0]
    await episodes.send(episode_id, screening)
    # Same command id, another caller (another request, so another update id).
    repeat = c.RecordScreening(
        command_id=screening.command_id, actor=samples.DIRECTOR, findings=samples.ELIGIBLE
    )

    with pytest.raises(EpisodeOutsidePrograms):
        await episodes.send(episode_id, repeat, programs=("adolescent-iop",))
