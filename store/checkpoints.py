"""Signed checkpoints: the head of every stream at one moment, under HMAC-SHA256.

A checkpoint lists, for every episode, the seq and hash of its last event. The hash chain
makes each head commit to the whole stream before it, so a copy of a checkpoint kept
outside the database (the exported JSON file) lets an auditor prove later that no stream
was truncated or rewritten since: `store.verification` compares the store against
it. The signature covers the canonical JSON of the signed document, so an altered file or
checkpoint row no longer verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from store.chain import canonical_json
from store.db import Connection, Pool
from store.errors import CheckpointInvalid

FORMAT = "carepath-checkpoint/1"
# Held while a scheduled checkpoint is taken, so several workers do not take one each.
SCHEDULE_LOCK_KEY = 0x63686B70_6F696E74  # "chkpoint"
_HEADS = (
    "SELECT DISTINCT ON (episode_id) episode_id, seq, hash FROM events "
    "ORDER BY episode_id, seq DESC"
)


@dataclass(frozen=True)
class StreamHead:
    """The last event of one stream when the checkpoint was taken."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Checkpoint:
    """A signed list of stream heads; `checkpoint_id` is None until it is stored."""

    taken_at: datetime
    heads: dict[str, StreamHead]
    key_id: str
    signature: str
    checkpoint_id: int | None = field(default=None, compare=False)

    @property
    def streams(self) -> int:
        return len(self.heads)

    @property
    def events(self) -> int:
        return sum(head.seq for head in self.heads.values())

    def signed_document(self) -> dict[str, Any]:
        """What the signature covers (everything but the storage id and the signature)."""
        return _document(self.taken_at, self.heads)

    def verify(self, key: bytes) -> None:
        """Raise CheckpointInvalid unless the signature matches under `key`."""
        expected = sign(key, self.signed_document())
        if self.key_id != key_id(key):
            raise CheckpointInvalid(
                f"checkpoint {self._name} was signed with another key (key id {self.key_id}, "
                f"the configured key has id {key_id(key)}): use the key it was signed with "
                "(CAREPATH_CHECKPOINT_KEY)"
            )
        if not hmac.compare_digest(expected, self.signature):
            raise CheckpointInvalid(
                f"checkpoint {self._name} does not match its signature: it was altered after "
                "it was signed; verify against an exported copy kept outside the database"
            )

    @property
    def _name(self) -> str:
        return f"#{self.checkpoint_id}" if self.checkpoint_id is not None else "from file"

    def to_json(self) -> dict[str, Any]:
        """The exported form: the signed document plus id, key id and signature."""
        return {
            **self.signed_document(),
            "checkpoint_id": self.checkpoint_id,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def key_id(key: bytes) -> str:
    """A short public name for a key, so a checkpoint says which key signed it."""
    return hmac.new(key, b"carepath checkpoint key id", hashlib.sha256).hexdigest()[:16]


def sign(key: bytes, document: dict[str, Any]) -> str:
    """HMAC-SHA256 of the canonical JSON of `document`, as 64 hex digits."""
    return hmac.new(key, canonical_json(document), hashlib.sha256).hexdigest()


def _utc_text(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def _document(taken_at: datetime, heads: dict[str, StreamHead]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "taken_at": _utc_text(taken_at),
        "streams": len(heads),
        "events": sum(head.seq for head in heads.values()),
        "heads": {
            episode_id: {"seq": head.seq, "hash": head.hash}
            for episode_id, head in sorted(heads.items())
        },
    }


async def current_heads(conn: Connection) -> dict[str, StreamHead]:
    """The head of every stream now (one statement, so one consistent snapshot)."""
    rows = await conn.fetch(_HEADS)
    return {row["episode_id"]: StreamHead(int(row["seq"]), str(row["hash"])) for row in rows}


async def take_checkpoint(
    pool: Pool, key: bytes, *, skip_if_unchanged: bool = False
) -> Checkpoint | None:
    """Sign the current head of every stream and store it in `checkpoints`.

    With `skip_if_unchanged`, nothing is stored (and None returned) when no stream moved
    since the latest checkpoint: the scheduled checkpoint adds no rows on a quiet system.
    """
    async with pool.acquire() as conn, conn.transaction():
        if skip_if_unchanged and not await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1)", SCHEDULE_LOCK_KEY
        ):
            return None  # another worker is taking it right now
        taken_at: datetime = await conn.fetchval("SELECT now()")
        heads = await current_heads(conn)
        if skip_if_unchanged:
            latest = await _latest(conn)
            if latest is not None and latest.heads == heads:
                return None
        document = _document(taken_at, heads)
        checkpoint = Checkpoint(
            taken_at=taken_at, heads=heads, key_id=key_id(key), signature=sign(key, document)
        )
        checkpoint_id = await conn.fetchval(
            "INSERT INTO checkpoints (taken_at, streams, events, heads, key_id, signature) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING checkpoint_id",
            taken_at,
            checkpoint.streams,
            checkpoint.events,
            document["heads"],
            checkpoint.key_id,
            checkpoint.signature,
        )
    return Checkpoint(taken_at, heads, checkpoint.key_id, checkpoint.signature, int(checkpoint_id))


async def latest_checkpoint(pool: Pool) -> Checkpoint | None:
    """The most recent stored checkpoint, or None if none was taken yet."""
    async with pool.acquire() as conn:
        return await _latest(conn)


async def _latest(conn: Connection) -> Checkpoint | None:
    row = await conn.fetchrow(
        "SELECT checkpoint_id, taken_at, heads, key_id, signature FROM checkpoints "
        "ORDER BY checkpoint_id DESC LIMIT 1"
    )
    if row is None:
        return None
    return Checkpoint(
        taken_at=row["taken_at"],
        heads=_heads(row["heads"]),
        key_id=row["key_id"],
        signature=row["signature"],
        checkpoint_id=int(row["checkpoint_id"]),
    )


def _heads(raw: Any) -> dict[str, StreamHead]:
    return {episode_id: StreamHead(int(h["seq"]), str(h["hash"])) for episode_id, h in raw.items()}


def export_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """Write the checkpoint as JSON to `path` (keep the copy outside the database)."""
    path.write_text(json.dumps(checkpoint.to_json(), indent=2, sort_keys=True) + "\n")


def load_checkpoint(path: Path) -> Checkpoint:
    """Read an exported checkpoint; raise CheckpointInvalid if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        checkpoint_id = data.get("checkpoint_id")
        return Checkpoint(
            taken_at=datetime.fromisoformat(data["taken_at"]),
            heads=_heads(data["heads"]),
            key_id=str(data["key_id"]),
            signature=str(data["signature"]),
            checkpoint_id=int(checkpoint_id) if checkpoint_id is not None else None,
        )
    except OSError as exc:
        raise CheckpointInvalid(f"cannot read checkpoint file {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointInvalid(
            f"{path} is not a CarePath checkpoint export ({exc}): pass the file written by "
            "`carepath db checkpoint --export`"
        ) from exc
