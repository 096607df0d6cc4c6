"""The scratchpad a decision writes to: numbers events, stamps them and applies them.

Each emitted event is applied at once, so a later rule in the same decision (an
escalation after a no-show, a flag after attendance) judges the state as it will be.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from domain.command_base import CommandBase
from domain.errors import WrongStage
from domain.event_types import EventBase
from domain.events import Event, current_schema_version
from domain.evolution import evolve_event
from domain.programs import ProgramCatalog, ProgramDefinition
from domain.state import EpisodeState, Stage
from domain.vocabulary import CURRENT_RULES

E = TypeVar("E", bound=EventBase)


@dataclass(frozen=True)
class DecisionContext:
    """What the decider may know of the world: the time, the program definitions, and
    the revision of the pathway's rules that an admission now records (the workflow
    passes the first revision when it replays a history recorded before the current)."""

    episode_id: str
    now: datetime
    programs: ProgramCatalog
    rules_revision: int = CURRENT_RULES


class Emitter:
    """Collects the events of one decision, keeping the state they lead to."""

    def __init__(
        self,
        state: EpisodeState | None,
        command: CommandBase,
        ctx: DecisionContext,
        now: datetime | None = None,
    ) -> None:
        self._state = state
        self._command = command
        self._ctx = ctx
        self.now = now if now is not None else ctx.now
        self.events: list[Event] = []

    @property
    def state(self) -> EpisodeState:
        if self._state is None:  # pragma: no cover - decide() handles the empty stream
            raise AssertionError("no episode state yet")
        return self._state

    @property
    def program(self) -> ProgramDefinition:
        return self._ctx.programs.get(self.state.program_id)

    def program_named(self, program_id: str) -> ProgramDefinition:
        """A program of the context's catalog by id (before the episode exists)."""
        return self._ctx.programs.get(program_id)

    @property
    def rules_revision(self) -> int:
        return self._ctx.rules_revision

    @property
    def next_seq(self) -> int:
        return (self._state.version if self._state is not None else 0) + 1

    def emit(self, cls: type[E], **fields: Any) -> E:
        tag = str(cls.model_fields["type"].default)
        event = cls(
            episode_id=self._ctx.episode_id,
            seq=self.next_seq,
            occurred_at=self.now,
            actor=self._command.actor,
            command_id=self._command.command_id,
            schema_version=current_schema_version(tag),
            **fields,
        )
        self._state = evolve_event(self._state, event)
        self.events.append(cast(Event, event))
        return event

    def require_stage(self, allowed: frozenset[Stage] | set[Stage], action: str) -> None:
        """Raise `WrongStage` unless the episode is in one of the allowed stages."""
        stage = self.state.stage
        if stage not in allowed:
            names = " or ".join(sorted(s.value for s in allowed))
            raise WrongStage(
                f"cannot {action} while episode {self.state.episode_id} is {stage.value}: "
                f"this needs the episode to be {names}"
            )
