"""The one byte encoding of an event, and the hashes computed over it.

Three parties must agree on these bytes: the event store, which chains each stored
payload to the one before it; the workflow, which checks after every append (and again
on every replay) that the store holds exactly the events it decided; and the auditor,
who recomputes the chain. The workflow may not import the store, so the encoding lives
here, with the events it encodes, and the store takes it from here.

Canonical JSON: keys sorted, no whitespace, UTF-8, no NaN or infinity. Payload numbers
should be integers or plain decimals: PostgreSQL's jsonb keeps their text, so they read
back as they were written and hash the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from domain.events import Event, dump_event

# The `prev_hash` of a stream's first event.
GENESIS_HASH = "0" * 64


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The one byte encoding of a payload that its hashes are computed over."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def chain_hash(prev_hash: str, payload: Mapping[str, Any]) -> str:
    """The hash of an event with this payload following an event whose hash is `prev_hash`."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(payload)).hexdigest()


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of one payload's canonical JSON: what an event's content comes to."""
    return digest_of_canonical(canonical_json(payload))


def digest_of_canonical(canonical: bytes) -> str:
    """`payload_digest` of a payload already encoded (`canonical_json`)."""
    return hashlib.sha256(canonical).hexdigest()


def event_digests(events: Iterable[Event]) -> tuple[str, ...]:
    """The digest of each event as the store would hold it (`dump_event`, then canonical)."""
    return tuple(payload_digest(dump_event(event)) for event in events)
