"""The inputs and outputs that cross the workflow boundary, one model each.

Every handler takes one model and returns one, so a field can be added later without
breaking running episodes or callers (add it with a default).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from domain.command_base import CommandBase
from domain.commands import Command, ReferClient
from domain.events import Event
from domain.idempotency import command_fingerprint
from domain.programs import ProgramDefinition
from domain.state import EpisodeState

WORKFLOW_NAME = "CarePathway"
COMMAND_UPDATE = "command"
# The failure type of a command refused because the caller does not work in the episode's
# program: callers answer it exactly like an episode that does not exist.
OUTSIDE_PROGRAMS = "EpisodeOutsidePrograms"
STATE_QUERY = "state"
DEADLINES_QUERY = "pending_deadlines"
TIMELINE_QUERY = "timeline"
APPEND_EVENTS_ACTIVITY = "append_events"
SEND_NOTIFICATIONS_ACTIVITY = "send_notifications"


def workflow_id_for(episode_id: str) -> str:
    """The Temporal workflow id of an episode: derived, so the id alone finds the workflow."""
    return f"episode-{episode_id}"


def outside_programs_message(episode_id: str) -> str:
    """What a caller outside an episode's program is told: the words of a missing episode."""
    return f"no episode {episode_id!r} in your programs: check the id (it is returned on referral)"


def update_id_for(command: CommandBase) -> str:
    """The Temporal update id of a command: its command id and its request's fingerprint.

    Temporal deduplicates updates by id within a run and answers a repeat with the first
    outcome without asking the workflow. With the fingerprint in the id, only a repeat of
    the *same* request is answered that way; the same command id with another body is a
    new update, which the workflow refuses as `IdempotencyKeyReused`.
    """
    return f"{command.command_id}#{command_fingerprint(command)[:32]}"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AppliedCommandIds(_Message):
    """A Bloom filter of command ids: `bits` is zlib-compressed, then base64.

    "Not in the filter" is certain; "in the filter" means "ask the event store".
    """

    bits: str
    hashes: int
    count: int


# A run continues as new once its history reaches this many events (docs/versioning.md,
# "Continue-as-new"); chosen so that a worker replays the longest run within its budget.
DEFAULT_HISTORY_EVENT_LIMIT = 100


class CarePathwayInput(_Message):
    episode_id: str
    # The program is copied into the episode when it starts: an episode keeps the rules it
    # was admitted under even if the program file changes later, and replay stays exact.
    program: ProgramDefinition
    # Carried across continue-as-new: the state so far (its version is the last seq).
    snapshot: EpisodeState | None = None
    # A referral applied when the run starts: used to open a readmission episode, whose
    # referral comes from the episode it readmits from rather than from an API call.
    initial_command: ReferClient | None = None
    # Continue-as-new once the run's history reaches this many events, even if the server
    # has not suggested it yet (it suggests at 4,096 by default).
    history_event_limit: int = DEFAULT_HISTORY_EVENT_LIMIT
    # Carried across continue-as-new: which command ids earlier runs applied, as a
    # fixed-size filter (see workflows.command_ledger); the event store holds the rest.
    applied_commands: AppliedCommandIds | None = None


class CommandRequest(_Message):
    command: Command
    # The whole state is sent back only on request: every update result is stored in the
    # workflow's history, and a state with months of sessions is tens of kilobytes.
    include_state: bool = False
    # The programs the caller works in (None: every program). The validator refuses a
    # command to an episode of any other program as `EpisodeOutsidePrograms`, before
    # anything is written. Update inputs recorded before the field existed lack it (None).
    programs: tuple[str, ...] | None = None


class CommandResult(_Message):
    episode_id: str
    events: tuple[Event, ...]
    version: int
    stage: str
    state: EpisodeState | None = None
    # The global position of the command's last event in the store (`store.projections`):
    # a read of the read models can wait for it. None when nothing new was stored (a
    # repeated command, or one with no effect).
    position: int | None = None


class EpisodeView(_Message):
    episode_id: str
    workflow_id: str
    state: EpisodeState | None


class AppendEventsInput(_Message):
    episode_id: str
    events: tuple[Event, ...]
    # The staff command these events answer and its request's fingerprint: the store
    # records them, answers a command id it already holds with its stored events, and
    # refuses one held for another request. None for the episode's own ticks.
    command_id: str | None = None
    fingerprint: str | None = None
    # The workflow's last seq. Needed only with no events, when the call just asks the
    # store whether the command was applied (its new events would follow this seq).
    after_seq: int | None = None


class AppendEventsResult(_Message):
    episode_id: str
    head_seq: int
    written: int
    # Set instead of writing when the stream already held events at those positions, or
    # beyond the workflow's last seq: everything stored from there on, for it to adopt.
    stored_instead: tuple[Event, ...] = ()
    # Set instead of writing when the command was already applied: its stored events.
    applied_before: tuple[Event, ...] = ()
    # What the store holds at the appended seqs, one digest per event
    # (domain.canonical.payload_digest), for the workflow to compare with what it decided.
    # None in results recorded before the field existed: nothing to compare then.
    stored_digests: tuple[str, ...] | None = None
    # The global position of the batch's last event; None in results recorded before it.
    position: int | None = None


class NotifyInput(_Message):
    episode_id: str
    primary_clinician: str | None
    events: tuple[Event, ...]


class NotifyResult(_Message):
    sent: int
    # Skipped because an earlier attempt delivered them (the notifications_sent ledger).
    already_sent: int = 0
    # Family or external recipients whose consent was no longer active at sending time.
    withheld: int = 0


class PendingDeadline(_Message):
    kind: str
    due_at: datetime
    ref: str | None = None


class DeadlinesView(_Message):
    episode_id: str
    next_deadline: datetime | None
    pending: tuple[PendingDeadline, ...]


class TimelineEntry(_Message):
    seq: int
    type: str
    occurred_at: datetime
    actor_id: str
    actor_role: str


class TimelineView(_Message):
    episode_id: str
    entries: tuple[TimelineEntry, ...]
