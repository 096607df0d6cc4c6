"""Read models, folded from the events in the same transaction as the append that adds them.

The projector keeps each episode's folded state (the pure domain's `fold`) in
`projection_snapshots`; an append applies only its new events to that snapshot with
`evolve`, then replaces the episode's rows in every read-model table in one round trip
(the `project_episode` SQL function). Because every row is computed from the state alone
(plus the last event's time), `rebuild_projections` - which folds each stream from the
start - writes exactly the rows the live appends wrote.

A stream whose events do not fold is recorded in `projection_failures`; its read models
keep the last state that folded, and the append itself still succeeds: the audit record
never waits on a read model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic
import structlog

from domain.deadlines import next_deadline, pending_deadlines
from domain.decider import evolve
from domain.events import Event, load_event
from domain.state import EpisodeState
from domain.vocabulary import Stage
from domain.weeks import tally, weeks_so_far
from store.db import Connection, Pool

log = structlog.get_logger("carepath.projections")

# Every table `rebuild_projections` empties and refills, bookkeeping included, in the order
# an append touches them: TRUNCATE locks them in this order, so it cannot deadlock with one.
PROJECTION_TABLES = (
    "projection_failures",
    "projection_snapshots",
    "episode_summary",
    "caseload",
    "open_tasks",
    "upcoming_deadlines",
    "attended_hours",
    "episode_consents",
)
# The read models proper, with the columns that order their rows (for comparisons).
READ_MODELS: dict[str, str] = {
    "episode_summary": "episode_id",
    "caseload": "clinician_id, episode_id",
    "open_tasks": "episode_id, task_id",
    "upcoming_deadlines": "episode_id, kind, ref",
    "attended_hours": "episode_id, week_start",
    "episode_consents": "episode_id, consent_id",
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


async def project_append(
    conn: Connection, episode_id: str, head_seq_before: int, events: Sequence[Event]
) -> None:
    """Fold newly appended `events` (seqs after `head_seq_before`) into the read models.

    Runs inside the append's transaction, under its per-stream lock.
    """
    if not events:
        return
    if await conn.fetchval("SELECT 1 FROM projection_failures WHERE episode_id = $1", episode_id):
        return
    snapshot = await conn.fetchrow(
        "SELECT version, state FROM projection_snapshots WHERE episode_id = $1", episode_id
    )
    state: EpisodeState | None = None
    pending: Iterable[Event | dict[str, Any]] = events
    if head_seq_before == 0:
        pass
    elif snapshot is not None and snapshot["version"] == head_seq_before:
        state = EpisodeState.model_validate(snapshot["state"])
    else:
        # No snapshot yet (events stored before the read models existed) or a stale one:
        # fold the whole stream.
        rows = await conn.fetch(
            "SELECT payload FROM events WHERE episode_id = $1 AND seq <= $2 ORDER BY seq",
            episode_id,
            head_seq_before,
        )
        pending = [*(row["payload"] for row in rows), *events]
    await _fold_and_write(conn, episode_id, state, pending)


async def _fold_and_write(
    conn: Connection,
    episode_id: str,
    state: EpisodeState | None,
    events: Iterable[Event | dict[str, Any]],
) -> int:
    """Fold `events` (domain events or stored payloads) onto `state` and write the read
    models; return how many events folded."""
    last: Event | None = None
    folded = 0
    for item in events:
        try:
            event = load_event(item) if isinstance(item, dict) else item
            state = evolve(state, event)
        # Any failure to fold is recorded, never raised: the append it belongs to is the
        # audit record and must not be refused because a read model cannot follow it.
        except Exception as exc:
            seq = item.get("seq", 0) if isinstance(item, dict) else item.seq
            await _record_failure(conn, episode_id, int(seq), exc)
            break
        last = event
        folded += 1
    if state is not None and last is not None:
        await conn.execute(
            "SELECT project_episode($1, $2, $3)",
            episode_id,
            state.version,
            read_model_rows(state, last.occurred_at),
        )
    return folded


async def _record_failure(conn: Connection, episode_id: str, seq: int, exc: Exception) -> None:
    reason = _describe(exc)
    # The log line names the kind of failure only: an exception's message may quote a
    # value of the event. The full reason stays in `projection_failures`.
    log.warning("projection_failed", episode_id=episode_id, seq=seq, error=type(exc).__name__)
    await conn.execute(
        "INSERT INTO projection_failures (episode_id, seq, reason) VALUES ($1, $2, $3) "
        "ON CONFLICT (episode_id) DO NOTHING",
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


async def rebuild_projections(pool: Pool, progress: Progress | None = None) -> RebuildResult:
    """Empty every read model and refill it from the events, in one transaction.

    Concurrent appends wait for the rebuild to commit and then continue from its snapshots.
    """
    streams = events = 0
    failed: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"TRUNCATE {', '.join(PROJECTION_TABLES)}")
        total = int(await conn.fetchval("SELECT count(DISTINCT episode_id) FROM events"))
        current: str | None = None
        batch: list[dict[str, Any]] = []
        cursor = conn.cursor(
            "SELECT episode_id, payload FROM events ORDER BY episode_id, seq", prefetch=2000
        )
        # Streams are folded one after another; rows are fetched in pages, not all at once.
        async for row in cursor:
            if row["episode_id"] != current:
                if current is not None:
                    events += await _rebuild_stream(conn, current, batch, failed)
                    streams += 1
                    if progress:
                        progress(streams, total)
                current, batch = row["episode_id"], []
            batch.append(row["payload"])
        if current is not None:
            events += await _rebuild_stream(conn, current, batch, failed)
            streams += 1
            if progress:
                progress(streams, total)
    return RebuildResult(streams=streams, events=events, failed_streams=tuple(failed))


async def _rebuild_stream(
    conn: Connection, episode_id: str, batch: list[dict[str, Any]], failed: list[str]
) -> int:
    folded = await _fold_and_write(conn, episode_id, None, batch)
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
    return {
        "state": state.model_dump(mode="json"),
        "episode_summary": [_summary(state, last_event_at)],
        "caseload": _caseload(state),
        "open_tasks": _open_tasks(state),
        "upcoming_deadlines": _deadlines(state),
        "attended_hours": _attended_hours(state),
        "episode_consents": _consents(state),
    }


def _iso(moment: datetime | None) -> str | None:
    # Every moment here comes from events, whose times carry their offset.
    return moment.isoformat() if moment is not None else None


def _hours(hours: float | None) -> float | None:
    return round(hours, 2) if hours is not None else None


def _summary(state: EpisodeState, last_event_at: datetime) -> dict[str, Any]:
    return {
        "episode_id": state.episode_id,
        "program_id": state.program_id,
        "client_ref": state.client_ref,
        "stage": state.stage.value,
        "phase_id": state.phase_id,
        "primary_clinician": state.primary_clinician,
        "escalation_level": state.escalation_level,
        "next_deadline": _iso(next_deadline(state)),
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


def _deadlines(state: EpisodeState) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, due_at, ref in pending_deadlines(state):
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
    rows = []
    for week in weeks_so_far(state):
        attendance = tally(state.sessions, week.start, week.end)
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
