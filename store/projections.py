"""Read models, folded from the events by the projector, after the appends commit.

The projector (`Projector`) runs in the worker process. It reads the events it has not
folded yet in global order (`position`, migration 0015), never passing over a transaction
that is still running, and for each episode applies only the new events to its folded
state (the pure domain's `evolve`): the one it holds in memory, else the one stored in
`projection_snapshots` plus the events after it (the snapshot is written only every
`SNAPSHOT_EVERY` events, when a fact read from it changes, and when the projector goes
idle; the read-model rows after every batch). It then writes the
episode's read-model rows in one round trip (the `project_episode` SQL function: only the
rows that changed since the projector's last write of the episode, else all of them) and
moves its tracking row, all in one transaction: a projector that crashes
starts again where its last transaction ended and folds nothing twice. Several workers may
each run one; a transaction-scoped advisory lock lets one fold at a time.

Because every row is computed from the state alone (plus the last event's time),
`rebuild_projections` - which folds each stream from the start into the `rebuild_*` tables
and copies them in at the end - writes exactly the rows the projector wrote. Appends never
wait for either.

A stream whose events do not fold is recorded in `projection_failures`; its read models
keep the last state that folded, and everything else carries on: the audit record never
waits on a read model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import pydantic
import pydantic_core
import structlog

from domain.deadlines import PendingItem, pending_deadlines
from domain.decider import evolve
from domain.events import Event, load_event_json
from domain.state import EpisodeState, Session
from domain.vocabulary import Stage
from domain.weeks import tally, weeks_so_far
from store.background import in_background
from store.db import CONNECT_TIMEOUT_S, Connection, Pool
from store.errors import ProjectionBehind, RebuildRunning, UnknownPosition
from store.metrics import observe_projection_lag
from store.recent import RecentEvents

log = structlog.get_logger("carepath.projections")

# Every table `rebuild_projections` empties and refills, bookkeeping included.
PROJECTION_TABLES = (
    "projection_failures",
    "projection_snapshots",
    "episode_summary",
    "caseload",
    "open_tasks",
    "upcoming_deadlines",
    "attended_hours",
    "episode_consents",
    "console_sessions",
)
# The read models proper, with the columns that order their rows (for comparisons).
READ_MODELS: dict[str, str] = {
    "episode_summary": "episode_id",
    "caseload": "clinician_id, episode_id",
    "open_tasks": "episode_id, task_id",
    "upcoming_deadlines": "episode_id, kind, ref",
    "attended_hours": "episode_id, week_start",
    "episode_consents": "episode_id, consent_id",
    "console_sessions": "episode_id, session_id",
    "projection_snapshots": "episode_id",
    "projection_failures": "episode_id",
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild did: streams and events folded, streams that failed to fold."""

    streams: int
    events: int
    failed_streams: tuple[str, ...]


async def _fold(
    conn: Connection,
    episode_id: str,
    state: EpisodeState | None,
    payloads: Iterable[str | Event],
    prefix: str = "",
) -> tuple[int, EpisodeState | None, Event | None]:
    """Fold stored events onto `state`: each as its stored JSON text (parsed and validated
    in one pass: `load_event_json`), or as the event the store in this process wrote
    (`store.recent`). Return how many folded, the state reached and the last event
    folded. An event that does not fold is recorded in `{prefix}projection_failures` and
    ends the fold."""
    last: Event | None = None
    folded = 0
    for payload in payloads:
        try:
            event = load_event_json(payload) if isinstance(payload, str) else payload
            state = evolve(state, event)
        # Any failure to fold is recorded, never raised: the append it belongs to is the
        # audit record and must not be refused because a read model cannot follow it.
        except Exception as exc:
            await _record_failure(conn, episode_id, _seq_of(payload), exc, prefix)
            break
        last = event
        folded += 1
    return folded, state, last


def _seq_of(payload: str | Event) -> int:
    """The seq of an event, or the one a stored payload names, for the record of a failed
    fold (0 if it names none)."""
    if not isinstance(payload, str):
        return payload.seq
    try:
        document = json.loads(payload)
    except ValueError:
        return 0
    seq = document.get("seq", 0) if isinstance(document, dict) else 0
    return seq if isinstance(seq, int) else 0


async def _fold_and_write(
    conn: Connection,
    episode_id: str,
    state: EpisodeState | None,
    payloads: Iterable[str | Event],
    prefix: str = "",
) -> tuple[int, EpisodeState | None]:
    """Fold `payloads` onto `state` and write the read models (those whose table names
    start with `prefix`); return how many events folded and the state written."""
    folded, state, last = await _fold(conn, episode_id, state, payloads, prefix)
    if state is not None and last is not None:
        rows = read_model_rows(state, last.occurred_at)
        if prefix:
            await conn.execute(
                "SELECT project_episode_into($1, $2, $3, $4)",
                prefix,
                episode_id,
                state.version,
                rows,
            )
        else:
            await conn.execute(
                "SELECT project_episode($1, $2, $3)", episode_id, state.version, rows
            )
    return folded, state


async def _record_failure(
    conn: Connection, episode_id: str, seq: int, exc: Exception, prefix: str = ""
) -> None:
    reason = _describe(exc)
    # The log line names the kind of failure only: an exception's message may quote a
    # value of the event. The full reason stays in `projection_failures`.
    log.warning("projection_failed", episode_id=episode_id, seq=seq, error=type(exc).__name__)
    await conn.execute(
        f"INSERT INTO {prefix}projection_failures (episode_id, seq, reason) "
        "VALUES ($1, $2, $3) ON CONFLICT (episode_id) DO NOTHING",
        episode_id,
        seq,
        reason,
    )


def _describe(exc: Exception) -> str:
    """Why an event did not fold, without echoing any payload value (it may hold PHI)."""
    if isinstance(exc, pydantic.ValidationError):
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['type']}" for err in exc.errors()
        )
        return f"invalid event: {where}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


