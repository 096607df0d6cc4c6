"""The CarePathway workflow: one long-running execution per episode of care.

Thin on purpose: every clinical judgement is made by the pure decider. The workflow
- receives staff commands as Updates; the validator runs `decide` so a refused command
  never enters history, and the handler persists the events before answering;
- sleeps until `next_deadline(state)` (one timer at a time) and then feeds
  `Tick(workflow.now())` to the decider, persisting whatever the passage of time meant;
- sends notifications for persisted events from its main loop, after the caller has
  been answered;
- continues as new with a state snapshot before its history grows large;
- starts the new, linked episode when a client is readmitted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import structlog

    from domain.commands import Command, ReferClient, ReferralSource, Tick
    from domain.deadlines import next_deadline, pending_deadlines, visibility
    from domain.decider import DecisionContext, decide, fold
    from domain.errors import CarePathError
    from domain.events import ClientReadmitted, Event, PartyNotified
    from domain.programs import ProgramCatalog
    from domain.state import EpisodeState
    from workflows.messages import (
        APPEND_EVENTS_ACTIVITY,
        COMMAND_UPDATE,
        DEADLINES_QUERY,
        SEND_NOTIFICATIONS_ACTIVITY,
        STATE_QUERY,
        TIMELINE_QUERY,
        WORKFLOW_NAME,
        AppendEventsInput,
        AppendEventsResult,
        CarePathwayInput,
        CommandRequest,
        CommandResult,
        DeadlinesView,
        EpisodeView,
        NotifyInput,
        PendingDeadline,
        TimelineEntry,
        TimelineView,
        workflow_id_for,
    )

STAGE = SearchAttributeKey.for_keyword("CarePathwayStage")
PROGRAM = SearchAttributeKey.for_keyword("ProgramId")
CLINICIAN = SearchAttributeKey.for_keyword("PrimaryClinician")
ESCALATION = SearchAttributeKey.for_int("EscalationLevel")
NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")

# The append is a local activity: it runs in the worker that holds the workflow task, so a
# command's round trip avoids a second trip through the server's task queues. A worker
# crash re-runs it on the next attempt; the store's idempotent append makes that safe.
APPEND_TIMEOUT = timedelta(seconds=15)
APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)
# Notifications go to external channels that may be slow or down for a while: a regular
# activity, retried by the server with backoff, never holding up a command's answer.
NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))
TIMELINE_LENGTH = 50

log = structlog.get_logger("carepath.workflow")


@workflow.defn(name=WORKFLOW_NAME)
class CarePathwayWorkflow:
    @workflow.init
    def __init__(self, inp: CarePathwayInput) -> None:
        self._episode_id = inp.episode_id
        self._programs = ProgramCatalog({inp.program.id: inp.program})
        self._state: EpisodeState | None = inp.snapshot
        self._history_event_limit = inp.history_event_limit
        # Commands and ticks are applied one at a time, in the order they take the lock,
        # so two accepted commands never both decide against the same old state.
        self._lock = asyncio.Lock()
        self._outbox: list[Event] = []
        self._timeline: deque[TimelineEntry] = deque(maxlen=TIMELINE_LENGTH)
        self._published: dict[str, object] = {}
        self._timer: asyncio.Future[None] | None = None
        # Commands whose events were found already stored (see `_apply`), by command id,
        # so that their re-delivered update answers with those events instead of failing.
        self._adopted: dict[str, tuple[Event, ...]] = {}
        self._timer_deadline: datetime | None = None

    @workflow.run
    async def run(self, inp: CarePathwayInput) -> EpisodeView:
        if inp.initial_command is not None and self._state is None:
            await self._apply(inp.initial_command)
        while True:
            await workflow.wait_condition(lambda: self._state is not None)
            state = self._current()
            if state.is_closed:
                break
            await self._wait_for_change_or_deadline(state)
            await self._drain_outbox()
            if self._should_continue_as_new():
                await self._settle()
                workflow.continue_as_new(
                    inp.model_copy(update={"snapshot": self._state, "initial_command": None})
                )
        await self._settle()
        return self._view()

    async def _settle(self) -> None:
        """Wait until no update is in flight and every notification is sent.

        Only then may the run end or continue as new: an update still running would fail
        for its caller. Sending notifications awaits an activity, during which new updates
        can be accepted, so the two waits repeat until both hold at the same moment.
        """
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            if not self._outbox:
                return
            await self._drain_outbox()

    async def _wait_for_change_or_deadline(self, state: EpisodeState) -> None:
        """Sleep until a command changes the state or the next deadline arrives.

        One timer at a time, kept across commands that leave the deadline where it was
        (most of them): only a moved deadline cancels the timer and starts a new one.
        """
        seen = state.version
        deadline = next_deadline(state)
        if deadline != self._timer_deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_deadline = None, deadline
            if deadline is not None:
                delay = max(deadline - workflow.now(), timedelta(0))
                self._timer = asyncio.ensure_future(workflow.sleep(delay))
        timer = self._timer
        await workflow.wait_condition(
            lambda: (
                self._current().version != seen
                or bool(self._outbox)
                or (timer is not None and timer.done())
            )
        )
        if timer is None or not timer.done() or self._current().version != seen:
            return
        self._timer, self._timer_deadline = None, None
        now = workflow.now()
        produced = await self._apply(Tick(command_id=f"tick:{now.isoformat()}", now=now))
        if not produced and next_deadline(self._current()) == deadline:
            # The decider saw nothing due: wait for a command rather than spin.
            log.warning("deadline_without_effect", deadline=str(deadline))
            await workflow.wait_condition(lambda: self._current().version != seen)

    @workflow.update(name=COMMAND_UPDATE)
    async def command(self, request: CommandRequest) -> CommandResult:
        events = await self._apply(request.command)
        state = self._current()
        return CommandResult(
            episode_id=self._episode_id,
            events=events,
            version=state.version,
            stage=state.stage.value,
            state=state if request.include_state else None,
        )

    @command.validator
    def _validate_command(self, request: CommandRequest) -> None:
        # Runs before anything is written: a refused command leaves no trace in history.
        if isinstance(request.command, Tick):
            raise ApplicationError(
                "time passes by itself: ticks come from the episode's own timers",
                type="CommandNotAllowed",
                non_retryable=True,
            )
        if request.command.command_id not in self._adopted:
            self._decide(request.command)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> EpisodeView:
        return self._view()

    @workflow.query(name=DEADLINES_QUERY)
    def pending_deadlines(self) -> DeadlinesView:
        pending = pending_deadlines(self._state) if self._state is not None else ()
        return DeadlinesView(
            episode_id=self._episode_id,
            next_deadline=next_deadline(self._state),
            pending=tuple(PendingDeadline(kind=k, due_at=at, ref=ref) for k, at, ref in pending),
        )

    @workflow.query(name=TIMELINE_QUERY)
    def timeline(self) -> TimelineView:
        return TimelineView(episode_id=self._episode_id, entries=tuple(self._timeline))

    async def _apply(self, command: Command) -> tuple[Event, ...]:
        """Decide, persist, then adopt the new state; the caller sees it only once stored."""
        async with self._lock:
            events = self._adopted.get(command.command_id)
            while events is None:
                # Decide again under the lock: another command may have been applied
                # between this one's validation and now.
                decided = self._decide(command)
                if not decided:
                    return decided
                result = await workflow.execute_local_activity(
                    APPEND_EVENTS_ACTIVITY,
                    AppendEventsInput(episode_id=self._episode_id, events=decided),
                    start_to_close_timeout=APPEND_TIMEOUT,
                    retry_policy=APPEND_RETRY,
                    result_type=AppendEventsResult,
                )
                if not result.stored_instead:
                    self._adopt(decided)
                    events = decided
                    continue
                # The store is ahead of this run: a workflow task whose completion was
                # lost had already appended events. They were decided by this workflow
                # for accepted commands, so take them as they are stored, then decide
                # this command again unless it was one of them.
                self._adopt(result.stored_instead)
                for command_id, stored in _by_command(result.stored_instead).items():
                    self._adopted[command_id] = stored
                events = self._adopted.get(command.command_id)
            log.info(
                "command_applied",
                command=command.type,
                command_id=command.command_id,
                events=[e.type for e in events],
                head_seq=self._current().version,
                stage=self._current().stage.value,
            )
        for event in events:
            if isinstance(event, ClientReadmitted):
                await self._open_readmission(event, command)
        return events

    def _adopt(self, events: tuple[Event, ...]) -> None:
        """Make stored events part of the state, the timeline and the notifications."""
        self._state = fold(events, self._state)
        # Only events that call for a message go to the notification activity: those
        # that name staff to notify, and notices to a consenting family or party.
        self._outbox.extend(
            e for e in events if getattr(e, "notify", ()) or isinstance(e, PartyNotified)
        )
        self._timeline.extend(
            TimelineEntry(
                seq=e.seq,
                type=e.type,
                occurred_at=e.occurred_at,
                actor_id=e.actor.user_id,
                actor_role=e.actor.role.value,
            )
            for e in events
        )
        self._publish_visibility()

    def _decide(self, command: Command) -> tuple[Event, ...]:
        ctx = DecisionContext(
            episode_id=self._episode_id, now=workflow.now(), programs=self._programs
        )
        try:
            return decide(self._state, command, ctx)
        except CarePathError as err:
            raise ApplicationError(err.message, type=err.code, non_retryable=True) from None

    async def _drain_outbox(self) -> None:
        while self._outbox:
            batch, self._outbox = tuple(self._outbox), []
            await workflow.execute_activity(
                SEND_NOTIFICATIONS_ACTIVITY,
                NotifyInput(
                    episode_id=self._episode_id,
                    primary_clinician=self._current().primary_clinician,
                    events=batch,
                ),
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
            )

    async def _open_readmission(self, event: ClientReadmitted, command: Command) -> None:
        """Start the new episode, linked both ways: its referral names this episode."""
        state = self._current()
        referral = ReferClient(
            command_id=f"readmit-{event.new_episode_id}",
            actor=command.actor,
            client_ref=state.client_ref,
            program_id=state.program_id,
            referral_source=ReferralSource.OTHER,
            readmission_of=self._episode_id,
            reason=f"readmission from episode {self._episode_id}",
        )
        await workflow.start_child_workflow(
            CarePathwayWorkflow.run,
            CarePathwayInput(
                episode_id=event.new_episode_id,
                program=self._programs.get(state.program_id),
                initial_command=referral,
            ),
            id=workflow_id_for(event.new_episode_id),
            # The new episode outlives this one: it must not be closed with its parent.
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._history_event_limit
        )

    def _publish_visibility(self) -> None:
        values = visibility(self._current())
        updates: list[SearchAttributeUpdate[Any]] = []
        for key, value in (
            (STAGE, values["stage"]),
            (PROGRAM, values["program_id"]),
            (CLINICIAN, values["primary_clinician"]),
            (ESCALATION, values["escalation_level"]),
            (NEXT_DEADLINE, values["next_deadline"]),
        ):
            # A new run starts with none set, so an absent value needs no unset.
            if self._published.get(key.name) == value:
                continue
            self._published[key.name] = value
            updates.append(key.value_unset() if value is None else key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)

    def _current(self) -> EpisodeState:
        assert self._state is not None, "the episode has not been referred yet"
        return self._state

    def _view(self) -> EpisodeView:
        return EpisodeView(
            episode_id=self._episode_id,
            workflow_id=workflow.info().workflow_id,
            state=self._state,
        )


def _by_command(events: tuple[Event, ...]) -> dict[str, tuple[Event, ...]]:
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.command_id, []).append(event)
    return {command_id: tuple(group) for command_id, group in grouped.items()}
