"""The CarePathway workflow on the time-skipping server, with a real worker and event store."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from domain.actors import Actor, Role
from domain.commands import ReferClient, ReferralSource
from domain.events import ClientReferred
from domain.state import Stage
from programs import load_catalog
from store.event_store import EventStore
from workflows.client import CommandRejected, EpisodeClient, EpisodeNotFound
from workflows.messages import workflow_id_for

PROGRAMS = load_catalog()
INTAKE = Actor(user_id="intake-1", role=Role.INTAKE_COORDINATOR)


def referral(program_id: str = "adult-iop", command_id: str | None = None) -> ReferClient:
    return ReferClient(
        command_id=command_id or f"cmd-{uuid.uuid4().hex}",
        actor=INTAKE,
        client_ref="MRN-1001",
        program_id=program_id,
        referral_source=ReferralSource.PRIMARY_CARE,
    )


class TestReferral:
    """A referral starts the episode's workflow and is in the event store before it returns."""

    async def test_referral_persists_client_referred_before_answering(
        self, episodes: EpisodeClient, store: EventStore
    ) -> None:
        episode_id = str(uuid.uuid4())
        result = await episodes.refer(episode_id, referral(), PROGRAMS.get("adult-iop"))

        assert result.state.stage is Stage.REFERRED
        stored = await store.read_stream(episode_id)
        assert [e.event_type for e in stored] == ["client_referred"]
        event = stored[0].event
        assert isinstance(event, ClientReferred)
        assert event.seq == 1
        assert event.program_id == "adult-iop"
        assert event.actor == INTAKE

    async def test_state_query_returns_the_referred_episode(self, episodes: EpisodeClient) -> None:
        episode_id = str(uuid.uuid4())
        await episodes.refer(episode_id, referral(), PROGRAMS.get("adult-iop"))

        view = await episodes.view(episode_id)

        assert view.workflow_id == workflow_id_for(episode_id)
        assert view.state is not None
        assert view.state.client_ref == "MRN-1001"
        assert view.state.version == 1

    async def test_same_command_id_twice_is_applied_once(
        self, episodes: EpisodeClient, store: EventStore
    ) -> None:
        episode_id = str(uuid.uuid4())
        command = referral()
        first = await episodes.refer(episode_id, command, PROGRAMS.get("adult-iop"))
        second = await episodes.refer(episode_id, command, PROGRAMS.get("adult-iop"))

        assert second == first
        assert len(await store.read_stream(episode_id)) == 1

    async def test_second_referral_for_the_same_episode_is_refused(
        self, episodes: EpisodeClient, store: EventStore
    ) -> None:
        episode_id = str(uuid.uuid4())
        await episodes.refer(episode_id, referral(), PROGRAMS.get("adult-iop"))

        with pytest.raises(CommandRejected, match="already exists") as caught:
            await episodes.refer(episode_id, referral(), PROGRAMS.get("adult-iop"))

        assert caught.value.code == "EpisodeAlreadyStarted"
        assert len(await store.read_stream(episode_id)) == 1

    async def test_rejected_referral_leaves_no_update_in_history(
        self, client: Client, episodes: EpisodeClient, store: EventStore
    ) -> None:
        episode_id = str(uuid.uuid4())
        await episodes.refer(episode_id, referral(), PROGRAMS.get("adult-iop"))
        with pytest.raises(CommandRejected):
            await episodes.refer(episode_id, referral(), PROGRAMS.get("adult-iop"))

        history = await client.get_workflow_handle(workflow_id_for(episode_id)).fetch_history()
        accepted = [
            e
            for e in history.events
            if e.HasField("workflow_execution_update_accepted_event_attributes")
        ]
        assert len(accepted) == 1

    async def test_referral_sets_stage_and_program_search_attributes(
        self, client: Client, episodes: EpisodeClient
    ) -> None:
        episode_id = str(uuid.uuid4())
        await episodes.refer(episode_id, referral("adolescent-iop"), PROGRAMS.get("adolescent-iop"))

        description = await client.get_workflow_handle(workflow_id_for(episode_id)).describe()

        assert description.status is WorkflowExecutionStatus.RUNNING
        attributes = {k.name: v for k, v in description.typed_search_attributes}
        assert attributes["CarePathwayStage"] == "referred"
        assert attributes["ProgramId"] == "adolescent-iop"

    async def test_unknown_episode_is_reported_as_not_found(self, episodes: EpisodeClient) -> None:
        with pytest.raises(EpisodeNotFound, match="no episode"):
            await episodes.view(str(uuid.uuid4()))
