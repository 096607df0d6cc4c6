"""Activities that write the episode's events to the PostgreSQL event store."""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from carepath.store.errors import AppendConflict
from carepath.store.event_store import EventStore
from carepath.workflows.messages import (
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
        except AppendConflict as err:
            # Different content at a taken position: retrying cannot help, and the
            # workflow must not believe the events were recorded.
            raise ApplicationError(str(err), type=err.code, non_retryable=True) from err
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
