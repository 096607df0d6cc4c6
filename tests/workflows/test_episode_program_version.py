"""An episode keeps the program version it was referred under, whatever happens to the
program file, across continue-as-new; `migrate_program` is the one way to move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client

from domain import commands as c
from domain.events import dump_event
from domain.programs import ProgramCatalog, ProgramDefinition, program_digest
from programs import BUILTIN_DIR, load_catalog
from store.event_store import EventStore
from testing import samples
from testing.episodes import admitted
from workflows.client import CommandRejected, EpisodeClient
from workflows.messages import CarePathwayInput, workflow_id_for


def _catalog(directory: Path, version: int, **changes: Any) -> ProgramCatalog:
    """A program directory holding adult-iop at `version`, with `changes` to its settings."""
    data = yaml.safe_load((BUILTIN_DIR / "adult-iop.yaml").read_text(encoding="utf-8"))
    data.update(version=version, **changes)
    directory.mkdir(exist_ok=True)
    (directory / "adult-iop.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_catalog(directory)


def _two_no_shows(escalation: dict[str, Any]) -> dict[str, Any]:
    return {**escalation, "consecutive_no_shows": [1, 2]}


async def _run_input(client: Client, episode_id: str) -> CarePathwayInput:
    """The input the episode's latest run started with (after any continue-as-new)."""
    history = await client.get_workflow_handle(workflow_id_for(episode_id)).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [inp] = await client.data_converter.decode(started.input.payloads, [CarePathwayInput])
    assert isinstance(inp, CarePathwayInput)
    return inp


async def _sessions(
    episodes: EpisodeClient, episode_id: str, ids: samples.CommandIds, count: int
) -> None:
    view = await episodes.view(episode_id)
    assert view.state is not None
    start = view.state.referred_at
    for n in range(count):
        await episodes.send(
            episode_id, samples.session(ids, f"s{n}", start + timedelta(days=30, hours=n * 6))
        )


async def test_given_an_episode_under_version_1_when_the_program_file_changes_then_it_keeps_version_1_across_continue_as_new(
    client: Client, make_episodes: Callable[..., EpisodeClient], tmp_path: Path
) -> None:
    v1 = _catalog(tmp_path / "v1", 1).get("adult-iop")
    episodes = make_episodes(history_event_limit=60)
    ids = samples.CommandIds("keep")
    episode_id, _ = await admitted(episodes, ids, program=v1)
    first_run = (await client.get_workflow_handle(workflow_id_for(episode_id)).describe()).run_id

    # The program file changes: the clinic escalates after 2 no-shows instead of 3.
    escalation = v1.escalation.model_dump(mode="json")
    v2 = _catalog(tmp_path / "v2", 2, escalation=_two_no_shows(escalation)).get("adult-iop")
    assert v2.version == 2
    assert program_digest(v2) != program_digest(v1)
    newcomer, _ = await admitted(episodes, samples.CommandIds("new"), program=v2)
    await _sessions(episodes, episode_id, ids, 20)

    handle = client.get_workflow_handle(workflow_id_for(episode_id))
    assert (await handle.describe()).run_id != first_run, "the episode continued as new"
    view = await episodes.view(episode_id)
    assert view.state is not None
    assert (view.state.program_version, view.state.program_digest) == (1, program_digest(v1))
    carried = (await _run_input(client, episode_id)).program
    assert carried == v1
    assert carried.escalation.consecutive_no_shows == (1, 2, 3)
    newer = await episodes.view(newcomer)
    assert newer.state is not None
    assert newer.state.program_version == 2


async def test_given_a_migrated_episode_when_it_continues_as_new_then_the_new_run_uses_the_new_version(
    client: Client,
    make_episodes: Callable[..., EpisodeClient],
    store: EventStore,
    tmp_path: Path,
) -> None:
    v1 = _catalog(tmp_path / "v1", 1).get("adult-iop")
    escalation = v1.escalation.model_dump(mode="json")
    v2 = _catalog(tmp_path / "v2", 2, escalation=_two_no_shows(escalation)).get("adult-iop")
    episodes = make_episodes(history_event_limit=60)
    ids = samples.CommandIds("migrate")
    episode_id, _ = await admitted(episodes, ids, program=v1)

    result = await episodes.send(
        episode_id,
        c.MigrateProgram(
            command_id=ids(),
            actor=samples.SUPERVISOR,
            to_version=2,
            program=v2,
            reason="clinic adopted the 2-no-show escalation",
        ),
    )
    await _sessions(episodes, episode_id, ids, 20)

    [migrated] = result.events
    assert migrated.type == "program_migrated"
    stored = [e for e in await store.read_stream(episode_id) if e.event_type == "program_migrated"]
    assert [e.payload for e in stored] == [dump_event(migrated)]
    assert stored[0].payload["to_digest"] == program_digest(v2)
    view = await episodes.view(episode_id)
    assert view.state is not None
    assert view.state.program_version == 2
    carried: ProgramDefinition = (await _run_input(client, episode_id)).program
    assert carried == v2


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"phases": [{"id": "other", "name": "Other", "duration": "P12W"}]}, "phase"),
        ({"level_of_care": "php"}, "php program"),
    ],
)
async def test_given_a_version_that_cannot_carry_the_episode_when_it_is_migrated_to_then_it_is_refused_and_nothing_is_stored(
    episodes: EpisodeClient,
    store: EventStore,
    tmp_path: Path,
    change: dict[str, Any],
    reason: str,
) -> None:
    v1 = _catalog(tmp_path / "v1", 1).get("adult-iop")
    other = _catalog(tmp_path / "v2", 2, **change).get("adult-iop")
    ids = samples.CommandIds("refuse")
    episode_id, _ = await admitted(episodes, ids, program=v1)
    before = len(await store.read_stream(episode_id))

    with pytest.raises(CommandRejected, match=reason) as caught:
        await episodes.send(
            episode_id,
            c.MigrateProgram(
                command_id=ids(), actor=samples.SUPERVISOR, to_version=2, program=other
            ),
        )

    assert caught.value.code == "ProgramVersionIncompatible"
    assert len(await store.read_stream(episode_id)) == before
