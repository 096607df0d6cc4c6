"""The hash chain that makes an episode's stream tamper-evident, and its verification.

Each event's hash is HMAC-SHA-256, under the chain key, over the previous event's hash (64
lowercase hex digits; the first event of a stream follows `GENESIS_HASH`) followed by the
canonical JSON of the event's payload: keys sorted, no whitespace, UTF-8. The chain key is
kept outside PostgreSQL, so whoever can write to the database but does not hold the key
cannot append an event whose hash verifies. The payload holds the episode id, seq, type,
schema version, time, actor and command id, so the hash covers all of them; the columns that
repeat them are checked against the payload. `recorded_at` is set by the database and is
not covered.

Events stored before the chain was keyed (migration 0014) carry `hash_alg = 'sha256'`: their
hash is plain SHA-256 over the same bytes (`domain.canonical.chain_hash`). They verify under
that rule only up to the stream's sealed seq (`ChainSeal`: where the plain rule ended in each
stream, MAC'd with the chain key); any plain hash after it is reported.

The encoding is the domain's (`domain.canonical`): the workflow computes payload digests
over the same bytes to check what the store holds, and may not import the store. The chain
hashes are the store's alone. The store writes the same bytes faster (`fast_canonical_json`):
orjson, sorting keys, spells a payload of plain JSON values as `canonical_json` does, about
ten times faster, except for a few numbers, which it then leaves to `canonical_json`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from domain.canonical import GENESIS_HASH, canonical_json, chain_hash
from store.records import StoredEvent

__all__ = [
    "GENESIS_HASH",
    "HASH_KEYED",
    "HASH_PLAIN",
    "ChainSeal",
    "VerificationResult",
    "canonical_json",
    "chain_hash",
    "chain_key_id",
    "fast_canonical_json",
    "keyed_chain_hash",
    "keyed_chain_hash_of",
    "verify_chain",
]

# The `hash_alg` of an event: the plain rule of events stored before 0014, and the keyed one.
HASH_PLAIN = "sha256"
HASH_KEYED = "hmac-sha256"


# orjson serialises what Python's json module would refuse or spell otherwise (datetimes,
# dataclasses, subclasses of str, int, dict and list) only through `default`, which refuses.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# What orjson may spell otherwise than `canonical_json`: `null`, which it also writes for NaN
# and infinity (refused by `canonical_json`), and numbers with an exponent or below 1e-4
# (json writes 1e-05 and 1e+16 where orjson writes 0.00001 and 1e16). A string that merely
# looks like one of them only sends its payload the slow way.
_SPELLED_OTHERWISE = re.compile(rb"null|(?:^|[:,\[])-?(?:0\.0000|[0-9.]+[eE])")


def _refuse(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not a plain JSON value")


def fast_canonical_json(payload: Mapping[str, Any]) -> bytes:
    """`canonical_json(payload)`, the same bytes (or the same error), mostly from orjson.

    orjson writes a payload of plain JSON values (what `dump_event` gives, and what
    PostgreSQL returns) as `canonical_json` does: keys sorted by code point, no whitespace,
    UTF-8, strings escaped alike, floats in their shortest round-trip digits. Whatever it
    would write otherwise, or refuses, is encoded by `canonical_json` instead
    (`tests/unit/test_fast_canonical.py` holds the two to the same bytes)."""
    try:
        encoded = orjson.dumps(payload, default=_refuse, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one
        return canonical_json(payload)
    if _SPELLED_OTHERWISE.search(encoded):
        return canonical_json(payload)
    return encoded


def keyed_chain_hash(key: bytes, prev_hash: str, payload: Mapping[str, Any]) -> str:
    """HMAC-SHA-256 under the chain key of `prev_hash` followed by the payload's canonical JSON."""
    return keyed_chain_hash_of(key, prev_hash, fast_canonical_json(payload))


def keyed_chain_hash_of(key: bytes, prev_hash: str, canonical: bytes) -> str:
    """`keyed_chain_hash` of a payload already encoded (`canonical_json`)."""
    return hmac.new(key, prev_hash.encode("ascii") + canonical, hashlib.sha256).hexdigest()


