"""The pure clinical model: commands, events, state, the decider and program definitions.

Nothing here performs I/O, reads the clock or the environment, or imports Temporal,
asyncpg, structlog or FastAPI. Time and ids come in through `DecisionContext`.

The workflow needs only the names re-exported here: `decide`, `evolve`, `fold`,
`DecisionContext`, `next_deadline`, `visibility` and the `Tick` command.
"""

from domain.commands import COMMAND_ADAPTER, Command, Tick
from domain.deadlines import next_deadline, visibility
from domain.decider import DecisionContext, decide, evolve, fold
from domain.events import EVENT_ADAPTER, Event, dump_event, load_event
from domain.state import EpisodeState, Stage

__all__ = [
    "COMMAND_ADAPTER",
    "EVENT_ADAPTER",
    "Command",
    "DecisionContext",
    "EpisodeState",
    "Event",
    "Stage",
    "Tick",
    "decide",
    "dump_event",
    "evolve",
    "fold",
    "load_event",
    "next_deadline",
    "visibility",
]
