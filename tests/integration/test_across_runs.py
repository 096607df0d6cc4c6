"""The Idempotency-Key through the HTTP API, and what an episode keeps across its runs.

A real dev server and PostgreSQL: a key sent again with the same body is answered with the
first result; with another body it is refused with 422 (IETF Idempotency-Key draft) and
nothing is stored. The timeline is read from the event store, so it keeps the episode's
whole life while the workflow keeps only its current run; and a search attribute that
becomes empty after continue-as-new is removed, not left with the last run's value.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from api_driver import Driver, now_iso
from api_users import bearer, users_authenticator
from temporalio.client import Client

from domain import commands as c
from domain.vocabulary import DischargeReason
from store.db import Pool
from store.event_store import EventStore
from testing import samples
from testing.episodes import admitted
from testing.keys import CHAIN_KEY
from testing.stack import api_app
from workers.worker import build_worker
from workflows.client import EpisodeClient
from workflows.messages import workflow_id_for

pytestmark = pytest.mark.integration


def _session(session_id: str, minutes: float) -> dict[str, object]:
    return {"session_id": session_id, "kind": "group_process", "starts_at": now_iso(minutes)}


async def test_a_key_reused_with_another_body_is_refused_with_422(
    api: httpx.AsyncClient, db_pool: Pool
) -> None:
    driver = Driver(api)
    episode_id = await driver.at("in_program")
    url = f"/episodes/{episode_id}/sessions"
    key = {"Idempotency-Key": f"schedule-{uuid.uuid4().hex[:8]}"}
    body = {**_session("s1", 60 * 24), "hours": 3}
    first = await api.post(url, json=body, headers=key)
    assert first.status_code == 200, first.text
    stored = await db_pool.fetchval("SELECT count(*) FROM events WHERE episode_id = $1", episode_id)

    reused = await api.post(url, json={**body, "hours": 2}, headers=key)
    repeated = await api.post(url, json=body, headers=key)

    assert reused.status_code == 422, reused.text
    problem = reused.json()
    assert problem["type"].endswith("/IdempotencyKeyReused")
    assert "new key" in problem["detail"]
    assert repeated.status_code == 200
    assert repeated.json()["events"] == first.json()["events"]
    assert (
        await db_pool.fetchval("SELECT count(*) FROM events WHERE episode_id = $1", episode_id)
        == stored
    )


@pytest.fixture
async def api_and_episodes(
    temporal_client: Client, db_pool: Pool
) -> AsyncIterator[tuple[httpx.AsyncClient, EpisodeClient]]:
    """The API and, on its task queue, an episode client whose episodes continue as new
    after 60 history events."""
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    app = api_app(temporal_client, store, task_queue, users_authenticator())
    async with (
        build_worker(temporal_client, store, task_queue),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://carepath.test",
            headers=bearer("director"),
        ) as http,
    ):
        yield http, EpisodeClient(temporal_client, task_queue, history_event_limit=60)


async def _continued_as_new(
    temporal_client: Client, episodes: EpisodeClient, ids: samples.CommandIds
) -> tuple[str, int]:
    """An admitted episode whose workflow has continued as new; (its id, sessions sent)."""
    episode_id, referred_at = await admitted(episodes, ids)
    handle = temporal_client.get_workflow_handle(workflow_id_for(episode_id))
    first_run = (await handle.describe()).run_id
    n = 0
    while (await handle.describe()).run_id == first_run:
        start = referred_at + timedelta(days=3, hours=6 * n)
        await episodes.send(episode_id, samples.session(ids, f"s{n}", start))
        n += 1
        assert n < 40, "the episode did not continue as new"
    return episode_id, n


async def test_the_timeline_is_whole_after_continue_as_new(
    temporal_client: Client, api_and_episodes: tuple[httpx.AsyncClient, EpisodeClient]
) -> None:
    http, episodes = api_and_episodes
    episode_id, n = await _continued_as_new(
        temporal_client, episodes, samples.CommandIds("whole-timeline")
    )
    handle = temporal_client.get_workflow_handle(workflow_id_for(episode_id))

    timeline = await http.get(f"/episodes/{episode_id}/timeline")
    this_run = await episodes.timeline(episode_id)

    assert timeline.status_code == 200, timeline.text
    entries = timeline.json()["entries"]
    assert [e["seq"] for e in entries] == list(range(1, 5 + n + 1))
    assert entries[0]["type"] == "client_referred"
    assert len(this_run.entries) < len(entries)
    await handle.terminate(reason="end of test")


async def test_a_search_attribute_that_becomes_empty_after_continue_as_new_is_removed(
    temporal_client: Client, api_and_episodes: tuple[httpx.AsyncClient, EpisodeClient]
) -> None:
    _, episodes = api_and_episodes
    ids = samples.CommandIds("empty-attribute")
    episode_id, _ = await _continued_as_new(temporal_client, episodes, ids)
    handle = temporal_client.get_workflow_handle(workflow_id_for(episode_id))
    before = {p.key.name: p.value for p in (await handle.describe()).typed_search_attributes}
    assert before.get("NextDeadline") is not None

    # A discharge leaves nothing pending: there is no next deadline any more.
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

    after = {p.key.name: p.value for p in (await handle.describe()).typed_search_attributes}
    assert "NextDeadline" not in after
    assert after["CarePathwayStage"] == "discharged"
