"""What keeps one worker's memory and replay bounded: the workflow cache and continue-as-new.

`python -m bench.scale` measures both; these tests hold the mechanisms in place.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import Client

from store.event_store import EventStore
from testing import samples
from testing.episodes import admitted
from workers.replay import run_histories
from workers.settings import Settings
from workers.worker import build_worker
from workflows.client import EpisodeClient
from workflows.messages import DEFAULT_HISTORY_EVENT_LIMIT, workflow_id_for

# A run continues as new after the change that crossed the bound: a command's update,
# its append and its notifications take at most this many events past it.
OVERSHOOT = 20
# Each session scheduled takes about six history events: this many cross the bound.
SESSIONS = DEFAULT_HISTORY_EVENT_LIMIT // 4


async def test_given_the_default_bound_when_an_episode_grows_past_it_then_every_run_stays_near_it(
    episodes: EpisodeClient, client: Client, store: EventStore
) -> None:
    ids = samples.CommandIds("bound")
    episode_id, referred_at = await admitted(episodes, ids)
    first = referred_at + timedelta(days=30)
    for n in range(SESSIONS):
        await episodes.send(
            episode_id, samples.session(ids, f"s{n}", first + timedelta(days=n), hours=3)
        )

    runs = await run_histories(client, workflow_id_for(episode_id))
    view = await episodes.view(episode_id)

    assert len(runs) >= 2
    assert max(len(run.events) for run in runs) <= DEFAULT_HISTORY_EVENT_LIMIT + OVERSHOOT
    assert view.state is not None
    assert view.state.version == len(await store.read_stream(episode_id)) == 5 + SESSIONS
    assert len(view.state.sessions) == SESSIONS


async def test_given_a_cache_size_when_the_worker_is_built_then_it_caches_at_most_that_many(
    client: Client, store: EventStore
) -> None:
    worker = build_worker(client, store, "tq-cache", max_cached_workflows=7)

    assert worker.config()["max_cached_workflows"] == 7


def test_given_the_environment_when_settings_are_read_then_cache_size_and_bound_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAREPATH_WORKER_MAX_CACHED_WORKFLOWS", "250")
    monkeypatch.setenv("CAREPATH_HISTORY_EVENT_LIMIT", "400")

    settings = Settings()

    assert settings.worker_max_cached_workflows == 250
    assert settings.history_event_limit == 400
    assert Settings.model_fields["history_event_limit"].default is None


async def test_given_a_burst_of_concurrent_commands_past_the_bound_then_each_is_applied_once_and_the_run_continues(
    episodes: EpisodeClient, client: Client, store: EventStore
) -> None:
    ids = samples.CommandIds("burst")
    episode_id, referred_at = await admitted(episodes, ids)
    first = referred_at + timedelta(days=30)
    commands = [
        samples.session(ids, f"s{n}", first + timedelta(days=n), hours=3) for n in range(30)
    ]

    answers = await asyncio.gather(*(episodes.send(episode_id, c) for c in commands))

    # Past the bound, the run continues as new at its next change at the latest.
    last = await episodes.send(
        episode_id, samples.session(ids, "after", first + timedelta(days=40), hours=3)
    )
    runs = await run_histories(client, workflow_id_for(episode_id))
    stored = await store.read_stream(episode_id)

    assert len(runs) >= 2
    assert sorted(a.version for a in answers) == list(range(6, 36))
    assert last.version == 36
    assert [e.seq for e in stored] == list(range(1, 37))
