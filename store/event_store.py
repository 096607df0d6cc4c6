"""The PostgreSQL event store: one append-only, hash-chained stream per episode.

Appends are idempotent on (episode, seq): Temporal retries the activity that appends, so
an event already stored with the same content is a success and is not written twice, while
different content at a taken seq is a conflict no retry can fix. Of two concurrent different
appends at the same seq exactly one wins and the other sees its events and gets
`AppendConflict`: the unique (episode_id, seq) key makes the loser of a race wait for the
winner, and every outcome but a clean write is decided under a transaction-scoped advisory
lock that serialises those appenders of one stream.

An append may name the command it records (`CommandKey`: its id and the fingerprint of
its request). Under the same lock the store then looks the command id up first: a command
it already holds is answered with its stored events and nothing is written, whichever
workflow run asks; the same id with another request is `IdempotencyKeyReused`. This makes
a command id apply at most once for the whole life of an episode, across continue-as-new.

Failures are sorted at this boundary: a lost connection or a transient server condition
is `DatabaseUnavailable` (retrying helps); anything else PostgreSQL refuses - a
constraint, data it cannot store, a missing table or privilege, a failing read-model
update - is `StoreRefused`, which no retry fixes.

An append is one statement in the common case - a batch that continues the head, under a
command id the stream has not seen (`_APPEND_CONTINUING`: the head check, the command
lookup, the insert and the new head in one round trip, with no lock and no PL/pgSQL). Any
other case writes nothing there and is decided by a second statement,
`append_event_batch` (migration 0018; `append_events`, 0015), under the stream's lock, by
exactly the checks described above. The batch travels as typed arrays, its
payloads as the canonical JSON the chain hash and the digests are computed over, so each
payload is encoded once. The read models are not written on
this path: the projector (`store.projector`) folds the new events after they commit, in
global position order, and a reader that needs its own change waits for its position.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from domain.canonical import GENESIS_HASH, digest_of_canonical
from domain.errors import CarePathError
from domain.events import Event, dump_event
from domain.idempotency import reused_key
from store.chain import ChainSeal, fast_canonical_json, keyed_chain_hash_of
from store.chain_seal import load_seal
from store.db import Connection, Pool
from store.errors import AppendConflict, DatabaseUnavailable, StoreRefused
from store.metrics import APPEND_BATCH_EVENTS, APPEND_SECONDS
from store.recent import RecentEvents
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
# Refusals by the server that pass by themselves: its resources (53xxx: too many
# connections, out of memory or disk), a serialization failure or deadlock (40xxx: PostgreSQL
# asks for the transaction to be run again), a lock not available (55P03). A lost
# connection is sorted out by `_unavailable_on_lost_connection`.
_TRANSIENT = (
    asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError,
    asyncpg.LockNotAvailableError,
)
_NOT_ACCEPTING = "not currently accepting connections"
_APPEND = "SELECT * FROM append_event_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
# The common case of `append_event_batch` - a batch that continues the head, under a
# command id the stream has not seen - as one plain statement with the same arguments (a
# single event's as scalars, `_APPEND_ONE`) and result columns: it writes the whole batch
# (and the command's fingerprint) or nothing (`missed`), and anything but a whole write is
# then decided by `append_event_batch`. Without PL/pgSQL around it and without the
# stream's advisory lock, it costs PostgreSQL a fifth less per single-event append (186
# against 150 us of CPU on the development machine; 130 us with scalars). It needs no
# lock: its head check and insert share one snapshot, so an append it races is either
# seen (the head check fails) or collides on (episode_id, seq) (a unique violation, also
# answered by `append_event_batch`, which takes the lock). An append that writes seq n has
# seen seq n - 1 committed, so within a stream (tx, position) order is still seq order
# (migration 0015).
_CONTINUING = """
WITH head AS (
    SELECT e.seq, e.hash FROM events e WHERE e.episode_id = $1 ORDER BY e.seq DESC LIMIT 1
), continues AS (
    SELECT FROM (SELECT 1) AS one LEFT JOIN head ON true
     WHERE COALESCE(head.seq, 0) = $2 - 1
       AND COALESCE(head.hash, repeat('0', 64)) = $3
       AND ($12::text IS NULL
            OR (NOT EXISTS (SELECT FROM command_fingerprints f
                             WHERE f.episode_id = $1 AND f.command_id = $12)
                AND NOT EXISTS (SELECT FROM events e
                                 WHERE e.episode_id = $1 AND e.command_id = $12)))
), inserted AS (
    INSERT INTO events (episode_id, seq, event_type, schema_version, payload, occurred_at,
                        actor_id, actor_role, command_id, prev_hash, hash, hash_alg)
    SELECT $1, $2 + r.n - 1, r.event_type, r.schema_version, r.payload::jsonb,
           r.occurred_at, r.actor_id, r.actor_role, r.command_id, {prev_hash}, r.hash,
           'hmac-sha256'
      FROM {rows} AS r(event_type, schema_version, payload, occurred_at, actor_id,
                       actor_role, command_id, hash, n)
     WHERE EXISTS (SELECT FROM continues)
     ORDER BY r.n
    RETURNING position
), fingerprint AS (
    INSERT INTO command_fingerprints (episode_id, command_id, fingerprint)
    SELECT $1, $12, $13::text WHERE $12::text IS NOT NULL AND EXISTS (SELECT FROM inserted)
    ON CONFLICT DO NOTHING
)
SELECT CASE WHEN count(*) > 0 THEN 'ok' ELSE 'missed' END AS status,
       $2 + count(*)::integer - 1 AS head_seq, {head_hash} AS head_hash,
       NULL::text AS base_hash, max(position) AS last_position, count(*)::integer AS written,
       NULL::integer AS conflict_seq
  FROM inserted