# --- the projector ----------------------------------------------------------------------

# The projector's tracking row, and the lock that lets one projector (or a rebuild's swap)
# fold at a time. Any fixed number works; it only has to differ from our other locks.
TRACKING_NAME = "read_models"
PROJECTOR_LOCK_KEY = 0x70726F6A_6563746F  # "projecto"
REBUILD_LOCK_KEY = 0x72656275_696C6421  # "rebuild!"
# Events read per transaction. A larger batch folds faster under load (each step's
# per-stream work is shared by more events); a smaller one commits sooner. With writers
# on 8 streams in batches of 10, 2,000 kept up where 500 ran back to back.
PROJECTOR_BATCH = 2000
# How often an idle projector looks for new events, in seconds.
PROJECTOR_IDLE_S = 0.05
# How long a busy projector waits before its next step: one whose last step folded at
# least PROJECTOR_BUSY_EVENTS events (the store takes more than about 2,000 events a
# second), but less than a whole batch. Every step costs the same few statements and, for
# each stream it touches, one pass over the stream's whole state (its read-model rows and
# their digests): a wait lets more events share them. With writers on 8 streams this
# raised append throughput by about a fifth, against a lag p99 well under a second. A
# step that folded fewer events (staff at work) is followed by the idle wait, so a
# caller waiting to read their own change (`?min_position=`) waits no longer than before.
PROJECTOR_BUSY_S = 0.2
PROJECTOR_BUSY_EVENTS = 100
# A projector given a connection string of its own (`running_projector(listen_dsn=)`)
# LISTENs on this channel, and a reader waiting for its own change (`wait_for_position`)
# NOTIFYs it: the projector folds at once instead of at its next look. It then looks
# only every PROJECTOR_LISTENING_PAUSE_S, busy or not, so more events share each step's
# fixed work, and the idle worker's looks fell from about 19 ms of CPU a second to 5.
PROJECTOR_CHANNEL = "carepath_projector"
PROJECTOR_LISTENING_PAUSE_S = 0.25
# Every worker runs a projector, and each step is taken under PROJECTOR_LOCK_KEY, so any
# of them may fold. But a projector that finds the tracking row moved by another drops
# the states it holds and reads snapshots and events back, and writes whole tables: two
# projectors taking turns would do that at nearly every step. So a listening projector
# folds only while it leads: while it holds this session-level lock on its own
# connection. The others stand by, trying for the lock every PROJECTOR_STANDBY_S (and
# when a reader wakes them); the lock is free as soon as the leader's connection closes.
# A leader that holds the lock but folds nothing (its process stuck, or its host gone
# while PostgreSQL still counts the connection open) is passed over: a standby folds too
# once the oldest event it could fold has waited PROJECTOR_TAKEOVER_S.
PROJECTOR_LEADER_KEY = 0x70726F6A_6C656164  # "projlead"
PROJECTOR_STANDBY_S = 1.0
PROJECTOR_TAKEOVER_S = 5.0
# A running projector writes the snapshots it holds back once it has found nothing to
# fold for this long (a projector that idles between bursts of commands would otherwise
# write every touched episode's whole state after each burst).
PROJECTOR_SNAPSHOT_IDLE_S = 1.0
# A running projector writes an episode's state to `projection_snapshots` when it is this
# many events ahead of the stored one (and whenever a fact read from the snapshot changes,
# and for every episode it holds unwritten once idle for PROJECTOR_SNAPSHOT_IDLE_S). After
# a restart, an episode is folded from its snapshot plus at most this many events read
# back from `events`.
SNAPSHOT_EVERY = 100
# The events no running transaction can still add to: those of transactions older than
# the oldest one running (so a reader never passes over a gap a slower writer fills
# later), after the tracking row named `$1` in (tx, position) order. The tracking row is
# read first and the events after it by a LIMITed scan of `events_tx_position_idx` from
# that point (a LATERAL subquery): a join with the row comparison as its filter, as
# before, lets the planner read the whole table (an EXISTS took a sequential scan of
# `events` on every idle look, and a generic plan sorted every safe event).
_SAFE_AFTER_TRACKING = (
    "FROM projection_tracking t CROSS JOIN LATERAL (SELECT {columns} FROM events e "
    "WHERE (e.tx, e.position) > (t.tx, t.position) "
    "AND e.tx < pg_snapshot_xmin(pg_current_snapshot()) "
    "ORDER BY e.tx, e.position LIMIT {limit}) AS e WHERE t.name = $1"
)
_ANY_SAFE_EVENT = (
    "SELECT EXISTS (SELECT 1 " + _SAFE_AFTER_TRACKING.format(columns="e.position", limit="1") + ")"
)
_NEXT_SAFE_EVENTS = (
    "SELECT e.episode_id, e.seq, e.payload::text AS payload, e.tx::text AS tx_id, e.position, "
    "e.recorded_at, t.position AS tracked "
    + _SAFE_AFTER_TRACKING.format(
        columns="e.episode_id, e.seq, e.payload, e.tx, e.position, e.recorded_at", limit="$2"
    )
    + " ORDER BY e.tx, e.position"
)
# The same events without their payloads, for a projector that holds most of them already
# (`store.recent`); it reads the payloads of the others by position (`_PAYLOADS_AT`).
_NEXT_SAFE_KEYS = (
    "SELECT e.episode_id, e.seq, e.tx::text AS tx_id, e.position, "
    "e.recorded_at, t.position AS tracked "
    + _SAFE_AFTER_TRACKING.format(
        columns="e.episode_id, e.seq, e.tx, e.position, e.recorded_at", limit="$2"
    )
    + " ORDER BY e.tx, e.position"
)
# Whether the oldest event a projector could fold has waited more than `$2` seconds.
_LEADER_BEHIND = (
    "SELECT e.recorded_at < now() - make_interval(secs => $2) "
    + _SAFE_AFTER_TRACKING.format(columns="e.recorded_at", limit="1")
)
_PAYLOADS_AT = (
    "SELECT position, payload::text AS payload FROM events WHERE position = ANY($1::bigint[])"
)
_MOVE_TRACKING = (
    "UPDATE projection_tracking SET tx = $2::text::xid8, position = $3, updated_at = now() "
    "WHERE name = $1"
)
# Whether the event at a position is folded: at or before the tracking row in (tx, position)
# order. NULL when no event has that position.
_FOLDED = (
    "SELECT (e.tx, e.position) <= (t.tx, t.position) FROM events e, projection_tracking t "
    "WHERE e.position = $1 AND t.name = $2"
)


