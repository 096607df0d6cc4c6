"""What the record said at a moment: the events up to it, their timeline, the state they fold to.

"As of T" means the events whose `occurred_at` is at or before T: the clinical time the
workflow stamped on them (`workflow.now()` when the command or timer was applied), which
is also the time the workflow reported its state to the caller. `recorded_at` (the
database's clock at insert) is not used to select events: it trails `occurred_at` by the
append's latency, is not covered by the hash chain, and in a history written by retries
or a backfill it says when a row landed, not when the episode changed. Both times are
shown in the timeline.

Events are selected by their position in the stream, not by sorting times: the stream
order is the order the decider applied them, and occurred_at never decreases along it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from audit.errors import InvalidAsOf
from domain.decider import fold
from domain.state import EpisodeState
from store.records import StoredEvent


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimelineItem(_Model):
    """One stored event as an auditor reads it: when, what, who, and its place in the chain."""

    seq: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    actor_id: str
    actor_role: str
    command_id: str
    hash: str


class FieldDifference(_Model):
    """One field whose value differs between the folded record and the live workflow."""

    path: str
    stored: Any
    live: Any


def require_offset(moment: datetime) -> datetime:
    """Refuse a naive time: an audit must not depend on the server's time zone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidAsOf(
            f"as-of time {moment.isoformat()} has no UTC offset: add one, "
            "e.g. 2025-03-01T14:30:00Z or 2025-03-01T09:30:00-05:00"
        )
    return moment


def select_as_of(stored: Sequence[StoredEvent], as_of: datetime | None) -> list[StoredEvent]:
    """The leading events of the stream whose occurred_at is at or before `as_of` (all if None)."""
    if as_of is None:
        return list(stored)
    require_offset(as_of)
    selected: list[StoredEvent] = []
    for event in stored:
        if event.occurred_at > as_of:
            break
        selected.append(event)
    return selected


def timeline(stored: Iterable[StoredEvent]) -> tuple[TimelineItem, ...]:
    return tuple(
        TimelineItem(
            seq=e.seq,
            type=e.event_type,
            occurred_at=e.occurred_at,
            recorded_at=e.recorded_at,
            actor_id=e.actor_id,
            actor_role=e.actor_role,
            command_id=e.command_id,
            hash=e.hash,
        )
        for e in stored
    )


def fold_stored(stored: Iterable[StoredEvent]) -> EpisodeState | None:
    """The state the stored events fold to (None before the referral)."""
    return fold(e.event for e in stored)


def diff_states(stored: EpisodeState | None, live: EpisodeState | None) -> list[FieldDifference]:
    """Every leaf field that differs, as a dotted path (`sessions[2].status`), in field order."""
    left = None if stored is None else stored.model_dump(mode="json")
    right = None if live is None else live.model_dump(mode="json")
    out: list[FieldDifference] = []
    _diff("", left, right, out)
    return out


def _diff(path: str, left: Any, right: Any, out: list[FieldDifference]) -> None:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in [*left, *(k for k in right if k not in left)]:
            _diff(f"{path}.{key}" if path else str(key), left.get(key), right.get(key), out)
        return
    if isinstance(left, list) and isinstance(right, list):
        for index in range(max(len(left), len(right))):
            _diff(
                f"{path}[{index}]",
                left[index] if index < len(left) else None,
                right[index] if index < len(right) else None,
                out,
            )
        return
    if left != right:
        out.append(FieldDifference(path=path or "(state)", stored=left, live=right))
