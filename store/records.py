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

    @property
    def event(self) -> Event:
        """The domain event, upcast to the current schema version if it is older."""
        return load_event(self.payload)


@dataclass(frozen=True)
class AppendResult:
    """What an append did: how many events it wrote, how many were already there, the head."""

    episode_id: str
    written: int
    already_present: int
    head_seq: int
    head_hash: str