@dataclass
class _Folded:
    """An episode's state as the projector last folded and committed it, with a digest of
    each read-model row as written then, by table and key (None: not known, e.g. after a
    savepoint), and the version of the snapshot stored for it (None: none)."""

    version: int
    state: EpisodeState
    digests: dict[str, dict[Any, int]] | None = None
    stored: int | None = None

    @property
    def unsaved(self) -> bool:
        return self.stored != self.version


def _snapshot_facts(state: EpisodeState | None) -> tuple[Any, ...] | None:
    """What the worklists read from a stored state rather than from a read model (the
    clinic's time zone, whether an assessment is recorded): a fold that changes it writes
    the snapshot at once, so those reads never lag the read models."""
    if state is None:
        return None
    return (state.rules, state.assessment is not None)


# The primary key of each read model's rows besides `episode_id` (migration 0020's
# `delete` names a row by these).
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "episode_summary": (),
    "caseload": ("clinician_id",),
    "open_tasks": ("task_id",),
    "upcoming_deadlines": ("kind", "ref"),
    "attended_hours": ("week_start",),
    "episode_consents": ("consent_id",),
    "console_sessions": ("session_id",),
}


def _row_key(table: str, row: dict[str, Any]) -> Any:
    columns = ROW_KEYS[table]
    if len(columns) == 1:
        return row[columns[0]]
    return tuple(row[column] for column in columns)


def _digests(rows: dict[str, Any]) -> dict[str, dict[Any, int]]:
    """A digest of each read-model row (not of the state), by table and key: equal rows,
    equal digests; different rows, different digests but for a 64-bit hash collision.

    The digest is the built-in hash of the row's values, in the fixed order its builder
    gives them (a third of the cost of a keyed digest of the row's repr). Values that
    hash alike without being alike never stand for each other here: no integer column
    is negative (-1 and -2 hash alike), and the numbers that are equal (0 and 0.0) are
    stored alike (`numeric(7, 2)`)."""
    return {
        table: {_row_key(table, row): _digest(row) for row in value}
        for table, value in rows.items()
        if table != "state"
    }


def _digest(row: dict[str, Any]) -> int:
    values = tuple(row.values())
    try:
        return hash(values)
    except TypeError:  # a list among them: a task's recipients, a consent's scopes
        return hash(tuple(tuple(v) if isinstance(v, list) else v for v in values))


def _document(rows: dict[str, Any], state: EpisodeState | None) -> str:
    """The JSON text of a `project_episode` document: `rows`, and `state` when given.
    The state goes to JSON text straight from pydantic (70 µs for an episode of 60
    sessions, against 160 µs through a dict and `json.dumps`), and so do the rows
    (`pydantic_core.to_json`: 40 µs for all of such an episode's rows, against 117 µs)."""
    text = pydantic_core.to_json(rows).decode()
    if state is None:
        return text
    return '{"state":' + state.model_dump_json() + ("}" if text == "{}" else "," + text[1:])


def _changes(
    known: dict[str, dict[Any, int]],
    digests: dict[str, dict[Any, int]],
    rows: dict[str, Any],
) -> dict[str, Any]:
    """The document that turns the rows written with `known` digests into `rows`: for
    each table, the rows that are new or changed (`upsert`) and the keys of those gone
    (`delete`); a table with neither is left out (migration 0020)."""
    upsert: dict[str, list[dict[str, Any]]] = {}
    delete: dict[str, list[dict[str, Any]]] = {}
    for table, now in digests.items():
        before = known.get(table, {})
        if before == now:
            continue
        changed = [
            row
            for row in rows[table]
            if before.get(_row_key(table, row)) != now[_row_key(table, row)]
        ]
        if changed:
            upsert[table] = changed
        gone = [key for key in before if key not in now]
        if gone:
            columns = ROW_KEYS[table]
            delete[table] = [
                dict(zip(columns, key if len(columns) > 1 else (key,), strict=True)) for key in gone
            ]
    doc: dict[str, Any] = {}
    if upsert:
        doc["upsert"] = upsert
    if delete:
        doc["delete"] = delete
    return doc


