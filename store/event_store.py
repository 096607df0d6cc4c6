"""The PostgreSQL event store: one append-only, hash-chained stream per episode.

Appends are idempotent on (episode, seq): Temporal retries the activity that appends, so
an event already stored with the same content is a success and is not written twice, while
different content at a taken seq is a conflict no retry can fix. Appenders to one stream are
serialised by a transaction-scoped advisory lock, so of two concurrent different appends at
the same seq exactly one wins and the other sees its events and gets `AppendConflict`.

An append may name the command it records (`CommandKey`: its id and the fingerprint of
its request). Under the same lock the store then looks the command id up first: a command
it already holds is answered with its stored events and nothing is written, whichever
workflow run asks; the same id with another request is `IdempotencyKeyReused`. This makes
a command id apply at most once for the whole life of an episode, across continue-as-new.

Failures are sorted at this boundary: a lost connection or a transient server condition
is `DatabaseUnavailable` (retrying helps); anything else PostgreSQL refuses - a
constraint, data it cannot store, a missing table or privilege, a failing read-model
update - is `StoreRefused`, which no retry fixes.

The read models (`store.projections`) are updated in the append's transaction:
they never show an event the store does not hold, nor miss one it does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from domain.canonical import GENESIS_HASH, canonical_json, payload_digest
from domain.errors import CarePathError
from domain.events import Event, dump_event
from domain.idempotency import reused_key
from store.chain import HASH_KEYED, ChainSeal, keyed_chain_hash
from store.chain_seal import load_seal
from store.db import Connection, Pool
from store.errors import AppendConflict, DatabaseUnavailable, StoreRefused
from store.projections import project_append
from store.records import AppendResult, CommandKey, StoredEvent

COLUMNS = (
    "episode_id, seq, event_type, schema_version, payload, occurred_at, recorded_at, "
    "actor_id, actor_role, command_id, prev_hash, hash, hash_alg"
)
_COMMAND_EVENTS = (
    f"SELECT {', '.join('e.' + c.strip() for c in COLUMNS.split(','))}, f.fingerprint "
    "FROM events e LEFT JOIN command_fingerprints f "
    "ON f.episode_id = e.episode_id AND f.command_id = e.command_id "
    "WHERE e.episode_id = $1 AND e.command_id = $2 ORDER BY e.seq"
)
_INSERT_FINGERPRINT = (
    "INSERT INTO command_fingerprints (episode_id, command_id, fingerprint) "
    "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
)
# Refusals by the server that pass by themselves: its resources (53xxx: too many
# connections, out of memory or disk), a serialization failure or deadlock (40xxx: PostgreSQL
# asks for the transaction to be run again), a lock not available (55P03). A lost
# connection is sorted out by `_unavailable_on_lost_connection`.
_TRANSIENT = (
    asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError,
    asyncpg.LockNotAvailableError,
)
_INSERT = (
    "INSERT INTO events (episode_id, seq, event_type, schema_version, payload, occurred_at, "
    "actor_id, actor_role, command_id, prev_hash, hash, hash_alg) "
    f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '{HASH_KEYED}')"
)


class EventStore:
    """Appends to and reads episode streams through an asyncpg pool.

    Every appended event is hashed under `chain_key` (HMAC-SHA-256, `store.chain`), the
    key kept outside the database (`workers.checkpoints.chain_key`). `projections=False`
    appends without updating the read models (benchmarks, bulk imports followed by
    `rebuild_projections`).
    """

    def __init__(self, pool: Pool, *, chain_key: bytes, projections: bool = True) -> None:
        if not chain_key:
            raise ValueError("the event store needs a non-empty chain key")
        self._pool = pool
        self._chain_key = chain_key
        self._projections = projections

    @property
    def pool(self) -> Pool:
        """The pool this store uses (shared with the notification ledger and checkpoints)."""
        return self._pool

    @property
    def chain_key(self) -> bytes:
        """The key every appended event's hash is computed under (verification needs it)."""
        return self._chain_key

    async def chain_seal(self) -> ChainSeal | None:
        """The seal of the plain-hash events stored before 0014, checked under the chain key."""
        async with _unavailable_on_lost_connection(), self._pool.acquire() as conn:
            return await load_seal(conn, self._chain_key)

    async def append(
        self, episode_id: str, events: Sequence[Event], *, command: CommandKey | None = None
    ) -> AppendResult:
        """Append `events` (contiguous seqs) to the stream, in one transaction.

        With `command`, the events are recorded as that command's; a command id the stream
        already holds is answered with its events (`applied_before`) and nothing is
        written, or refused with `IdempotencyKeyReused` if its request differed. With no
        events, this only looks the command up.
        """
        _check_batch(episode_id, events)
        try:
            payloads = [dump_event(event) for event in events]
            async with (
                _unavailable_on_lost_connection(),
                self._pool.acquire() as conn,
                conn.transaction(),
            ):
                # Serialises appenders to this stream (other streams are not blocked).
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", episode_id
                )
                return await _append_locked(
                    conn,
                    episode_id,
                    events,
                    payloads,
                    command,
                    project=self._projections,
                    chain_key=self._chain_key,
                )
        except asyncpg.UniqueViolationError as exc:
            # Only reachable if a writer bypasses the advisory lock.
            raise AppendConflict(
                f"episode {episode_id}: another writer took one of these seqs concurrently; "
                "re-read the stream and decide again"
            ) from exc
        except CarePathError:
            raise
        except _TRANSIENT as exc:
            raise DatabaseUnavailable(
                f"episode {episode_id}: PostgreSQL could not complete the append now "
                f"({type(exc).__name__} {exc.sqlstate}); retrying may help"
            ) from exc
        except Exception as exc:
            # A constraint or trigger, data PostgreSQL cannot store, a missing table or
            # privilege, or a read model that fails to update: the same append would fail
            # the same way on every retry, so say so now.
            raise _refused(episode_id, exc) from exc

    async def read_stream(self, episode_id: str, after_seq: int = 0) -> list[StoredEvent]:
        """The stream's events with seq > after_seq, in seq order."""
        async with _unavailable_on_lost_connection(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {COLUMNS} FROM events WHERE episode_id = $1 AND seq > $2 ORDER BY seq",
                episode_id,
                after_seq,
            )
        return [stored_event(row) for row in rows]

    async def head(self, episode_id: str) -> tuple[int, str] | None:
        """(seq, hash) of the stream's last event, or None for an empty stream."""
        async with _unavailable_on_lost_connection(), self._pool.acquire() as conn:
            return await _head(conn, episode_id)

    async def ping(self) -> None:
        """Raise DatabaseUnavailable unless PostgreSQL answers a query."""
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                await conn.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"PostgreSQL does not answer: {exc}") from exc


