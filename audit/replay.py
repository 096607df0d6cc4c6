"""`audit replay`: verify an episode's chain, then fold its events as of a moment.

Without a moment, the folded state is also compared with the state the live workflow
holds, field by field: the event store and the workflow are written by the same
decision, so any difference means one of them is wrong.

If the chain (or its match with the checkpoint) is broken, only the events before the
first bad seq are folded: what follows can no longer be trusted. The report says so
(`verification.ok` is false).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from audit.asof import (
    FieldDifference,
    TimelineItem,
    diff_states,
    fold_stored,
    require_offset,
    select_as_of,
    timeline,
)
from audit.errors import EpisodeNotInStore
from audit.verify import StreamReport, check_stream, trusted_checkpoint
from domain.errors import CarePathError
from domain.state import EpisodeState
from store.event_store import EventStore
from workflows.client import EpisodeClient


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LiveComparison(_Model):
    """The folded record against the running workflow's state."""

    compared: bool
    matches: bool
    differences: tuple[FieldDifference, ...] = ()
    # Why no comparison was made (the workflow is gone, Temporal is down).
    unavailable: str | None = None


class AuditReplay(_Model):
    """An episode's record as of a moment: its timeline, its state then, and how far to trust it."""

    episode_id: str
    as_of: datetime | None
    verification: StreamReport
    events_total: int
    events_included: int
    timeline: tuple[TimelineItem, ...]
    state: EpisodeState | None
    live: LiveComparison | None = None

    @property
    def ok(self) -> bool:
        """The chain verified and, if a comparison was made, the live state matched."""
        live_ok = self.live is None or not self.live.compared or self.live.matches
        return self.verification.ok and live_ok


async def replay_episode(
    store: EventStore,
    episode_id: str,
    as_of: datetime | None = None,
    episodes: EpisodeClient | None = None,
    *,
    key: bytes | None = None,
) -> AuditReplay:
    """Verify, select the events as of `as_of` (all if None), fold them.

    The whole stream is verified, against the latest checkpoint when `key` is given (a
    change after the moment is still a change to the record). With no `as_of` and an
    `episodes` client, the state is compared with the live workflow's.
    """
    if as_of is not None:
        require_offset(as_of)
    stored = await store.read_stream(episode_id)
    if not stored:
        raise EpisodeNotInStore(episode_id)
    verification = check_stream(
        episode_id,
        stored,
        await trusted_checkpoint(store, key),
        chain_key=store.chain_key,
        seal=await store.chain_seal(),
    )
    trusted = (
        stored
        if verification.first_bad_seq is None
        else [e for e in stored if e.seq < verification.first_bad_seq]
    )
    selected = select_as_of(trusted, as_of)
    state = fold_stored(selected)
    live = None
    if as_of is None and episodes is not None:
        live = await compare_live(episodes, episode_id, state)
    return AuditReplay(
        episode_id=episode_id,
        as_of=as_of,
        verification=verification,
        events_total=len(stored),
        events_included=len(selected),
        timeline=timeline(selected),
        state=state,
        live=live,
    )


async def compare_live(
    episodes: EpisodeClient, episode_id: str, folded: EpisodeState | None
) -> LiveComparison:
    """Ask the workflow for its state and compare it with the folded one."""
    try:
        view = await episodes.view(episode_id)
    except CarePathError as err:
        return LiveComparison(compared=False, matches=False, unavailable=err.message)
    differences = tuple(diff_states(folded, view.state))
    return LiveComparison(compared=True, matches=not differences, differences=differences)
