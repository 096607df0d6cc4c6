"""The events a store hands to the projector beside it (`store.recent`)."""

from __future__ import annotations

import pytest

from store.recent import RecentEvents
from testing.sample_streams import episode_events


def test_given_a_written_batch_when_the_projector_takes_its_events_then_it_gets_each_once() -> None:
    events = episode_events("ep-1", sessions=1)[:3]
    recent = RecentEvents()
    recent.add("ep-1", events)

    assert [recent.take("ep-1", e.seq) for e in events] == events
    assert recent.take("ep-1", 1) is None
    assert len(recent) == 0


def test_given_events_of_two_streams_when_taken_then_the_stream_and_the_seq_both_count() -> None:
    recent = RecentEvents()
    first, second = episode_events("ep-1", sessions=1)[0], episode_events("ep-2", sessions=1)[0]
    recent.add("ep-1", [first])
    recent.add("ep-2", [second])

    assert recent.take("ep-2", 1) is second
    assert recent.take("ep-3", 1) is None
    assert recent.take("ep-1", 1) is first


def test_given_more_events_than_the_limit_when_added_then_the_oldest_leave_first() -> None:
    events = episode_events("ep-1", sessions=2)[:5]
    recent = RecentEvents(limit=3)
    recent.add("ep-1", events[:2])
    recent.add("ep-1", events[2:])

    assert len(recent) == 3
    assert [recent.take("ep-1", e.seq) for e in events] == [None, None, *events[2:]]


def test_a_recent_events_without_room_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        RecentEvents(limit=0)
