"""What the event store hands back: stored events and the outcome of an append."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.events import Event, load_event


@dataclass(frozen=True)
class StoredEvent:
    """One row of an episode's stream, with its place in the hash chain."""

    episode_id: str
    seq: int
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime
    actor_id: str
    actor_role: str
    command_id: str
    prev_hash: str
    hash: str
    # The rule `hash` was computed under (store.chain): keyed, or plain before migration 0014.
    hash_alg: str = "hmac-sha256"

    @property
    def event(self) -> Event:
        """The domain event, upcast to the current schema version if it is older."""
        return load_event(self.payload)


@dataclass(frozen=True)
class CommandKey:
    """The command an append records, with the fingerprint of its request
    (`domain.idempotency.command_fingerprint`)."""

    command_id: str
    fingerprint: str


@dataclass(frozen=True)
class AppendResult:
    """What an append did: how many events it wrote, how many were already there, the head.

    `digests` are the digests (`domain.canonical.payload_digest`) of what the stream holds
    at the appended seqs once the append is done, one per event. `applied_before` is set,
    and nothing written, when the command was already applied at other seqs: its events.
    """

    episode_id: str
    written: int
    already_present: int
    head_seq: int
    head_hash: str
    digests: tuple[str, ...] = ()
    applied_before: tuple[StoredEvent, ...] = ()
    # The global position of the batch's last event (`store.projector`): a reader of the
    # read models waits for it to see this append.
    position: int | None = None
