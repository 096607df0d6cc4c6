"""The inputs and outputs that cross the workflow boundary, one model each.

Every handler takes one model and returns one, so a field can be added later without
breaking running episodes or callers (add it with a default).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from carepath.domain.commands import Command
from carepath.domain.events import Event
from carepath.domain.programs import ProgramDefinition
from carepath.domain.state import EpisodeState

WORKFLOW_NAME = "CarePathway"
COMMAND_UPDATE = "command"
STATE_QUERY = "state"
APPEND_EVENTS_ACTIVITY = "append_events"


def workflow_id_for(episode_id: str) -> str:
    """The Temporal workflow id of an episode: derived, so the id alone finds the workflow."""
    return f"episode-{episode_id}"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CarePathwayInput(_Message):
    episode_id: str
    # The program is copied into the episode when it starts: an episode keeps the rules it
    # was admitted under even if the program file changes later, and replay stays exact.
    program: ProgramDefinition
    snapshot: EpisodeState | None = None


class CommandRequest(_Message):
    command: Command


class CommandResult(_Message):
    episode_id: str
    events: tuple[Event, ...]
    state: EpisodeState


class EpisodeView(_Message):
    episode_id: str
    workflow_id: str
    state: EpisodeState | None


class AppendEventsInput(_Message):
    episode_id: str
    events: tuple[Event, ...]


class AppendEventsResult(_Message):
    episode_id: str
    head_seq: int
    written: int
