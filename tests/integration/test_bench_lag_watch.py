"""The event-store benchmark's projection-lag watch counts an append only once the
projector has folded it, and then exactly once."""

from __future__ import annotations

import asyncio

import pytest

from bench.event_store import _LagWatch
from domain.events import Event
from store.db import Pool
from store.event_store import EventStore
from store.projections import Projector
from store.records import AppendResult
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events

pytestmark = pytest.mark.integration


async def _looks(watch: _LagWatch, pool: Pool, times: int = 2) -> None:
    async with pool.acquire() as conn:
        for _ in range(times):
            await watch._look(conn)


async def test_an_append_is_counted_once_the_projector_has_folded_it(db_pool: Pool) -> None:
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    watch = _LagWatch(db_pool)
    events = episode_events("lag-watch-1", sessions=2)
    first, rest = events[:3], events[3:]
    for event in first:
        watch.appended(_position(await store.append(event.episode_id, [event])))

    await _looks(watch, db_pool)
    assert watch.take() == [0.0]  # nothing folded yet: no lag measured

    await Projector(db_pool).catch_up()
    for event in rest:
        watch.appended(_position(await store.append(event.episode_id, [event])))
    await _looks(watch, db_pool)
    folded = watch.take()

    assert len(folded) == len(first)
    assert all(lag >= 0 for lag in folded)
    await Projector(db_pool).catch_up()
    await _looks(watch, db_pool)
    assert len(watch.take()) == len(rest)


async def test_a_running_watch_drains_every_append_of_concurrent_streams(db_pool: Pool) -> None:
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    watch = _LagWatch(db_pool)
    streams = [episode_events(f"lag-watch-c{i}", sessions=3) for i in range(4)]

    async def write(events: list[Event]) -> None:
        for event in events:
            watch.appended(_position(await store.append(event.episode_id, [event])))

    async with watch.watching():
        await asyncio.gather(*(write(events) for events in streams))
        await Projector(db_pool).catch_up()
        await watch.drained(timeout=10)

    assert len(watch.take()) == sum(len(events) for events in streams)


def _position(result: AppendResult) -> int:
    assert result.position is not None
    return result.position