class Projector:
    """Folds new events into the read models; `run` in the worker, `catch_up` anywhere.

    It keeps the states it folded last in memory (at most `cache_size`), so a busy
    episode's next events are applied without reading its snapshot back.
    """

    def __init__(
        self,
        pool: Pool,
        *,
        batch: int = PROJECTOR_BATCH,
        cache_size: int = 10_000,
        recent: RecentEvents | None = None,
    ) -> None:
        self._pool = pool
        self._batch = batch
        # The events an event store in this process wrote lately, if it shares them: those
        # are folded as they are instead of read back (store.recent).
        self._recent = recent
        self._cache_size = cache_size
        self._states: OrderedDict[str, _Folded] = OrderedDict()
        # States evicted from `_states` before their snapshot was written.
        self._evicted: dict[str, _Folded] = {}
        # The tracking position this projector last committed: if the tracking row is
        # anywhere else, another projector or a rebuild wrote since, and what this one
        # remembers about the stored rows and snapshots no longer holds.
        self._tracked: int | None = None
        # Whether this projector, running with listeners, last found itself the leader
        # (PROJECTOR_LEADER_KEY); one without listeners always folds.
        self.leading = True
        # How many events this projector has folded and committed.
        self.folded = 0

    async def step(self) -> int | None:
        """Fold the next batch of safe events in one transaction; how many were folded,
        or None if another projector holds the lock.

        An idle projector costs one statement per look (no transaction). A batch is
        written in one statement for all its episodes; only if PostgreSQL refuses a row
        is the batch written again one episode at a time, each under a savepoint, so the
        refused episode is parked in `projection_failures` and the rest go on."""
        async with self._pool.acquire() as conn:
            if not await conn.fetchval(_ANY_SAFE_EVENT, TRACKING_NAME):
                return 0
            async with conn.transaction():
                if not await conn.fetchval(
                    "SELECT pg_try_advisory_xact_lock($1)", PROJECTOR_LOCK_KEY
                ):
                    return None
                rows = await conn.fetch(
                    _NEXT_SAFE_EVENTS if self._recent is None else _NEXT_SAFE_KEYS,
                    TRACKING_NAME,
                    self._batch,
                )
                if not rows:
                    return 0
                if rows[0]["tracked"] != self._tracked:
                    self._forget()
                streams: dict[str, list[Any]] = {}
                for row in rows:
                    streams.setdefault(row["episode_id"], []).append(row)
                events = await self._events_of(conn, streams)
                # A stored state is sent only when `_start_of` would fold from it: it is
                # older than the first new event and newer than the state this projector
                # holds in memory for the stream (if that one is older than the first new
                # event too). Its JSON is the largest thing the projector reads, and a
                # busy stream's snapshot is behind the state held (it is written only
                # now and then), so most steps send none.
                snapshots = {
                    row["episode_id"]: row
                    for row in await conn.fetch(
                        "SELECT episode_id, s.version, "
                        "CASE WHEN s.version < k.first AND (k.cached IS NULL "
                        "OR k.cached >= k.first OR s.version > k.cached) THEN s.state END "
                        "AS state, f.seq IS NOT NULL AS failed "
                        "FROM unnest($1::text[], $2::integer[], $3::integer[]) "
                        "AS k(episode_id, cached, first) "
                        "LEFT JOIN projection_snapshots s USING (episode_id) "
                        "LEFT JOIN projection_failures f USING (episode_id)",
                        list(streams),
                        [self._cached_version(episode_id) for episode_id in streams],
                        [events[0]["seq"] for events in streams.values()],
                    )
                }
                try:
                    async with conn.transaction():
                        folded = await self._fold_batch(conn, streams, events, snapshots)
                except asyncpg.PostgresError:
                    folded = await self._fold_one_by_one(conn, streams, events, snapshots)
                await conn.execute(
                    _MOVE_TRACKING, TRACKING_NAME, rows[-1]["tx_id"], rows[-1]["position"]
                )
        observe_projection_lag(row["recorded_at"] for row in rows)
        # Only what committed is remembered.
        self._tracked = rows[-1]["position"]
        self.folded += len(rows)
        for episode_id, entry in folded.items():
            self._states[episode_id] = entry
            self._states.move_to_end(episode_id)
            self._evicted.pop(episode_id, None)
        while len(self._states) > self._cache_size:
            episode_id, entry = self._states.popitem(last=False)
            if entry.unsaved:
                self._evicted[episode_id] = entry
        return len(rows)

    async def _may_fold(self, wakeups: Wakeups, listening: bool) -> bool:
        """Whether a projector given `wakeups` folds now: it leads, or cannot tell (not
        `listening`, it has no connection of its own: it folds as one without), or the
        leader has left events waiting for PROJECTOR_TAKEOVER_S."""
        leads = not listening or await wakeups.leading()
        if leads != self.leading:
            log.info("projector_leading" if leads else "projector_standing_by")
            self.leading = leads
        if leads:
            return True
        behind = await self._pool.fetchval(_LEADER_BEHIND, TRACKING_NAME, PROJECTOR_TAKEOVER_S)
        if behind:
            log.warning("projector_leader_behind", takeover_after_s=PROJECTOR_TAKEOVER_S)
        return bool(behind)

    def _forget(self) -> None:
        """Drop what this projector remembers: someone else has written since."""
        self._states.clear()
        self._evicted.clear()
        self._tracked = None

    async def save_snapshots(self) -> int:
        """Write the states this projector holds ahead of their stored snapshots; how many.

        Under the projector's lock, and only if the tracking row is still where this
        projector left it (otherwise a rebuild or another projector wrote since, and the
        stored snapshots stay as they are: any of them is a correct place to fold from)."""
        unsaved = [
            (episode_id, entry)
            for episode_id, entry in (*self._states.items(), *self._evicted.items())
            if entry.unsaved
        ]
        if not unsaved:
            return 0
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PROJECTOR_LOCK_KEY):
                return 0
            tracked = await conn.fetchval(
                "SELECT position FROM projection_tracking WHERE name = $1", TRACKING_NAME
            )
            if tracked != self._tracked:
                self._forget()
                return 0
            await conn.execute(
                "INSERT INTO projection_snapshots AS s (episode_id, version, state) "
                "SELECT episode_id, version, state::jsonb "
                "FROM unnest($1::text[], $2::integer[], $3::text[]) AS u(episode_id, version, state) "
                "ON CONFLICT (episode_id) DO UPDATE SET version = EXCLUDED.version, "
                "state = EXCLUDED.state WHERE s.version < EXCLUDED.version",
                [episode_id for episode_id, _ in unsaved],
                [entry.version for _, entry in unsaved],
                [entry.state.model_dump_json() for _, entry in unsaved],
            )
        for _, entry in unsaved:
            entry.stored = entry.version
        self._evicted.clear()
        return len(unsaved)

    async def _events_of(
        self, conn: Connection, streams: dict[str, list[Any]]
    ) -> dict[str, list[str | Event]]:
        """The events of each stream's `rows`, in order: as their stored JSON text, or, for
        a projector sharing the store's recent events, as held there (the payloads of the
        others read back in one statement)."""
        if self._recent is None:
            return {
                episode_id: [row["payload"] for row in rows] for episode_id, rows in streams.items()
            }
        take = self._recent.take
        # Each event as held, or the position its payload is to be read back from.
        held: dict[str, list[Event | int]] = {
            episode_id: [take(episode_id, row["seq"]) or row["position"] for row in rows]
            for episode_id, rows in streams.items()
        }
        missing = [at for events in held.values() for at in events if isinstance(at, int)]
        stored: dict[int, str] = {}
        if missing:
            stored = {
                row["position"]: row["payload"] for row in await conn.fetch(_PAYLOADS_AT, missing)
            }
        return {
            episode_id: [stored[at] if isinstance(at, int) else at for at in events]
            for episode_id, events in held.items()
        }

    def _cached_version(self, episode_id: str) -> int | None:
        cached = self._states.get(episode_id)
        return None if cached is None else cached.version

    async def _fold_batch(
        self,
        conn: Connection,
        streams: dict[str, list[Any]],
        events: dict[str, list[str | Event]],
        snapshots: dict[str, Any],
    ) -> dict[str, _Folded]:
        """Fold every stream, then write all their read models in one statement.

        A stream folded on from this projector's own last state sends only the rows that
        changed since, and the keys of those gone (`_changes`): most events change a row
        or two of two or three tables. Any other sends every table whole. The state goes
        with them only when a snapshot is due."""
        folded: dict[str, _Folded] = {}
        docs: list[tuple[str, int, str]] = []
        for episode_id, keys in streams.items():
            snapshot = snapshots[episode_id]
            start = await self._start_of(conn, episode_id, keys, events[episode_id], snapshot)
            if start is None:
                continue
            state, pending = start
            before = self._states.get(episode_id) if state is not None else None
            known = (
                before.digests
                if before is not None and before.state is state and len(pending) == len(keys)
                else None
            )
            start_facts = _snapshot_facts(state)
            count, folded_to, last = await _fold(conn, episode_id, state, pending)
            if folded_to is None or last is None:
                continue
            rows, digests = _rows_to_send(folded_to, last.occurred_at, state, known)
            state = folded_to
            stored = snapshot["version"]
            snapshot_due = (
                count < len(pending)
                or stored is None
                or state.version - stored >= SNAPSHOT_EVERY
                or _snapshot_facts(state) != start_facts
            )
            if snapshot_due:
                stored = state.version
            docs.append(
                (episode_id, state.version, _document(rows, state if snapshot_due else None))
            )
            if count == len(pending):
                folded[episode_id] = _Folded(state.version, state, digests, stored)
        if docs:
            await conn.execute(
                "SELECT project_episode(k.episode_id, k.version, k.doc::jsonb) "
                "FROM unnest($1::text[], $2::integer[], $3::text[]) AS k(episode_id, version, doc)",
                *map(list, zip(*docs, strict=True)),
            )
        return folded

    async def _fold_one_by_one(
        self,
        conn: Connection,
        streams: dict[str, list[Any]],
        events: dict[str, list[str | Event]],
        snapshots: dict[str, Any],
    ) -> dict[str, _Folded]:
        """Fold and write each stream under its own savepoint: a stream whose rows
        PostgreSQL refuses is parked, not the batch."""
        folded: dict[str, _Folded] = {}
        for episode_id, rows in streams.items():
            try:
                async with conn.transaction():
                    start = await self._start_of(
                        conn, episode_id, rows, events[episode_id], snapshots[episode_id]
                    )
                    if start is None:
                        continue
                    state = await _fold_into(conn, episode_id, *start)
            except asyncpg.PostgresError as exc:
                await _record_failure(conn, episode_id, rows[0]["seq"], exc)
                continue
            if state is not None:
                folded[episode_id] = _Folded(state.version, state, stored=state.version)
        return folded

    async def _start_of(
        self,
        conn: Connection,
        episode_id: str,
        rows: list[Any],
        events: list[str | Event],
        snapshot: Any,
    ) -> tuple[EpisodeState | None, list[str | Event]] | None:
        """The state to fold `rows` (whose events are `events`) onto and the events to
        fold, or None if the stream is parked or already folded past them."""
        if snapshot["failed"]:
            return None
        first, last = rows[0]["seq"], rows[-1]["seq"]
        version = snapshot["version"]
        if version is not None and version >= last:
            return None  # already folded (a rebuild swapped in a newer state)
        # Start from the latest state known before `first`: the one this projector holds,
        # or the stored snapshot (sent only when it is the newer of the two, see `step`),
        # or nothing.
        cached = self._states.get(episode_id) or self._evicted.get(episode_id)
        state: EpisodeState | None = None
        base = 0
        if cached is not None and cached.version < first:
            state, base = cached.state, cached.version
        if version is not None and base < version < first and snapshot["state"] is not None:
            state, base = EpisodeState.model_validate(snapshot["state"]), version
        pending = events
        if base < first - 1:
            # The events between: the snapshot is written only now and then (and a stream
            # stored before the read models existed has none).
            stored = await conn.fetch(
                "SELECT payload::text AS payload FROM events "
                "WHERE episode_id = $1 AND seq > $2 AND seq < $3 "
                "ORDER BY seq",
                episode_id,
                base,
                first,
            )
            pending = [*(row["payload"] for row in stored), *pending]
        return state, pending

    async def catch_up(self) -> int:
        """Fold until no safe event is left, then write the snapshots this projector holds
        unwritten; how many events were folded."""
        total = 0
        while True:
            folded = await self.step()
            if folded is None:
                await asyncio.sleep(PROJECTOR_IDLE_S)
                continue
            total += folded
            if folded < self._batch:
                await self.save_snapshots()
                return total

    async def run(self, wakeups: Wakeups | None = None) -> None:
        """Fold new events until cancelled; a failing database is waited out, never raised.
        With `wakeups`, a reader's NOTIFY starts the next step at once."""
        failures = 0
        last_folded = time.monotonic()
        while True:
            try:
                # One look at the listening connection a round (it reconnects if lost).
                listening = wakeups is not None and await wakeups.listening()
                standing_by = wakeups is not None and not await self._may_fold(wakeups, listening)
                folded = None if standing_by else await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning(
                    "projector_failed", error=type(exc).__name__, retry_in_s=min(failures, 10)
                )
                await asyncio.sleep(min(failures, 10))
                continue
            if standing_by and wakeups is not None:
                await wakeups.wait(PROJECTOR_STANDBY_S)
                continue
            failures = 0
            if folded:
                last_folded = time.monotonic()
            elif folded == 0 and time.monotonic() - last_folded >= PROJECTOR_SNAPSHOT_IDLE_S:
                # Idle for a while: a good moment to write the snapshots held back while
                # busy (a no-op when none is held back).
                try:
                    await self.save_snapshots()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("projector_snapshots_failed", error=type(exc).__name__)
            pause = pause_after(folded, self._batch, listening=listening)
            if pause and wakeups is not None and listening:
                await wakeups.wait(pause)
            elif pause:
                await asyncio.sleep(pause)


