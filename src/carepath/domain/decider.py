"""The decider: `decide(state, command, ctx) -> events` and `evolve(state, event) -> state`.

Pure functions. The state of any moment is the fold of the events up to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from carepath.domain.commands import Command, ReferClient
from carepath.domain.errors import EpisodeAlreadyStarted, EpisodeClosed, EpisodeNotStarted
from carepath.domain.events import ClientReferred, Event
from carepath.domain.programs import ProgramCatalog
from carepath.domain.state import EpisodeState


@dataclass(frozen=True)
class DecisionContext:
    """What the decider may know of the world: the time and the program definitions."""

    episode_id: str
    now: datetime
    programs: ProgramCatalog


def decide(state: EpisodeState | None, command: Command, ctx: DecisionContext) -> tuple[Event, ...]:
    """Judge a command against the current state; return the events it produces or raise."""
    if state is None:
        if not isinstance(command, ReferClient):
            raise EpisodeNotStarted(
                f"episode {ctx.episode_id} does not exist yet: refer the client first"
            )
        ctx.programs.get(command.program_id)
        return (
            ClientReferred(
                episode_id=ctx.episode_id,
                seq=1,
                occurred_at=ctx.now,
                actor=command.actor,
                command_id=command.command_id,
                client_ref=command.client_ref,
                program_id=command.program_id,
                referral_source=command.referral_source,
            ),
        )
    if state.is_closed:
        raise EpisodeClosed(
            f"episode {state.episode_id} is {state.stage.value}: no further changes are accepted; "
            "refer the client again to open a new episode"
        )
    if isinstance(command, ReferClient):
        raise EpisodeAlreadyStarted(
            f"episode {state.episode_id} already exists: use a new episode id for a new referral"
        )
    raise AssertionError(f"unhandled command {command!r}")  # pragma: no cover


def evolve(state: EpisodeState | None, event: Event) -> EpisodeState:
    """Apply one event to the state."""
    if isinstance(event, ClientReferred):
        return EpisodeState(
            episode_id=event.episode_id,
            version=event.seq,
            program_id=event.program_id,
            client_ref=event.client_ref,
            referral_source=event.referral_source,
            referred_at=event.occurred_at,
        )
    raise AssertionError(f"unhandled event {event!r}")  # pragma: no cover


def fold(events: Iterable[Event], state: EpisodeState | None = None) -> EpisodeState | None:
    """The state after applying every event in order."""
    for event in events:
        state = evolve(state, event)
    return state
