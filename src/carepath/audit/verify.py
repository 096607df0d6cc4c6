"""Verifying streams: recompute each hash chain and name the first bad seq and why.

One stream or every stream in the store. A progress callback lets the CLI draw a bar
without this module knowing about terminals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict

from carepath.audit.errors import EpisodeNotInStore
from carepath.store.chain import verify_chain
from carepath.store.event_store import EventStore
from carepath.store.records import StoredEvent

# Called after each stream: (streams done, streams in all, the episode just checked).
Progress = Callable[[int, int, str], None]


class StreamReport(BaseModel):
    """The outcome of verifying one episode's stream."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str
    ok: bool
    events_checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        """One line for a terminal or a log."""
        if self.ok:
            return f"{self.episode_id}: ok, {self.head_seq} event(s), head {self.head_hash[:16]}"
        return f"{self.episode_id}: TAMPERED at seq {self.first_bad_seq}: {self.reason}"


class VerifyReport(BaseModel):
    """The outcome of verifying several streams; `ok` only if every one verified."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    streams: tuple[StreamReport, ...]

    @property
    def anomalies(self) -> tuple[StreamReport, ...]:
        return tuple(s for s in self.streams if not s.ok)


def check_stream(episode_id: str, stored: Sequence[StoredEvent]) -> StreamReport:
    """Verify a stream already read from the store (pure)."""
    result = verify_chain(stored)
    return StreamReport(
        episode_id=episode_id,
        ok=result.ok,
        events_checked=result.events_checked,
        head_seq=stored[-1].seq if stored else 0,
        head_hash=result.head_hash,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason,
    )


async def verify_episode(store: EventStore, episode_id: str) -> StreamReport:
    """Verify one episode's stream; raise EpisodeNotInStore if it has none."""
    stored = await store.read_stream(episode_id)
    if not stored:
        raise EpisodeNotInStore(episode_id)
    return check_stream(episode_id, stored)


async def verify_all(store: EventStore, progress: Progress | None = None) -> VerifyReport:
    """Verify every stream in the store, one after another."""
    episode_ids = await store.episode_ids()
    reports: list[StreamReport] = []
    for done, episode_id in enumerate(episode_ids, start=1):
        reports.append(check_stream(episode_id, await store.read_stream(episode_id)))
        if progress is not None:
            progress(done, len(episode_ids), episode_id)
    return VerifyReport(ok=all(r.ok for r in reports), streams=tuple(reports))