def pause_after(folded: int | None, batch: int, *, listening: bool = False) -> float:
    """How long a running projector waits after a step that folded `folded` events (None:
    another projector held the lock): none after a whole batch; else, when readers can
    wake it (`listening`), `PROJECTOR_LISTENING_PAUSE_S`; otherwise `PROJECTOR_BUSY_S`
    after a busy step and `PROJECTOR_IDLE_S` after any other."""
    if folded == batch:
        return 0.0
    if listening:
        return PROJECTOR_LISTENING_PAUSE_S
    if folded is not None and folded >= PROJECTOR_BUSY_EVENTS:
        return PROJECTOR_BUSY_S
    return PROJECTOR_IDLE_S


class Wakeups:
    """Readers' requests to fold now: NOTIFY on PROJECTOR_CHANNEL, heard on a connection
    of the projector's own (a pool's connections keep no session state, so none of them
    can hold a LISTEN). A lost connection is opened again at the next pause; until then
    the projector looks as often as one without listeners."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._heard = asyncio.Event()
        # Whether `_conn` holds PROJECTOR_LEADER_KEY (a session lock: it goes with it).
        self._leads = False

    async def listening(self) -> bool:
        if self._conn is not None and not self._conn.is_closed():
            return True
        self._conn = None
        self._leads = False
        try:
            conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        try:
            await conn.add_listener(PROJECTOR_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await conn.close(timeout=CONNECT_TIMEOUT_S)
            return False
        self._conn = conn
        return True

    def _notified(self, *_: object) -> None:
        self._heard.set()

    async def leading(self) -> bool:
        """Whether this connection holds the projectors' leader lock, taken now if it is
        free (PROJECTOR_LEADER_KEY); asked once `listening()` has answered True."""
        if not self._leads and self._conn is not None:
            taken = await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", PROJECTOR_LEADER_KEY
            )
            self._leads = bool(taken)
        return self._leads

    async def wait(self, timeout: float) -> None:
        """Until a reader asks or `timeout` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._heard.wait(), timeout)
        self._heard.clear()

    async def close(self) -> None:
        self._leads = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.close(timeout=CONNECT_TIMEOUT_S)


