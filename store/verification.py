"""Verify the stored streams: recompute each hash chain and compare it with a checkpoint.

The keyed chain alone catches an event changed, removed from the middle, moved, or
appended by anyone without the chain key; it cannot see the last events cut off, nor a
stream rewritten by someone who holds the chain key. The signed checkpoint catches those:
a stream shorter than the checkpoint says was truncated, and a stream whose hash at the
checkpoint's seq differs was rewritten at or before that seq. Every anomaly names the first
bad seq and why. `verify_checkpoints` checks the sequence of checkpoints itself (each one
chained to the one before, and to its copies kept outside the database).

This is the API behind `carepath db verify` and the auditor's `carepath audit verify`:

    await verify_stream(pool, episode_id, checkpoint=None, chain_key=k) -> StreamVerification
    await verify_all(pool, key, chain_key=k, checkpoint=None, progress=callback)
        -> list[StreamVerification]
    await verify_checkpoints(pool, key, external=()) -> CheckpointSequence
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from store.chain import GENESIS_HASH, ChainSeal, verify_chain
from store.chain_seal import load_seal
from store.checkpoints import (
    Checkpoint,
    StreamHead,
    check_sequence,
    latest_checkpoint,
    stored_checkpoints,
)
from store.db import Pool
from store.errors import CheckpointInvalid
from store.event_store import COLUMNS, stored_event
from store.records import StoredEvent

Progress = Callable[[int, int], None]
PAGE = 2000  # rows fetched per round trip when walking every stream
"""Called as progress(streams_done, streams_total) after each stream."""


class StreamVerification(BaseModel):
    """The outcome for one stream: intact, or the first bad seq and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str
    ok: bool
    events_checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None
    # The checkpoint the stream was compared with (None: chain only).
    checkpoint_id: int | None = None

    def describe(self) -> str:
        """One line for a person: `episode X: intact (n events)` or what is wrong."""
        if self.ok:
            return f"episode {self.episode_id}: intact ({self.events_checked} events)"
        return f"episode {self.episode_id}: first bad seq {self.first_bad_seq}: {self.reason}"


@dataclass(frozen=True)
class CheckpointSequence:
    """The stored checkpoints checked as a sequence: what is wrong (each problem names a
    checkpoint), and the newest checkpoint whose signature verifies, stored or kept outside."""

    checked: int
    problems: tuple[str, ...]
    newest: Checkpoint | None

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_checkpoints(
    pool: Pool, key: bytes, external: Sequence[Checkpoint] = ()
) -> CheckpointSequence:
    """Check every stored checkpoint's signature and link to the one before it, and each
    copy kept outside the database (`external`) against the stored one of its number."""
    stored = await stored_checkpoints(pool)
    problems = check_sequence(stored, key, external)
    trusted: list[Checkpoint] = []
    for checkpoint in (*stored, *external):
        try:
            checkpoint.verify(key)
        except CheckpointInvalid:
            continue
        trusted.append(checkpoint)
    newest = max(trusted, key=lambda c: c.number or 0, default=None)
    return CheckpointSequence(len(stored), tuple(problems), newest)