def chain_key_id(key: bytes) -> str:
    """A short public name for a chain key, so the seal says which key MAC'd it."""
    return hmac.new(key, b"carepath chain key id", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class ChainSeal:
    """Where the plain rule ended: per stream, the seq and hash of its last plain-hash event.

    `valid` is False when the stored seal's MAC does not verify under the chain key (or it
    names another key); `None` as a seal means none is stored. Either way no plain hash is
    accepted.
    """

    heads: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    valid: bool = True
    problem: str | None = None

    def plain_until(self, episode_id: str) -> tuple[int, str] | None:
        """(seq, hash) of the stream's last plain-hash event, if the seal is valid and has one."""
        return self.heads.get(episode_id) if self.valid else None


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of walking a stream: ok, or the first bad seq and why."""

    ok: bool
    first_bad_seq: int | None = None
    reason: str | None = None
    events_checked: int = 0
    head_hash: str = GENESIS_HASH


def verify_chain(
    stored_events: Sequence[StoredEvent],
    key: bytes,
    seal: ChainSeal | None = None,
    episode_id: str | None = None,
) -> VerificationResult:
    """Recompute the chain of one stream, given from seq 1 in seq order, under the chain key.

    Plain-hash events are accepted only up to the stream's seq in the `seal` (and the hash
    there must be the sealed one); after it, or without a valid seal, each one is reported.
    A stream cut short at its end still verifies: comparing the head hash with a copy kept
    outside the database (a checkpoint) is what detects that.
    """
    if episode_id is None:
        episode_id = stored_events[0].episode_id if stored_events else ""
    sealed = seal.plain_until(episode_id) if seal is not None else None
    prev_hash = GENESIS_HASH
    for index, stored in enumerate(stored_events):
        reason = _first_problem(stored, index + 1, prev_hash, key, sealed, seal)
        if reason is not None:
            return VerificationResult(False, index + 1, reason, index, prev_hash)
        prev_hash = stored.hash
    if sealed is not None and len(stored_events) < sealed[0]:
        return VerificationResult(
            False,
            len(stored_events) + 1,
            f"truncated: the chain seal recorded plain-hash events up to seq {sealed[0]}",
            len(stored_events),
            prev_hash,
        )
    return VerificationResult(True, None, None, len(stored_events), prev_hash)


def _first_problem(
    stored: StoredEvent,
    expected_seq: int,
    prev_hash: str,
    key: bytes,
    sealed: tuple[int, str] | None,
    seal: ChainSeal | None,
) -> str | None:
    if stored.seq != expected_seq:
        return f"seq gap: expected seq {expected_seq}, found seq {stored.seq}"
    rule = _rule_problem(stored, sealed, seal)
    if rule is not None:
        return rule
    if stored.hash_alg == HASH_PLAIN:
        recomputed = chain_hash(stored.prev_hash, stored.payload)
    else:
        recomputed = keyed_chain_hash(key, stored.prev_hash, stored.payload)
    if not hmac.compare_digest(recomputed, stored.hash):
        return "hash mismatch: the payload does not match the stored hash"
    if sealed is not None and stored.seq == sealed[0] and stored.hash != sealed[1]:
        return (
            f"sealed hash mismatch: the plain-hash chain up to seq {sealed[0]} differs from "
            "the one the chain seal recorded"
        )
    if stored.prev_hash != prev_hash:
        return "prev-hash mismatch: the event does not follow the one before it"
    column = _column_mismatch(stored)
    if column is not None:
        return f"column mismatch: {column} differs from the payload"
    return None


def _rule_problem(
    stored: StoredEvent, sealed: tuple[int, str] | None, seal: ChainSeal | None
) -> str | None:
    """Why the event's hash rule is not the one its seq must have, if it is not."""
    if stored.hash_alg == HASH_KEYED:
        if sealed is not None and stored.seq <= sealed[0]:
            return (
                f"hash rule mismatch: a keyed hash at seq {stored.seq}, but the chain seal "
                f"recorded plain-hash events up to seq {sealed[0]}"
            )
        return None
    if stored.hash_alg != HASH_PLAIN:
        return f"hash rule mismatch: unknown hash rule {stored.hash_alg!r}"
    if sealed is not None and stored.seq <= sealed[0]:
        return None
    if seal is None or not seal.valid:
        why = seal.problem if seal is not None and seal.problem else "no chain seal is stored"
        return (
            f"forged hash rule: a plain SHA-256 hash at seq {stored.seq}, but {why}: "
            "only the chain key can extend the chain"
        )
    after = f"after seq {sealed[0]}" if sealed is not None else "in this stream"
    return (
        f"forged hash rule: a plain SHA-256 hash at seq {stored.seq}, {after}, where the "
        "chain seal requires keyed hashes: only the chain key can extend the chain"
    )


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
