"""The decider: `decide(state, command, ctx) -> events` and `evolve(state, event) -> state`.

Pure functions. The state of any moment is the fold of the events up to it. `decide`
checks the actor's role, that the episode exists and is open, then hands the command to
the rule registered for it (`domain.rules`). The rule modules are imported here, in the
order of the pathway; two commands are special: the referral opens the episode, and a
tick decides at the moment it carries rather than at the context's.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.asam import refuse_merged_levels
from domain.command_base import CommandBase
from domain.commands_care import Tick
from domain.commands_intake import ReferClient
from domain.emitter import DecisionContext, Emitter
from domain.errors import EpisodeAlreadyStarted, EpisodeClosed, EpisodeNotStarted
from domain.events import Event
from domain.evolution import evolve_event
from domain.roles import SYSTEM, check_allowed
from domain.rules import rule, rule_for
from domain.state import EpisodeState
from domain.ticks import tick

# The rule modules, in the order of the pathway. Each registers its rules as it loads, and
# the registry keeps that order for the `Command` union, the OpenAPI document and the CLI:
# do not let these imports be sorted.
# isort: off
from domain import decide_intake, decide_plan, decide_sessions, decide_tasks  # noqa: F401
from domain import decide_aftercare, decide_consent  # noqa: F401
from domain import decide_programs  # noqa: F401
# isort: on

__all__ = ["DecisionContext", "decide", "evolve", "fold"]


@rule(Tick, roles=SYSTEM)
def pass_time(em: Emitter, cmd: Tick) -> None:
    """Handle everything due by the tick's moment (`decide` set the emitter's clock to it)."""
    tick(em)


def decide(
    state: EpisodeState | None, command: CommandBase, ctx: DecisionContext
) -> tuple[Event, ...]:
    """Judge a command against the current state; return the events it produces or raise.

    Raises a `CarePathError` subclass for every refusal; nothing is emitted then.
    """
    check_allowed(command.type, command.actor)
    if state is None:
        if not isinstance(command, ReferClient):
            raise EpisodeNotStarted(
                f"episode {ctx.episode_id} does not exist yet: refer the client first"
            )
        ctx.programs.get(command.program_id)
        em = Emitter(None, command, ctx)
    else:
        if state.is_closed:
            raise EpisodeClosed(
                f"episode {state.episode_id} is {state.stage.value}: no further changes are "
                "accepted; refer the client again to open a new episode"
            )
        if isinstance(command, ReferClient):
            raise EpisodeAlreadyStarted(
                f"episode {state.episode_id} already exists: use a new episode id for a new "
                "referral"
            )
        now = command.now if isinstance(command, Tick) else None
        em = Emitter(state, command, ctx, now=now)
    refuse_merged_levels(state, command, ctx.rules_revision)
    rule_for(command.type).decide(em, command)
    return tuple(em.events)


def evolve(state: EpisodeState | None, event: Event) -> EpisodeState:
    """Apply one event to the state."""
    return evolve_event(state, event)


def fold(events: Iterable[Event], state: EpisodeState | None = None) -> EpisodeState | None:
    """The state after applying every event in order."""
    for event in events:
        state = evolve(state, event)
    return state
