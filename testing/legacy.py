"""Events as CarePath stored them before migration 0014: plain SHA-256 chain, no `hash_alg`."""

from __future__ import annotations

import json
from collections.abc import Sequence

from domain.canonical import GENESIS_HASH, chain_hash
from domain.events import Event, dump_event
from store.db import Pool


async def insert_plain_events(pool: Pool, events: Sequence[Event]) -> None:
    """INSERT `events` (one stream, from seq 1) hash-chained under the plain rule."""
    prev = GENESIS_HASH
    for event in events:
        payload = json.loads(json.dumps(dump_event(event)))
        digest = chain_hash(prev, payload)
        await pool.execute(
            "INSERT INTO events (episode_id, seq, event_type, schema_version, payload, "
            "occurred_at, actor_id, actor_role, command_id, prev_hash, hash) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            event.episode_id,
            event.seq,
            event.type,
            event.schema_version,
            payload,
            event.occurred_at,
            event.actor.user_id,
            str(event.actor.role),
            event.command_id,
            prev,
            digest,
        )
        prev = digest
