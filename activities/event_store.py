"""Activities that write the episode's events to the PostgreSQL event store."""

from __future__ import annotations

import structlog
from temporalio import activity

from store.errors import AppendConflict
from store.event_store import EventStore
from workflows.messages import (
    APPEND_EVENTS_ACTIVITY,
    AppendEventsInput,
    AppendEventsResult,
)

log = structlog.get_logger("carepath.activities")


class EventStoreActivities:
    """Event-store side effects; the store (and its pool) is injected by the worker."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    @activity.defn(name=APPEND_EVENTS_ACTIVITY)
    async def append_events(self, inp: AppendEventsInput) -> AppendEventsResult:
        """Append an episode's new events; a retry after a lost acknowledgement is a no-op."""
        try:
            result = await self._store.append(inp.episode_id, inp.events)
        except AppendConflict:
            # The stream already holds other events at these positions. They were decided
            # by this episode's workflow in a task whose completion was lost (a local
            # activity's effect outlives a failed workflow task). Hand them back: the
            # workflow adopts them, so the store and the workflow never disagree.
            first = inp.events[0].seq if inp.events else 1
            stored = await self._store.read_stream(inp.episode_id, after_seq=first - 1)
            if not stored:
                raise
            log.warning(
                "append_found_stored_events",
                episode_id=inp.episode_id,
                from_seq=first,
                stored=len(stored),
            )
            return AppendEventsResult(
                episode_id=inp.episode_id,
                head_seq=stored[-1].seq,
                written=0,
                stored_instead=tuple(e.event for e in stored),
            )
        log.info(
            "events_appended",
            episode_id=inp.episode_id,
            written=result.written,
            already_present=result.already_present,
            head_seq=result.head_seq,
        )
        return AppendEventsResult(
            episode_id=inp.episode_id, head_seq=result.head_seq, written=result.written
        )
