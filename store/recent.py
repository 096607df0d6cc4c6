"""The events this process appended lately, for the projector running beside the store.

A worker's append activity and its projector share one process: every event the
projector folds was, a moment before, an `Event` the store wrote. Reading it back means
PostgreSQL turning its `jsonb` into text and the projector parsing and validating that text
again, about a tenth of the projector's work. With a `RecentEvents` shared between them
(`EventStore.keep_recent_events()`, `Projector(recent=)`), the store hands over each batch it wrote,
and the projector takes an event from here when it has it, reading only the rest back.

What is handed over is exactly what is stored. The store adds a batch only once its
statement reported the batch written (or already present, equal, at the same seqs), and a
stored event never changes (`events` refuses UPDATE and DELETE). The events must also be
the ones their stored JSON reads back as: every event CarePath appends was itself read
from JSON (a command's request, the append activity's input), so it is; a caller that
appends events made in Python with, say, a `ZoneInfo` time zone should not share one.

Bounded: the projector takes each event once, and those it never takes (another worker's
projector folded them, or it read them back before the store handed them over) leave in
the order they came once more than `limit` are held.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from domain.events import Event

# At a worker's peak rate (about 20,000 events a second) a projector step takes a
# quarter of a second's events; this holds several steps' worth: 38 MB of 12-week
# episodes' events read from JSON (1.9 KB each, measured with tracemalloc).
RECENT_EVENTS_LIMIT = 20_000


class RecentEvents:
    """Events appended by this process, by (episode id, seq), until taken or crowded out."""

    def __init__(self, limit: int = RECENT_EVENTS_LIMIT) -> None:
        if limit < 1:
            raise ValueError("RecentEvents needs room for at least one event")
        self._limit = limit
        self._events: dict[tuple[str, int], Event] = {}

    def __len__(self) -> int:
        return len(self._events)

    def add(self, episode_id: str, events: Sequence[Event]) -> None:
        """Hold `events`, stored in `episode_id`'s stream; the oldest go beyond the limit."""
        held = self._events
        for event in events:
            held[(episode_id, event.seq)] = event
        excess = len(held) - self._limit
        if excess > 0:
            for key in list(itertools.islice(held, excess)):
                del held[key]

    def take(self, episode_id: str, seq: int) -> Event | None:
        """The event stored at `seq` of `episode_id`'s stream, if held (and forget it)."""
        return self._events.pop((episode_id, seq), None)