@contextlib.asynccontextmanager
async def running_projector(
    pool: Pool, listen_dsn: str | None = None, recent: RecentEvents | None = None
) -> AsyncIterator[Projector]:
    """A projector folding new events in the background for as long as the block runs;
    with `listen_dsn`, it listens there for readers waiting for their own change; with
    `recent`, it folds the events an event store in this process wrote as they are
    (`store.recent`)."""
    projector = Projector(pool, recent=recent)
    wakeups = Wakeups(listen_dsn) if listen_dsn is not None else None
    try:
        async with in_background(projector.run(wakeups), "projector"):
            yield projector
    finally:
        if wakeups is not None:
            await wakeups.close()


async def _fold_into(
    conn: Connection, episode_id: str, state: EpisodeState | None, pending: list[str | Event]
) -> EpisodeState | None:
    """Fold and write; the state reached, or None if some event did not fold."""
    folded, reached = await _fold_and_write(conn, episode_id, state, pending)
    return reached if folded == len(pending) else None


async def is_folded(pool: Pool, position: int) -> bool:
    """Whether the read models include the event at `position`; `UnknownPosition` if
    no stored event has it."""
    async with pool.acquire() as conn:
        folded = await conn.fetchval(_FOLDED, position, TRACKING_NAME)
    if folded is None:
        raise UnknownPosition(f"no event has position {position}")
    return bool(folded)


