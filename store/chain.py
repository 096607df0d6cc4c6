"""The hash chain that makes an episode's stream tamper-evident, and its verification.

Each event's hash is SHA-256 over the previous event's hash (64 lowercase hex digits;
the first event of a stream follows `GENESIS_HASH`) followed by the canonical JSON of the
event's payload: keys sorted, no whitespace, UTF-8. The payload holds the episode id, seq,
type, schema version, time, actor and command id, so the hash covers all of them; the
columns that repeat them are checked against the payload. `recorded_at` is set by the
database and is not covered.

The encoding and the hash function are the domain's (`domain.canonical`): the workflow
computes the same digests to check what the store holds, and may not import the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.canonical import GENESIS_HASH, canonical_json, chain_hash
from store.records import StoredEvent

__all__ = [
    "GENESIS_HASH",
    "VerificationResult",
    "canonical_json",
    "chain_hash",
    "verify_chain",
]


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of walking a stream: ok, or the first bad seq and why."""

    ok: bool
    first_bad_seq: int | None = None
    reason: str | None = None
    events_checked: int = 0
    head_hash: str = GENESIS_HASH


def verify_chain(stored_events: Sequence[StoredEvent]) -> VerificationResult:
    """Recompute the chain of one stream, given from seq 1 in seq order.

    A stream cut short at its end still verifies: comparing the head hash with a copy kept
    outside the database (a checkpoint) is what detects that.
    """
    prev_hash = GENESIS_HASH
    for index, stored in enumerate(stored_events):
        reason = _first_problem(stored, index + 1, prev_hash)
        if reason is not None:
            return VerificationResult(False, index + 1, reason, index, prev_hash)
        prev_hash = stored.hash
    return VerificationResult(True, None, None, len(stored_events), prev_hash)


def _first_problem(stored: StoredEvent, expected_seq: int, prev_hash: str) -> str | None:
    if stored.seq != expected_seq:
        return f"seq gap: expected seq {expected_seq}, found seq {stored.seq}"
    if chain_hash(stored.prev_hash, stored.payload) != stored.hash:
        return "hash mismatch: the payload does not match the stored hash"
    if stored.prev_hash != prev_hash:
        return "prev-hash mismatch: the event does not follow the one before it"
    column = _column_mismatch(stored)
    if column is not None:
        return f"column mismatch: {column} differs from the payload"
    return None


def _column_mismatch(stored: StoredEvent) -> str | None:
    """The first column that disagrees with the hashed payload, if any."""
    payload = stored.payload
    actor = payload.get("actor")
    actor = actor if isinstance(actor, Mapping) else {}
    expected: dict[str, object] = {
        "episode_id": payload.get("episode_id"),
        "seq": payload.get("seq"),
        "event_type": payload.get("type"),
        "schema_version": payload.get("schema_version", 1),
        "actor_id": actor.get("user_id"),
        "actor_role": actor.get("role"),
        "command_id": payload.get("command_id"),
    }
    for column, value in expected.items():
        if getattr(stored, column) != value:
            return column
    occurred = payload.get("occurred_at")
    if not isinstance(occurred, str) or _parse_time(occurred) != stored.occurred_at:
        return "occurred_at"
    return None


def _parse_time(text: str) -> datetime | None:
    # Event times carry their offset, so a payload time without one matches no column.
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