def check_stream(
    episode_id: str,
    stored: Sequence[StoredEvent],
    head: StreamHead | None = None,
    checkpoint_id: int | None = None,
    *,
    chain_key: bytes,
    seal: ChainSeal | None = None,
) -> StreamVerification:
    """Verify one stream's events (from seq 1, in order) under the chain key (and the seal of
    the plain-hash events before 0014) and against its checkpointed head; `checkpoint_id` is
    the number of that checkpoint."""
    chain = verify_chain(stored, chain_key, seal, episode_id)
    head_seq = stored[-1].seq if stored else 0
    head_hash = stored[-1].hash if stored else GENESIS_HASH

    def result(ok: bool, bad: int | None = None, reason: str | None = None) -> StreamVerification:
        return StreamVerification(
            episode_id=episode_id,
            ok=ok,
            events_checked=chain.events_checked,
            head_seq=head_seq,
            head_hash=head_hash,
            first_bad_seq=bad,
            reason=reason,
            checkpoint_id=checkpoint_id,
        )

    if not chain.ok:
        return result(False, chain.first_bad_seq, chain.reason)
    if head is None:
        return result(True)
    name = f"checkpoint #{checkpoint_id}" if checkpoint_id is not None else "the checkpoint"
    if len(stored) < head.seq:
        what = "the stream is missing" if not stored else f"the stream ends at seq {len(stored)}"
        return result(
            False,
            len(stored) + 1,
            f"truncated: {name} recorded seq {head.seq}, but {what}",
        )
    if stored[head.seq - 1].hash != head.hash:
        return result(
            False,
            head.seq,
            f"rewritten: the chain is consistent but its hash at seq {head.seq} differs from "
            f"{name}: an event at or before seq {head.seq} was changed and the chain recomputed",
        )
    return result(True)


async def verify_stream(
    pool: Pool, episode_id: str, checkpoint: Checkpoint | None = None, *, chain_key: bytes
) -> StreamVerification:
    """Verify one episode's stream, and against `checkpoint` if one is given.

    The checkpoint's signature is the caller's to check (`Checkpoint.verify(key)`).
    """
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM events WHERE episode_id = $1 ORDER BY seq", episode_id
        )
        seal = await load_seal(conn, chain_key)
    head = checkpoint.heads.get(episode_id) if checkpoint else None
    return check_stream(
        episode_id,
        [stored_event(row) for row in rows],
        head,
        checkpoint.number if checkpoint else None,
        chain_key=chain_key,
        seal=seal,
    )


async def verify_all(
    pool: Pool,
    key: bytes | None,
    *,
    chain_key: bytes,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
) -> list[StreamVerification]:
    """Verify every stream, in episode order, against `checkpoint` or the latest stored one.

    With a `key`, the checkpoint's signature is verified first (CheckpointInvalid if it does
    not match) and every stream is compared with it, including streams the checkpoint lists
    that are gone from the store. Without a key only the chains are checked.
    """
    if key is not None and checkpoint is None:
        checkpoint = await latest_checkpoint(pool)
    if key is None:
        checkpoint = None
    if checkpoint is not None and key is not None:
        checkpoint.verify(key)
    heads = checkpoint.heads if checkpoint else {}
    checkpoint_id = checkpoint.number if checkpoint else None

    results: list[StreamVerification] = []
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        stored_ids = {
            row["episode_id"] for row in await conn.fetch("SELECT DISTINCT episode_id FROM events")
        }
        seal = await load_seal(conn, chain_key)
        sealed_ids = set(seal.heads) if seal is not None and seal.valid else set()
        total = len(stored_ids | heads.keys() | sealed_ids)
        missing = sorted((heads.keys() | sealed_ids) - stored_ids)

        def check(episode_id: str, batch: Sequence[StoredEvent]) -> StreamVerification:
            return check_stream(
                episode_id,
                batch,
                heads.get(episode_id),
                checkpoint_id,
                chain_key=chain_key,
                seal=seal,
            )

        def done(verification: StreamVerification) -> None:
            results.append(verification)
            if progress:
                progress(len(results), total)

        current: str | None = None
        batch: list[StoredEvent] = []
        # One ordered pass, fetched in pages: far fewer round trips than a query per stream.
        async for row in conn.cursor(
            f"SELECT {COLUMNS} FROM events ORDER BY episode_id, seq", prefetch=PAGE
        ):
            if row["episode_id"] != current:
                if current is not None:
                    done(check(current, batch))
                current, batch = row["episode_id"], []
            batch.append(stored_event(row))
        if current is not None:
            done(check(current, batch))
        for episode_id in missing:
            done(check(episode_id, []))
    results.sort(key=lambda r: r.episode_id)
    return results