def _refused(episode_id: str, exc: Exception) -> StoreRefused:
    # The first line of PostgreSQL's message names the constraint, table or column; the
    # detail (which may quote row values, hence PHI) is left out.
    state = getattr(exc, "sqlstate", None)
    cause = f"{type(exc).__name__}{f' {state}' if state else ''}"
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return StoreRefused(
        f"episode {episode_id}: the event store refused the append ({cause}: {first_line}); "
        "nothing was written and retrying cannot fix it: see the worker log"
    )


@contextlib.asynccontextmanager
async def _unavailable_on_lost_connection() -> AsyncIterator[None]:
    """Turn a dropped or refused connection into DatabaseUnavailable (retryable)."""
    try:
        yield
    except (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        # 57xxx: the server shut down or terminated our session, or cancelled the statement.
        asyncpg.OperatorInterventionError,
    ) as exc:
        if isinstance(exc, ValueError):
            # asyncpg's client-side DataError (an argument it cannot encode) is an
            # InterfaceError too, but it is the data's fault, not the connection's.
            raise
        raise DatabaseUnavailable(f"lost the connection to PostgreSQL: {exc}") from exc


def _check_batch(episode_id: str, events: Sequence[Event]) -> None:
    for index, event in enumerate(events):
        if event.episode_id != episode_id:
            raise AppendConflict(
                f"event seq {event.seq} belongs to episode {event.episode_id}, not to {episode_id}"
            )
        if index and event.seq != events[index - 1].seq + 1:
            raise AppendConflict(
                f"episode {episode_id}: events to append must have contiguous seqs, "
                f"got {events[index - 1].seq} then {event.seq}"
            )


