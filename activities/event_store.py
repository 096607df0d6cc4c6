"""Activities that write the episode's events to the PostgreSQL event store.

The append is where the store's verdicts become Temporal's: a refusal that no retry can
fix (a conflict the workflow cannot adopt, a reused Idempotency-Key, anything PostgreSQL
refuses for good) is a non-retryable `ApplicationError` whose type names it, so the command
fails at once and the episode's lock is released; a lost connection is left to Temporal's
retries, within the bound the workflow sets.
"""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import count_written
from domain.errors import CarePathError
from store.errors import AppendConflict, DatabaseUnavailable
from store.event_store import EventStore
from store.records import CommandKey
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
        """Append an episode's new events; a retry after a lost acknowledgement is a no-op.

        With a command id, a command the store already holds is answered with its stored
        events instead (`applied_before`); with no events, that is all it does.
        """
        # The workflow's last seq: its new events follow it.
        after = inp.events[0].seq - 1 if inp.events else (inp.after_seq or 0)
        command = (
            CommandKey(inp.command_id, inp.fingerprint)
            if inp.command_id is not None and inp.fingerprint is not None
            else None
        )
        try:
            result = await self._store.append(inp.episode_id, inp.events, command=command)
        except AppendConflict as err:
            return await self._stored_instead(inp, after, err)
        except DatabaseUnavailable:
            raise  # Temporal retries it
        except CarePathError as err:
            log.error("append_refused", episode_id=inp.episode_id, error=err.code)
            raise ApplicationError(err.message, type=err.code, non_retryable=True) from None
        if result.applied_before:
            # The command was applied before, by an earlier run of the episode or by a
            # workflow task whose completion was lost. Whatever the store holds beyond the
            # workflow's last seq comes back too, for the workflow to adopt.
            ahead = (
                await self._store.read_stream(inp.episode_id, after_seq=after)
                if result.head_seq > after
                else []
            )
            log.info(
                "command_already_applied",
                episode_id=inp.episode_id,
                command_id=inp.command_id,
                seqs=[e.seq for e in result.applied_before],
            )
            return AppendEventsResult(
                episode_id=inp.episode_id,
                head_seq=result.head_seq,
                written=0,
                stored_instead=tuple(e.event for e in ahead),
                applied_before=tuple(e.event for e in result.applied_before),
            )
        count_written(inp.events, result.written)
        log.info(
            "events_appended",
            episode_id=inp.episode_id,
            written=result.written,
            already_present=result.already_present,
            head_seq=result.head_seq,
        )
        return AppendEventsResult(
            episode_id=inp.episode_id,
            head_seq=result.head_seq,
            written=result.written,
            stored_digests=result.digests,
            position=result.position,
        )

    async def _stored_instead(
        self, inp: AppendEventsInput, after: int, err: AppendConflict
    ) -> AppendEventsResult:
        # The stream already holds other events at these positions. They were decided by
        # this episode's workflow in a task whose completion was lost (a local activity's
        # effect outlives a failed workflow task). Hand them back: the workflow adopts
        # them, so the store and the workflow never disagree.
        stored = await self._store.read_stream(inp.episode_id, after_seq=after)
        if not stored:
            # Nothing to adopt (a gap, or events of another episode): the workflow and the
            # store disagree in a way no retry mends. Fail this command, loudly.
            log.error("append_conflict", episode_id=inp.episode_id, after_seq=after)
            raise ApplicationError(str(err), type=err.code, non_retryable=True) from None
        log.warning(
            "append_found_stored_events",
            episode_id=inp.episode_id,
            from_seq=after + 1,
            stored=len(stored),
        )
        return AppendEventsResult(
            episode_id=inp.episode_id,
            head_seq=stored[-1].seq,
            written=0,
            stored_instead=tuple(e.event for e in stored),
        )