async def wait_for_position(pool: Pool, position: int, timeout: float = 5.0) -> None:
    """Return once the read models include the event at `position` (read your writes);
    `ProjectionBehind` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    asked = False
    while not await is_folded(pool, position):
        if not asked:
            # Wake a projector that listens, rather than wait for its next look.
            await pool.execute("SELECT pg_notify($1, '')", PROJECTOR_CHANNEL)
            asked = True
        if time.monotonic() >= deadline:
            raise ProjectionBehind(
                f"the read models have not reached position {position} within {timeout:g} s; "
                "retry shortly"
            )
        await asyncio.sleep(0.01)


# --- rebuild ----------------------------------------------------------------------------

# Streams folded into the rebuild tables per transaction.
_REBUILD_COMMIT_EVERY = 200


async def rebuild_projections(pool: Pool, progress: Progress | None = None) -> RebuildResult:
    """Refill every read model from the events without stopping anything.

    Every stream is folded into the `rebuild_*` tables, committed every few hundred
    streams, up to the last event no running transaction can still add to. Then, in one
    short transaction under the projector's lock, the rebuilt rows replace the live ones
    and the tracking row moves to where the rebuild stopped; the projector folds what was
    appended meanwhile. Appends never wait; readers see the old rows until the swap.
    """
    async with pool.acquire() as reader, pool.acquire() as writer:
        if not await writer.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK_KEY):
            raise RebuildRunning("another rebuild of the read models is running")
        try:
            result = await _rebuild(reader, writer, progress)
        finally:
            await writer.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK_KEY)
    await Projector(pool).catch_up()
    return result


async def _rebuild(
    reader: Connection, writer: Connection, progress: Progress | None
) -> RebuildResult:
    shadow = [f"rebuild_{table}" for table in PROJECTION_TABLES]
    await writer.execute(f"TRUNCATE {', '.join(shadow)}")
    streams = events = 0
    failed: list[str] = []
    # A read-only transaction holds no transaction id, so it holds no projector back.
    async with reader.transaction(isolation="repeatable_read", readonly=True):
        upto = await reader.fetchrow(
            "SELECT tx::text AS tx_id, position FROM events "
            "WHERE tx < pg_snapshot_xmin(pg_current_snapshot()) "
            "ORDER BY tx DESC, position DESC LIMIT 1"
        )
        upto_tx, upto_position = (upto["tx_id"], upto["position"]) if upto else ("1", 0)
        total = int(
            await reader.fetchval(
                "SELECT count(DISTINCT episode_id) FROM events "
                "WHERE (tx, position) <= ($1::text::xid8, $2::bigint)",
                upto_tx,
                upto_position,
            )
        )
        cursor = reader.cursor(
            "SELECT episode_id, payload::text AS payload FROM events "
            "WHERE (tx, position) <= ($1::text::xid8, $2::bigint) ORDER BY episode_id, seq",
            upto_tx,
            upto_position,
            prefetch=2000,
        )
        current: str | None = None
        batch: list[str] = []
        pending = writer.transaction()
        await pending.start()
        try:
            async for row in cursor:
                if row["episode_id"] != current:
                    if current is not None:
                        events += await _rebuild_stream(writer, current, batch, failed)
                        streams += 1
                        if progress:
                            progress(streams, total)
                        if streams % _REBUILD_COMMIT_EVERY == 0:
                            await pending.commit()
                            pending = writer.transaction()
                            await pending.start()
                    current, batch = row["episode_id"], []
                batch.append(row["payload"])
            if current is not None:
                events += await _rebuild_stream(writer, current, batch, failed)
                streams += 1
                if progress:
                    progress(streams, total)
        except BaseException:
            await pending.rollback()
            raise
        await pending.commit()
    async with writer.transaction():
        await writer.execute("SELECT pg_advisory_xact_lock($1)", PROJECTOR_LOCK_KEY)
        for table in PROJECTION_TABLES:
            # DELETE, not TRUNCATE: readers keep seeing the old rows until this commits.
            await writer.execute(f"DELETE FROM {table}")
            await writer.execute(f"INSERT INTO {table} SELECT * FROM rebuild_{table}")
        await writer.execute(_MOVE_TRACKING, TRACKING_NAME, upto_tx, upto_position)
    await writer.execute(f"TRUNCATE {', '.join(shadow)}")
    return RebuildResult(streams=streams, events=events, failed_streams=tuple(failed))


async def _rebuild_stream(
    conn: Connection, episode_id: str, batch: list[str], failed: list[str]
) -> int:
    folded, _ = await _fold_and_write(conn, episode_id, None, batch, prefix="rebuild_")
    if folded < len(batch):
        failed.append(episode_id)
    return folded


async def dump_read_models(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every read-model row, in a stable order: what tests and checks compare."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table, order in READ_MODELS.items():
        rows = await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")
        out[table] = [dict(row) for row in rows]
    return out


# --- rows from a state ----------------------------------------------------------------


def read_model_rows(state: EpisodeState, last_event_at: datetime) -> dict[str, Any]:
    """The rows of every read model for one episode, keyed by table, plus its state."""
    return {"state": state.model_dump(mode="json"), **_rows(state, last_event_at)}


def _rows(
    state: EpisodeState, last_event_at: datetime, kept: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The rows of every read model for one episode, keyed by table; without the
    `console_sessions` rows of the sessions named in `kept` (their rows are known not to
    have changed: see `_kept_sessions`)."""
    pending = pending_deadlines(state)
    return {
        # The first pending deadline is `next_deadline(state)` (a property the domain's
        # tests hold at every step), so the deadlines are listed once for both tables.
        "episode_summary": [_summary(state, last_event_at, pending[0][1] if pending else None)],
        "caseload": _caseload(state),
        "open_tasks": _open_tasks(state),
        "upcoming_deadlines": _deadlines(state, pending),
        "attended_hours": _attended_hours(state),
        "episode_consents": _consents(state),
        "console_sessions": _console_sessions(state, kept),
    }


def _rows_to_send(
    state: EpisodeState,
    last_event_at: datetime,
    before: EpisodeState | None,
    known: dict[str, dict[Any, int]] | None,
) -> tuple[dict[str, Any], dict[str, dict[Any, int]]]:
    """What to write for `state`, and the digests of all its rows. With `known`, the
    digests of the rows written for `before`: only the rows that changed since and the
    keys of those gone (`_changes`), and the sessions carried over unchanged are not even
    built. Without: every row."""
    if known is None or before is None:
        rows = _rows(state, last_event_at)
        return rows, _digests(rows)
    written = known.get("console_sessions", {})
    kept = _kept_sessions(state, before, written)
    rows = _rows(state, last_event_at, kept)
    digests = _digests(rows)
    digests["console_sessions"].update((key, written[key]) for key in kept)
    return _changes(known, digests, rows), digests