"""
_APPEND_CONTINUING = _CONTINUING.format(
    rows="unnest($4::text[], $5::integer[], $6::text[], $7::timestamptz[], $8::text[], "
    "$9::text[], $10::text[], $11::text[]) WITH ORDINALITY",
    prev_hash="CASE WHEN r.n = 1 THEN $3 ELSE ($11::text[])[r.n - 1] END",
    head_hash="($11::text[])[count(*)]",
)
_APPEND_ONE = _CONTINUING.format(
    rows="(VALUES ($4::text, $5::integer, $6::text, $7::timestamptz, $8::text, $9::text, "
    "$10::text, $11::text, 1))",
    prev_hash="$3",
    head_hash="$11::text",
)
# A hash no event has: the batch's chain base when this store does not know it, which the
# database answers with the stored one (`stale_base`).
_UNKNOWN_HASH = "unknown"
# The first attempt, and the one after the database named the stored base hash.
_HASH_ATTEMPTS = 2
# Streams whose head this store remembers (least recently appended forgotten first).
_HEADS_KEPT = 50_000


class EventStore:
    """Appends to and reads episode streams through an asyncpg pool.

    Every appended event is hashed under `chain_key` (HMAC-SHA-256, `store.chain`), the
    key kept outside the database (`workers.checkpoints.chain_key`). The read models
    follow the appends (`store.projector`).
    """

    def __init__(self, pool: Pool, *, chain_key: bytes) -> None:
        if not chain_key:
            raise ValueError("the event store needs a non-empty chain key")
        self._pool = pool
        self._chain_key = chain_key
        # Where each written batch is handed to a projector in this process, once one
        # shares it (`keep_recent_events`).
        self._recent: RecentEvents | None = None
        # episode id -> (seq, hash) of its head after this store's last append to it.
        self._heads: OrderedDict[str, tuple[int, str]] = OrderedDict()

    @property
    def pool(self) -> Pool:
        """The pool this store uses (shared with the notification ledger and checkpoints)."""
        return self._pool

    def keep_recent_events(self) -> RecentEvents:
        """Hand every batch written from now on to a `RecentEvents` (created on the first
        call), for a projector in this process (`Projector(recent=)`)."""
        if self._recent is None:
            self._recent = RecentEvents()
        return self._recent

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
        """Append `events` (contiguous seqs) to the stream, in one statement.

        With `command`, the events are recorded as that command's; a command id the stream
        already holds is answered with its events (`applied_before`) and nothing is
        written, or refused with `IdempotencyKeyReused` if its request differed. With no
        events, this only looks the command up.

        The events are hashed here, chained from the hash stored just before the batch,
        which this store remembers from its last append to the stream. When it does not
        know it (first append since start, or another worker appended meanwhile), the
        database answers with the stored hash and the batch is hashed again: a second
        round trip, once.
        """
        _check_batch(episode_id, events)
        APPEND_BATCH_EVENTS.observe(len(events))
        began = time.perf_counter()
        try:
            return await self._append(episode_id, events, command)
        finally:
            APPEND_SECONDS.observe(time.perf_counter() - began)

    async def _append(
        self, episode_id: str, events: Sequence[Event], command: CommandKey | None
    ) -> AppendResult:
        try:
            canonical = [fast_canonical_json(dump_event(event)) for event in events]
            base = self._base_hash(episode_id, events)
            async with _unavailable_on_lost_connection(), self._pool.acquire() as conn:
                for _attempt in range(_HASH_ATTEMPTS):
                    hashes = self._hashes(canonical, base)
                    row = None
                    if events and base != _UNKNOWN_HASH:
                        with contextlib.suppress(asyncpg.UniqueViolationError):
                            row = await _append_continuing(
                                conn, episode_id, events, canonical, base, hashes, command
                            )
                    if row is None or row["status"] != "ok":
                        row = await conn.fetchrow(
                            _APPEND,
                            episode_id,
                            events[0].seq if events else 1,
                            base,
                            *_columns(events, canonical),
                            hashes,
                            *_command_arguments(command),
                        )
                    assert row is not None
                    if row["status"] != "stale_base":
                        break
                    base = str(row["base_hash"])
                else:  # pragma: no cover - the stream's lock makes a second miss impossible
                    raise AppendConflict(
                        f"episode {episode_id}: the stream's head kept moving; decide again"
                    )
                return await self._outcome(conn, episode_id, events, canonical, command, row)
        except asyncpg.UniqueViolationError as exc:
            # Only reachable if a writer bypasses this store (the statement that decides
            # under the lock reads the head after taking it).
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
            # privilege: the same append would fail the same way on every retry, so say
            # so now.
            raise _refused(episode_id, exc) from exc

    def _base_hash(self, episode_id: str, events: Sequence[Event]) -> str:
        """The hash the batch chains from, as far as this store knows (see `append`)."""
        if not events or events[0].seq == 1:
            return GENESIS_HASH
        known = self._heads.get(episode_id)
        if known is not None and known[0] == events[0].seq - 1:
            return known[1]
        return _UNKNOWN_HASH

    def _hashes(self, canonical: list[bytes], base: str) -> list[str]:
        """Each event's chain hash, the first chained from `base`, each next from the one
        before (its prev_hash, which the database derives the same way)."""
        hashes = []
        prev_hash = base
        for encoded in canonical:
            prev_hash = keyed_chain_hash_of(self._chain_key, prev_hash, encoded)
            hashes.append(prev_hash)
        return hashes

    async def _outcome(
        self,
        conn: Connection,
        episode_id: str,
        events: Sequence[Event],
        canonical: list[bytes],
        command: CommandKey | None,
        row: asyncpg.Record,
    ) -> AppendResult:
        status = row["status"]
        head_seq, head_hash = int(row["head_seq"]), str(row["head_hash"])
        if status == "reused":
            assert command is not None
            raise reused_key(command.command_id)
        if status == "gap":
            raise AppendConflict(
                f"episode {episode_id}: appending seq {events[0].seq} would leave a gap after "
                f"seq {head_seq}; re-read the stream and decide again"
            )
        if status == "conflict":
            raise AppendConflict(
                f"episode {episode_id}: seq {row['conflict_seq']} already holds a different "
                "event; re-read the stream and decide again"
            )
        self._remember(episode_id, head_seq, head_hash)
        if status == "applied_before":
            assert command is not None
            prior = await _command_events(conn, episode_id, command)
            return AppendResult(episode_id, 0, 0, head_seq, head_hash, applied_before=prior)
        written = int(row["written"])
        if self._recent is not None and events:
            self._recent.add(episode_id, events)
        return AppendResult(
            episode_id,
            written=written,
            already_present=len(events) - written,
            head_seq=head_seq,
            head_hash=head_hash,
            # What the stream now holds at these seqs: equal to the batch, or it failed above.
            digests=tuple(digest_of_canonical(encoded) for encoded in canonical),
            position=row["last_position"],
        )

    def _remember(self, episode_id: str, head_seq: int, head_hash: str) -> None:
        if head_seq == 0:
            return
        self._heads[episode_id] = (head_seq, head_hash)
        self._heads.move_to_end(episode_id)
        if len(self._heads) > _HEADS_KEPT:
            self._heads.popitem(last=False)

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
    except asyncpg.ObjectNotInPrerequisiteStateError as exc:
        # 55000 on connecting: the database accepts no connections for now (being dropped
        # or recreated, ALLOW_CONNECTIONS false). An outage, not a verdict on the data.
        if _NOT_ACCEPTING not in str(exc):
            raise
        raise DatabaseUnavailable(f"PostgreSQL refuses connections for now: {exc}") from exc


async def _append_continuing(
    conn: Connection,
    episode_id: str,
    events: Sequence[Event],
    canonical: list[bytes],
    base: str,
    hashes: list[str],
    command: CommandKey | None,
) -> asyncpg.Record | None:
    """The common append, which writes the whole batch (status `ok`) or nothing."""
    if len(events) == 1:
        return await conn.fetchrow(
            _APPEND_ONE,
            episode_id,
            events[0].seq,
            base,
            *_row(events[0], canonical[0]),
            hashes[0],
            *_command_arguments(command),
        )
    return await conn.fetchrow(
        _APPEND_CONTINUING,
        episode_id,
        events[0].seq,
        base,
        *_columns(events, canonical),
        hashes,
        *_command_arguments(command),
    )


def _command_arguments(command: CommandKey | None) -> tuple[str | None, str | None]:
    return (None, None) if command is None else (command.command_id, command.fingerprint)


def _row(event: Event, encoded: bytes) -> tuple[Any, ...]:
    """An event's columns for `_APPEND_ONE`, in its argument order (the hash apart): event
    type, schema version, payload (canonical JSON), occurred_at, actor id, actor role,
    command id."""
    return (
        event.type,
        event.schema_version,
        encoded.decode("utf-8"),
        event.occurred_at,
        event.actor.user_id,
        str(event.actor.role),
        event.command_id,
    )


_ROW_COLUMNS = 7


def _columns(events: Sequence[Event], canonical: list[bytes]) -> tuple[list[Any], ...]:
    """The batch's columns for `append_event_batch` and `_APPEND_CONTINUING`: one array
    per column of `_row`."""
    rows = [_row(event, encoded) for event, encoded in zip(events, canonical, strict=True)]
    return tuple([row[i] for row in rows] for i in range(_ROW_COLUMNS))


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