async def _append_locked(
    conn: Connection,
    episode_id: str,
    events: Sequence[Event],
    payloads: list[dict[str, Any]],
    command: CommandKey | None,
    *,
    project: bool,
    chain_key: bytes,
) -> AppendResult:
    head = await _head(conn, episode_id)
    head_seq, head_hash = head if head is not None else (0, GENESIS_HASH)
    if command is not None:
        prior = await _command_events(conn, episode_id, command)
        # The same events at the same seqs are this very append retried (its first attempt
        # committed, its acknowledgement was lost): checked below like any re-append.
        if prior and [p.seq for p in prior] != [e.seq for e in events]:
            return AppendResult(episode_id, 0, 0, head_seq, head_hash, applied_before=prior)
    if not events:
        return AppendResult(episode_id, 0, 0, head_seq, head_hash)

    stored = await conn.fetch(
        "SELECT seq, payload FROM events WHERE episode_id = $1 AND seq BETWEEN $2 AND $3",
        episode_id,
        events[0].seq,
        events[-1].seq,
    )
    existing = {row["seq"]: row["payload"] for row in stored}
    rows: list[tuple[Any, ...]] = []
    written: list[Event] = []
    prev_hash = head_hash
    for event, payload in zip(events, payloads, strict=True):
        if event.seq <= head_seq:
            if canonical_json(existing[event.seq]) != canonical_json(payload):
                raise AppendConflict(
                    f"episode {episode_id}: seq {event.seq} already holds a different event; "
                    "re-read the stream and decide again"
                )
            continue
        if event.seq != head_seq + len(rows) + 1:
            raise AppendConflict(
                f"episode {episode_id}: appending seq {event.seq} would leave a gap after "
                f"seq {head_seq}; re-read the stream and decide again"
            )
        event_hash = keyed_chain_hash(chain_key, prev_hash, payload)
        rows.append(_row(episode_id, event, payload, prev_hash, event_hash))
        written.append(event)
        prev_hash = event_hash

    if rows:
        await conn.executemany(_INSERT, rows)
        if command is not None:
            await conn.execute(
                _INSERT_FINGERPRINT, episode_id, command.command_id, command.fingerprint
            )
        if project:
            await project_append(conn, episode_id, head_seq, written)
    return AppendResult(
        episode_id,
        written=len(rows),
        already_present=len(events) - len(rows),
        head_seq=head_seq + len(rows),
        head_hash=prev_hash,
        # What the stream now holds at these seqs: the stored payload where one was already
        # there (canonically equal to the new one, or the append failed above).
        digests=tuple(
            payload_digest(existing.get(event.seq, payload))
            for event, payload in zip(events, payloads, strict=True)
        ),
    )


async def _command_events(
    conn: Connection, episode_id: str, command: CommandKey
) -> tuple[StoredEvent, ...]:
    """The events stored for `command`'s id; `IdempotencyKeyReused` if another request
    was recorded under it."""
    rows = await conn.fetch(_COMMAND_EVENTS, episode_id, command.command_id)
    recorded = rows[0]["fingerprint"] if rows else None
    if recorded is not None and recorded != command.fingerprint:
        raise reused_key(command.command_id)
    return tuple(stored_event(row) for row in rows)


def _row(
    episode_id: str, event: Event, payload: dict[str, Any], prev_hash: str, event_hash: str
) -> tuple[Any, ...]:
    return (
        episode_id,
        event.seq,
        event.type,
        event.schema_version,
        payload,
        event.occurred_at,
        event.actor.user_id,
        str(event.actor.role),
        event.command_id,
        prev_hash,
        event_hash,
    )


async def _head(conn: Connection, episode_id: str) -> tuple[int, str] | None:
    row = await conn.fetchrow(
        "SELECT seq, hash FROM events WHERE episode_id = $1 ORDER BY seq DESC LIMIT 1",
        episode_id,
    )
    return None if row is None else (int(row["seq"]), str(row["hash"]))


def stored_event(row: asyncpg.Record) -> StoredEvent:
    """A `StoredEvent` from a row selected with `COLUMNS`."""
    recorded_at: datetime = row["recorded_at"]
    return StoredEvent(
        episode_id=row["episode_id"],
        seq=row["seq"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        payload=row["payload"],
        occurred_at=row["occurred_at"],
        recorded_at=recorded_at,
        actor_id=row["actor_id"],
        actor_role=row["actor_role"],
        command_id=row["command_id"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        hash_alg=row["hash_alg"],
    )