def _kept_sessions(
    state: EpisodeState, before: EpisodeState, known: dict[Any, int]
) -> frozenset[str]:
    """The sessions of `state` whose `console_sessions` rows are those written for
    `before` (digests `known`): the very same session objects, at the same place. States
    are immutable and each event replaces only the sessions it changes, so most of an
    episode's sessions are carried from one state to the next as they are. Besides the
    session, its row holds only the episode's id and program, and is written only while
    the episode is open."""
    if state.is_closed or before.is_closed:
        return frozenset()
    if (state.episode_id, state.program_id) != (before.episode_id, before.program_id):
        return frozenset()
    old = before.sessions
    return frozenset(
        session.session_id
        for session, was in zip(state.sessions, old, strict=False)
        if session is was and session.session_id in known
    )


def _iso(moment: datetime | None) -> str | None:
    # Every moment here comes from events, whose times carry their offset.
    return moment.isoformat() if moment is not None else None


def _hours(hours: float | None) -> float | None:
    return round(hours, 2) if hours is not None else None


def _summary(
    state: EpisodeState, last_event_at: datetime, next_at: datetime | None
) -> dict[str, Any]:
    return {
        "episode_id": state.episode_id,
        "program_id": state.program_id,
        "client_ref": state.client_ref,
        "stage": state.stage.value,
        "phase_id": state.phase_id,
        "primary_clinician": state.primary_clinician,
        "escalation_level": state.escalation_level,
        "next_deadline": _iso(next_at),
        "last_seq": state.version,
        "referred_at": _iso(state.referred_at),
        "admitted_at": _iso(state.admitted_at),
        # Nothing follows a closing event, so the last event is the one that closed it.
        "closed_at": _iso(last_event_at) if state.is_closed else None,
        "last_event_at": _iso(last_event_at),
    }


def _caseload(state: EpisodeState) -> list[dict[str, Any]]:
    if state.is_closed or state.plan is None:
        return []
    primary = state.plan.primary_clinician
    members = {m.user_id: m.discipline.value for m in state.plan.care_team}
    members.setdefault(primary, "unspecified")
    return [
        {
            "clinician_id": user_id,
            "episode_id": state.episode_id,
            "program_id": state.program_id,
            "discipline": discipline,
            "is_primary": user_id == primary,
            "stage": state.stage.value,
            "escalation_level": state.escalation_level,
        }
        for user_id, discipline in sorted(members.items())
    ]


def _open_tasks(state: EpisodeState) -> list[dict[str, Any]]:
    if state.is_closed:
        return []
    return [
        {
            "episode_id": state.episode_id,
            "task_id": task.task_id,
            "program_id": state.program_id,
            "primary_clinician": state.primary_clinician,
            "kind": task.kind.value,
            "level": task.level,
            "opened_at": _iso(task.opened_at),
            "due_at": _iso(task.due_at),
            "overdue": task.overdue,
            "on_hold": state.stage is Stage.ON_HOLD,
            "notify": [recipient.value for recipient in task.notify],
        }
        # A superseded task is closed: the task one rung up stands for its concern.
        for task in state.tasks
        if task.is_open
    ]


def _deadlines(state: EpisodeState, pending: tuple[PendingItem, ...]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, due_at, ref in pending:
        rows.setdefault(
            (kind, ref or ""),
            {
                "episode_id": state.episode_id,
                "kind": kind,
                "ref": ref or "",
                "due_at": _iso(due_at),
                "program_id": state.program_id,
                "primary_clinician": state.primary_clinician,
            },
        )
    return list(rows.values())


def _attended_hours(state: EpisodeState) -> list[dict[str, Any]]:
    """One row per week of the weekly intensity check (`domain.weeks`), the open one
    included: attendance as the sessions now stand (corrections included), beside the
    check's verdict at the week's end (none yet for the open week, none for a week a
    hold cut short)."""
    sessions = state.sessions
    # Each week's sessions found by bisecting the start times once sorted, rather than by
    # looking at every session for every week; `tally` gets them in the state's order.
    order = sorted(range(len(sessions)), key=lambda i: sessions[i].starts_at)
    starts = [sessions[i].starts_at for i in order]
    rows = []
    for week in weeks_so_far(state):
        within = order[bisect_left(starts, week.start) : bisect_left(starts, week.end)]
        attendance = tally([sessions[i] for i in sorted(within)], week.start, week.end)
        rows.append(
            {
                "episode_id": state.episode_id,
                "week_start": _iso(week.start),
                "week_end": _iso(week.end),
                "program_id": state.program_id,
                "hours": round(attendance.hours, 2),
                "attended": attendance.attended,
                "partial": attendance.partial,
                "excused": attendance.excused,
                "no_shows": attendance.no_shows,
                "checked_hours": _hours(week.attended_hours),
                "minimum_hours": _hours(week.minimum_hours),
                "below_minimum": week.below_minimum,
            }
        )
    return rows


def _consents(state: EpisodeState) -> list[dict[str, Any]]:
    return [
        {
            "episode_id": state.episode_id,
            "consent_id": consent.consent_id,
            "recipient_ref": consent.recipient_ref,
            "recipient_kind": consent.recipient_kind.value,
            "scopes": [scope.value for scope in consent.scopes],
            "expires_at": _iso(consent.expires_at),
            "revoked": consent.revoked,
        }
        for consent in state.consents
    ]


def _console_sessions(state: EpisodeState, kept: frozenset[str]) -> list[dict[str, Any]]:
    """Every session of an open episode as it now stands (the console's Today page), but
    those named in `kept`."""
    if state.is_closed:
        return []
    return [_session_row(state, s) for s in state.sessions if s.session_id not in kept]


def _session_row(state: EpisodeState, session: Session) -> dict[str, Any]:
    return {
        "episode_id": state.episode_id,
        "session_id": session.session_id,
        "program_id": state.program_id,
        "kind": session.kind.value,
        "starts_at": _iso(session.starts_at),
        "hours": round(session.hours, 2),
        "cancelled": session.cancelled,
        "status": session.status.value if session.status is not None else None,
        "attended_hours": round(session.attended_hours, 2),
    }
