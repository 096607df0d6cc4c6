"""Signed checkpoints: the head of every stream at one moment, under HMAC-SHA256.

A checkpoint lists, for every episode, the seq and hash of its last event. The hash chain
makes each head commit to the whole stream before it, so a copy of a checkpoint kept
outside the database (the exported JSON file, the checkpoint directory, a webhook's
receiver) lets an auditor prove later that no stream was truncated or rewritten since:
`store.verification` compares the store against it. The signature covers the canonical
JSON of the signed document, so an altered file or checkpoint row no longer verifies.

Checkpoints are numbered 1, 2, ... and each one's signed document names the previous
checkpoint's number and signature (format `carepath-checkpoint/2`), so the checkpoints form
a chain of their own: `check_sequence` reports a checkpoint deleted from it, moved in it,
or differing from its copy outside the database. Checkpoints taken before migration 0014
(format `/1`) carry no previous; they were numbered in the order they were stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from store.chain import canonical_json
from store.db import Connection, Pool
from store.errors import CheckpointInvalid

FORMAT_V1 = "carepath-checkpoint/1"
FORMAT = "carepath-checkpoint/2"
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
class PreviousCheckpoint:
    """The checkpoint before this one, as its signed document names it."""

    number: int
    signature: str


@dataclass(frozen=True)
class Checkpoint:
    """A signed list of stream heads; `checkpoint_id` is None until it is stored.

    `number` is its place in the sequence of checkpoints (1 for the first); `previous`
    names the checkpoint before it (None for the first, and for format `/1`, unchained).
    """

    taken_at: datetime
    heads: dict[str, StreamHead]
    key_id: str
    signature: str
    checkpoint_id: int | None = field(default=None, compare=False)
    number: int | None = None
    previous: PreviousCheckpoint | None = None
    format: str = FORMAT

    @property
    def chained(self) -> bool:
        return self.format == FORMAT

    @property
    def streams(self) -> int:
        return len(self.heads)

    @property
    def events(self) -> int:
        return sum(head.seq for head in self.heads.values())

    def signed_document(self) -> dict[str, Any]:
        """What the signature covers (everything but the storage id and the signature)."""
        if not self.chained:
            return _document_v1(self.taken_at, self.heads)
        return _document(self.taken_at, self.heads, self.number or 0, self.previous)

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
        return self.name.removeprefix("checkpoint ")

    @property
    def name(self) -> str:
        """`checkpoint #N` by its number (its storage id for an old export without one)."""
        number = self.number if self.number is not None else self.checkpoint_id
        return f"checkpoint #{number}" if number is not None else "checkpoint from file"

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


def _document(
    taken_at: datetime,
    heads: dict[str, StreamHead],
    number: int,
    previous: PreviousCheckpoint | None,
) -> dict[str, Any]:
    return {
        **_document_v1(taken_at, heads),
        "format": FORMAT,
        "number": number,
        "previous": (
            {"number": previous.number, "signature": previous.signature} if previous else None
        ),
    }


def _document_v1(taken_at: datetime, heads: dict[str, StreamHead]) -> dict[str, Any]:
    return {
        "format": FORMAT_V1,
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
    """Sign the current head of every stream and store it in `checkpoints`, numbered after
    the latest checkpoint and chained to it.

    With `skip_if_unchanged`, nothing is stored (and None returned) when no stream moved
    since the latest checkpoint: the scheduled checkpoint adds no rows on a quiet system.
    """
    async with pool.acquire() as conn, conn.transaction():
        if skip_if_unchanged:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SCHEDULE_LOCK_KEY):
                return None  # another worker is taking it right now
        else:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEDULE_LOCK_KEY)
        taken_at: datetime = await conn.fetchval("SELECT now()")
        heads = await current_heads(conn)
        latest = await _latest(conn)
        if skip_if_unchanged and latest is not None and latest.heads == heads:
            return None
        number = latest.number + 1 if latest is not None and latest.number is not None else 1
        previous = PreviousCheckpoint(number - 1, latest.signature) if latest is not None else None
        document = _document(taken_at, heads, number, previous)
        signature = sign(key, document)
        checkpoint_id = await conn.fetchval(
            "INSERT INTO checkpoints (taken_at, streams, events, heads, key_id, signature, "
            "number, format, previous) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "RETURNING checkpoint_id",
            taken_at,
            document["streams"],
            document["events"],
            document["heads"],
            key_id(key),
            signature,
            number,
            FORMAT,
            document["previous"],
        )
    return Checkpoint(taken_at, heads, key_id(key), signature, int(checkpoint_id), number, previous)


async def latest_checkpoint(pool: Pool) -> Checkpoint | None:
    """The stored checkpoint with the highest number, or None if none was taken yet."""
    async with pool.acquire() as conn:
        return await _latest(conn)


async def stored_checkpoints(pool: Pool) -> list[Checkpoint]:
    """Every stored checkpoint, in the order they were stored."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY checkpoint_id"
        )
    return [_checkpoint(row) for row in rows]


_CHECKPOINT_COLUMNS = "checkpoint_id, taken_at, heads, key_id, signature, number, format, previous"


async def _latest(conn: Connection) -> Checkpoint | None:
    row = await conn.fetchrow(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY number DESC LIMIT 1"
    )
    return None if row is None else _checkpoint(row)


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(
        taken_at=row["taken_at"],
        heads=_heads(row["heads"]),
        key_id=row["key_id"],
        signature=row["signature"],
        checkpoint_id=int(row["checkpoint_id"]),
        number=int(row["number"]),
        previous=_previous(row["previous"]),
        format=row["format"],
    )


