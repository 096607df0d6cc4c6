"""Verifying streams: recompute each keyed hash chain, compare it with the newest signed
checkpoint, check the sequence of checkpoints, and name the first bad seq (or the bad
checkpoint) and why.

The checks themselves are the store's (`store.verification`); this module adds
what the audit commands need around them: one report model for the CLI and the API, the
checkpoint's signature checked under the configured key first, and a progress callback
so the CLI can draw a bar without this module knowing about terminals. The chain key is
the store's (`EventStore.chain_key`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict

from audit.errors import EpisodeNotInStore
from store import verification
from store.chain import ChainSeal
from store.checkpoints import Checkpoint, latest_checkpoint
from store.event_store import EventStore
from store.records import StoredEvent

# Called after each stream: (streams done, streams in all).
Progress = Callable[[int, int], None]


class StreamReport(verification.StreamVerification):
    """The outcome of verifying one episode's stream, as auditors read it."""

    @classmethod
    def of(cls, result: verification.StreamVerification) -> StreamReport:
        return cls(**result.model_dump())

    def describe(self) -> str:
        """One line for a terminal or a log."""
        against = (
            f"chain and checkpoint #{self.checkpoint_id}"
            if self.checkpoint_id is not None
            else "chain only, no checkpoint"
        )
        if self.ok:
            return (
                f"episode {self.episode_id}: intact, {self.head_seq} event(s), "
                f"head {self.head_hash[:16]} ({against})"
            )
        return (
            f"episode {self.episode_id}: TAMPERED, first bad seq {self.first_bad_seq}: "
            f"{self.reason} ({against})"
        )


class VerifyReport(BaseModel):
    """The outcome of verifying several streams; `ok` only if every one verified and the
    sequence of checkpoints is whole (`checkpoint_problems` each name a checkpoint)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    streams: tuple[StreamReport, ...]
    checkpoint_problems: tuple[str, ...] = ()

    @property
    def anomalies(self) -> tuple[StreamReport, ...]:
        return tuple(s for s in self.streams if not s.ok)


def check_stream(
    episode_id: str,
    stored: Sequence[StoredEvent],
    checkpoint: Checkpoint | None = None,
    *,
    chain_key: bytes,
    seal: ChainSeal | None = None,
) -> StreamReport:
    """Verify a stream already read from the store under the chain key (and the seal of its
    plain-hash events), against a checkpoint if given (pure)."""
    head = checkpoint.heads.get(episode_id) if checkpoint is not None else None
    number = checkpoint.number if checkpoint is not None else None
    return StreamReport.of(
        verification.check_stream(episode_id, stored, head, number, chain_key=chain_key, seal=seal)
    )


async def trusted_checkpoint(
    store: EventStore, key: bytes | None, checkpoint: Checkpoint | None = None
) -> Checkpoint | None:
    """The checkpoint to compare with: `checkpoint` (e.g. an exported file) or the latest
    stored one, its signature checked under `key` (CheckpointInvalid if it does not match).
    Without a key no checkpoint can be trusted, so only the chains are checked."""
    if key is None:
        return None
    if checkpoint is None:
        checkpoint = await latest_checkpoint(store.pool)
    if checkpoint is not None:
        checkpoint.verify(key)
    return checkpoint


async def verify_episode(
    store: EventStore,
    episode_id: str,
    *,
    key: bytes | None = None,
    checkpoint: Checkpoint | None = None,
) -> StreamReport:
    """Verify one episode's stream; raise EpisodeNotInStore if neither store nor checkpoint
    knows it (a stream the checkpoint lists but the store lost is reported as truncated)."""
    trusted = await trusted_checkpoint(store, key, checkpoint)
    stored = await store.read_stream(episode_id)
    if not stored and (trusted is None or episode_id not in trusted.heads):
        raise EpisodeNotInStore(episode_id)
    seal = await store.chain_seal()
    return check_stream(episode_id, stored, trusted, chain_key=store.chain_key, seal=seal)


async def verify_all(
    store: EventStore,
    *,
    key: bytes | None = None,
    checkpoint: Checkpoint | None = None,
    external: Sequence[Checkpoint] = (),
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify every stream in the store (and every one the checkpoint lists), and with a key
    the whole sequence of stored checkpoints against each other and the copies kept outside
    (`external`: the checkpoint directory's files, `checkpoint`).

    The streams are compared with `checkpoint` if given, else with the newest checkpoint
    whose signature verifies, stored or kept outside: a stored checkpoint deleted to hide a
    truncation is still compared with through its copy.
    """
    problems: tuple[str, ...] = ()
    if key is not None:
        copies = [*external, *([checkpoint] if checkpoint is not None else [])]
        sequence = await verification.verify_checkpoints(store.pool, key, copies)
        problems = sequence.problems
        if checkpoint is None:
            checkpoint = sequence.newest
    trusted = await trusted_checkpoint(store, key, checkpoint)
    results = await verification.verify_all(
        store.pool, key, chain_key=store.chain_key, checkpoint=trusted, progress=progress
    )
    reports = tuple(StreamReport.of(result) for result in results)
    return VerifyReport(
        ok=all(r.ok for r in reports) and not problems,
        streams=reports,
        checkpoint_problems=problems,
    )