def _previous(raw: Any) -> PreviousCheckpoint | None:
    if raw is None:
        return None
    return PreviousCheckpoint(int(raw["number"]), str(raw["signature"]))


def _heads(raw: Any) -> dict[str, StreamHead]:
    return {episode_id: StreamHead(int(h["seq"]), str(h["hash"])) for episode_id, h in raw.items()}


def export_checkpoint(checkpoint: Checkpoint, path: Path, *, exclusive: bool = False) -> None:
    """Write the checkpoint as JSON to `path` (mode 0600; keep the copy outside the database).

    With `exclusive` an existing file is never replaced (FileExistsError): a directory of
    checkpoints only ever gains files.
    """
    text = json.dumps(checkpoint.to_json(), indent=2, sort_keys=True) + "\n"
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, 0o600)


def checkpoint_file_name(checkpoint: Checkpoint) -> str:
    """`checkpoint-00000017.json`: the file a checkpoint is published as in a directory."""
    return f"checkpoint-{checkpoint.number or 0:08d}.json"


def load_checkpoint(path: Path) -> Checkpoint:
    """Read an exported checkpoint; raise CheckpointInvalid if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fmt = data.get("format")
        if fmt not in (FORMAT, FORMAT_V1):
            raise ValueError(f"format is {fmt!r}, expected {FORMAT!r}")
        checkpoint_id = data.get("checkpoint_id")
        checkpoint_id = int(checkpoint_id) if checkpoint_id is not None else None
        return Checkpoint(
            taken_at=datetime.fromisoformat(data["taken_at"]),
            heads=_heads(data["heads"]),
            key_id=str(data["key_id"]),
            signature=str(data["signature"]),
            checkpoint_id=checkpoint_id,
            # An unchained export's number is its storage id (what 0014 numbered it).
            number=int(data["number"]) if fmt == FORMAT else checkpoint_id,
            previous=_previous(data["previous"]) if fmt == FORMAT else None,
            format=fmt,
        )
    except OSError as exc:
        raise CheckpointInvalid(f"cannot read checkpoint file {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointInvalid(
            f"{path} is not a CarePath checkpoint export ({exc}): pass the file written by "
            "`carepath db checkpoint --export` or into the checkpoint directory"
        ) from exc


def load_checkpoint_dir(directory: Path) -> list[Checkpoint]:
    """Every checkpoint published into `directory` (none if it does not exist), by number."""
    if not directory.is_dir():
        return []
    found = [load_checkpoint(path) for path in sorted(directory.glob("checkpoint-*.json"))]
    return sorted(found, key=lambda checkpoint: checkpoint.number or 0)


def check_sequence(
    stored: Sequence[Checkpoint], key: bytes, external: Sequence[Checkpoint] = ()
) -> list[str]:
    """What is wrong with the stored checkpoints (in storage order), each naming a checkpoint.

    Every signature is checked under `key`; each chained checkpoint must name the one
    stored right before it (number and signature) as its previous; and each copy kept
    outside the database (`external`) must be stored with the same signature. An empty
    list: the sequence is whole. Checkpoints deleted from the end of the sequence are only
    seen against an external copy.
    """
    problems: list[str] = []
    numbers = {checkpoint.number for checkpoint in stored}
    before: Checkpoint | None = None
    for checkpoint in stored:
        try:
            checkpoint.verify(key)
        except CheckpointInvalid as exc:
            problems.append(str(exc))
        problem = _link_problem(checkpoint, before, numbers)
        if problem is not None:
            problems.append(problem)
        before = checkpoint
    by_number = {checkpoint.number: checkpoint for checkpoint in stored}
    # An unchained (pre-0014) export names its row by storage id, not by number.
    by_id = {checkpoint.checkpoint_id: checkpoint for checkpoint in stored}
    for copy in external:
        try:
            copy.verify(key)
        except CheckpointInvalid as exc:
            problems.append(f"external copy: {exc}")
            continue
        held = by_number.get(copy.number) if copy.chained else by_id.get(copy.checkpoint_id)
        if held is None:
            problems.append(
                f"{copy.name} is missing from the database, but a signed copy of it is kept "
                "outside: it was deleted"
            )
        elif not hmac.compare_digest(held.signature, copy.signature):
            problems.append(
                f"{copy.name} in the database differs from its signed copy kept outside: the "
                "database's checkpoints were rewritten and signed again"
            )
    return problems


def _link_problem(
    checkpoint: Checkpoint, before: Checkpoint | None, numbers: set[int | None]
) -> str | None:
    """Why `checkpoint` does not follow `before` (the one stored before it), if it does not;
    `numbers` are those of every stored checkpoint."""
    name = checkpoint.name
    if not checkpoint.chained:
        if before is not None and before.chained:
            return f"{name} is unchained but stored after the chained {before.name}"
        expected = (before.number or 0) + 1 if before is not None else 1
        if checkpoint.number != expected:
            return f"{name} is out of order: checkpoint #{expected} should be stored here"
        return None
    previous = checkpoint.previous
    if previous is None:
        if before is not None:
            return (
                f"{name} starts a new sequence after {before.name}: the checkpoints before "
                "it were replaced"
            )
        return None
    if before is not None and previous.number == before.number:
        if hmac.compare_digest(previous.signature, before.signature):
            return None
        return f"{name} does not follow the stored {before.name}: that checkpoint was replaced"
    after = f"stored after {before.name}" if before is not None else "stored first"
    if previous.number in numbers:
        return f"{name} is out of order: it follows checkpoint #{previous.number}, but is {after}"
    return (
        f"checkpoint #{previous.number} is missing from the database: {name} follows it "
        f"(and is {after}); it was deleted"
    )
