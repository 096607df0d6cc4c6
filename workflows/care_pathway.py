"""The CarePathway workflow: one long-running execution per episode of care.

Thin on purpose: every clinical judgement is made by the pure decider. The workflow
- receives staff commands as Updates, each named after its command's type (the history
  reads `record_attendance`, `discharge`, ...; the older `command` update still works);
  the validator runs `decide` so a refused command never enters history, and the handler
  persists the events before answering;
- applies a command id once for the whole life of the episode: this run's commands and a
  filter of earlier runs' ids (`workflows.command_ledger`) answer most repeats, the event
  store answers the rest, and a command id reused for another request is refused;
- checks that the store holds exactly the events it decided (on every replay too), and
  fails its task loudly when it does not;
- sleeps until `next_deadline(state)` (one timer at a time) and then feeds
  `Tick(workflow.now())` to the decider, persisting whatever the passage of time meant;
- sends notifications and starts a readmission's new episode from its main loop, after
  the caller has been answered, retrying the start until it succeeds;
- continues as new with a state snapshot (and the command-id filter) before its history
  grows large.

A store failure never wedges the episode: the append is bounded in time, a refusal no
retry can fix fails that one command at once, and the lock is released for the next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue, RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    TemporalError,
)

with workflow.unsafe.imports_passed_through():
    import structlog

    from domain.canonical import event_digests
    from domain.commands import Command, ReferClient, ReferralSource, Tick
    from domain.deadlines import next_deadline, pending_deadlines, visibility
    from domain.decider import DecisionContext, decide, fold
    from domain.errors import CarePathError
    from domain.events import ClientReadmitted, Event, PartyNotified, ProgramMigrated
    from domain.idempotency import command_fingerprint, reused_key
    from domain.programs import ProgramCatalog, ProgramDefinition, parse_program
    from domain.state import EpisodeState
    from domain.vocabulary import CURRENT_RULES, FIRST_RULES
    from workflows import trace_context
    from workflows.command_ledger import CommandLedger
    from workflows.messages import (
        APPEND_EVENTS_ACTIVITY,
        COMMAND_UPDATE,
        DEADLINES_QUERY,
        OUTSIDE_PROGRAMS,
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
        outside_programs_message,
        workflow_id_for,
    )
    from workflows.summaries import (
        READMISSION_RETRY_SUMMARY,
        TICK_RETRY_SUMMARY,
        append_summary,
        deadline_summary,
        episode_summary,
        notify_summary,
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
# The whole append, retries included, is bounded: while it runs the command holds the
# episode's lock, and a store that does not answer must fail the command (the caller may
# send it again under the same key), not hold up every later command.
APPEND_DEADLINE = timedelta(seconds=60)
APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)
# A readmission's new episode is started from the main loop until the start succeeds
# (its workflow id may be taken for a while): first retry after a second, then backing
# off to one attempt an hour, which keeps the history small if it takes days.
READMISSION_RETRY_FIRST = timedelta(seconds=1)
READMISSION_RETRY_MAX = timedelta(hours=1)
# A tick whose events the store refused is tried again after this long; commands are
# accepted meanwhile.
TICK_RETRY = timedelta(minutes=1)
# Notifications go to external channels that may be slow or down for a while: a regular
# activity, retried by the server with backoff, never holding up a command's answer.
NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))
# The timeline query serves this run's most recent entries only; the whole timeline is
# read from the event store (`GET /episodes/{id}/timeline`).
TIMELINE_LENGTH = 50

# Changes to the commands this workflow issues, each guarded so that histories recorded
# before it replay down the old branch (docs/versioning.md).
# A continued run knows the search attributes it inherited, and upserts only changes.
SEED_SEARCH_ATTRIBUTES = "seed-published-search-attributes"
# A readmission's new episode is started by the main loop, not by the update handler.
READMISSION_FROM_MAIN_LOOP = "readmission-started-from-main-loop"
# A run whose first command was refused ends instead of waiting without an episode.
END_RUN_WITHOUT_EPISODE = "end-run-without-episode"
# Admissions record the current revision of the pathway's rules (`DeadlineRules`); an
# episode admitted in a history recorded before keeps the first revision.
CURRENT_RULES_AT_ADMISSION = "admit-under-current-rules"

log = structlog.get_logger("carepath.workflow")


class StoreDivergence(RuntimeError):
    """Raised when the event store holds other events than this workflow decided at the
    same seqs. Not an `ApplicationError`: it fails the workflow *task*, which Temporal
    retries, rather than the episode. Live, it means the store changed what it was given;
    in a replay, that the decider now produces other events for a recorded command: make
    such a change apply only from a patch on (docs/versioning.md).
    """


@workflow.defn(name=WORKFLOW_NAME)
class CarePathwayWorkflow:
    @workflow.init
    def __init__(self, inp: CarePathwayInput) -> None:
        self._episode_id = inp.episode_id
        # The definition the episode runs under: the one it started with (carried across
        # continue-as-new), until a `program_migrated` event replaces it.
        self._program: ProgramDefinition = inp.program
        self._programs = ProgramCatalog({inp.program.id: inp.program})
        self._state: EpisodeState | None = inp.snapshot
        self._history_event_limit = inp.history_event_limit
        # Commands and ticks are applied one at a time, in the order they take the lock,
        # so two accepted commands never both decide against the same old state.
        self._lock = asyncio.Lock()
        # Store position of each staff command's last event, from its append until the
        # update answers with it (read-your-writes: `CommandResult.position`).
        self._positions: dict[str, int] = {}
        self._outbox: list[Event] = []
        # The trace context of the command (or tick) whose events opened the outbox: the
        # notifications they cause are sent in its trace (workflows.trace_context).
        self._outbox_cause: trace_context.Context | None = None
        # ClientReadmitted events whose new episode is still to be started.
        self._readmissions: list[ClientReadmitted] = []
        self._timeline: deque[TimelineEntry] = deque(maxlen=TIMELINE_LENGTH)
        self._published = _inherited_search_attributes()
        self._timer: asyncio.Future[None] | None = None
        # The validator's decision, for the handler that runs right after it in the same
        # workflow task (`_decide`): it would otherwise be worked out twice per command.
        self._validated: _Decision | None = None
        # The request a named command's validator accepted, with the payload it was
        # decoded from, for the handler that runs next on that payload (`named_command`).
        self._accepted: tuple[Payload, CommandRequest] | None = None
        # The next deadline of one state: the search attributes and the timer both ask
        # for it after every change (`_next_deadline`).
        self._deadline_of: tuple[EpisodeState, datetime | None] | None = None
        # The command ids applied to this episode: this run's in full (including those
        # whose events were found already stored, see `_apply`), earlier runs' as a filter.
        self._ledger = CommandLedger(inp.applied_commands)
        self._timer_deadline: datetime | None = None
        # The rules revision an admission records, settled by the first command this run
        # applies (a patch marker cannot be written from a validator or a query).
        self._rules_revision: int | None = None

    @workflow.run
    async def run(self, inp: CarePathwayInput) -> EpisodeView:
        if inp.initial_command is not None and self._state is None:
            await self._apply(inp.initial_command)
        while True:
            await workflow.wait_condition(
                lambda: self._state is not None or workflow.all_handlers_finished()
            )
            if self._state is None:
                # The first command (a referral sent with the start) was refused or failed:
                # there is no episode, so no workflow should be left running for it.
                if workflow.patched(END_RUN_WITHOUT_EPISODE):
                    return self._view()
                await workflow.wait_condition(lambda: self._state is not None)
            state = self._current()
            if state.is_closed:
                break
            await self._wait_for_change_or_deadline(state)
            await self._drain_outbox()
            await self._open_readmissions()
            if self._should_continue_as_new():
                await self._settle()
                workflow.continue_as_new(
                    inp.model_copy(
                        update={
                            "program": self._program,
                            "snapshot": self._state,
                            "initial_command": None,
                            "applied_commands": self._ledger.carried(),
                        }
                    )
                )
        await self._settle()
        return self._view()

    async def _settle(self) -> None:
        """Wait until no update is in flight, every notification is sent and every
        readmission's new episode is started.

        Only then may the run end or continue as new: an update still running would fail
        for its caller. The other two await activities and child starts, during which new
        updates can be accepted, so the waits repeat until all hold at the same moment.
        """
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            if not self._outbox and not self._readmissions:
                return
            await self._drain_outbox()
            await self._open_readmissions()

    async def _wait_for_change_or_deadline(self, state: EpisodeState) -> None:
        """Sleep until a command changes the state or the next deadline arrives.

        One timer at a time, kept across commands that leave the deadline where it was
        (most of them): only a moved deadline cancels the timer and starts a new one.
        """
        seen = state.version
        deadline = self._next_deadline(state)
        if deadline != self._timer_deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_deadline = None, deadline
            if deadline is not None:
                delay = max(deadline - workflow.now(), timedelta(0))
                summary = deadline_summary(pending_deadlines(state), deadline)
                self._timer = asyncio.ensure_future(workflow.sleep(delay, summary=summary))
        timer = self._timer
        await workflow.wait_condition(
            lambda: (
                self._current().version != seen
                or bool(self._outbox)
                or bool(self._readmissions)
                or (timer is not None and timer.done())
            )
        )
        if timer is None or not timer.done() or self._current().version != seen:
            return
        self._timer, self._timer_deadline = None, None
        now = workflow.now()
        try:
            produced = await self._apply(Tick(command_id=f"tick:{now.isoformat()}", now=now))
        except ApplicationError as err:
            # The store refused the tick's events, or did not answer in time. Failing here
            # would fail the whole episode; instead, try again a little later (the timer is
            # set anew, already due), accepting commands meanwhile.
            log.error("tick_failed", error=err.type, deadline=str(deadline))
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._current().version != seen,
                    timeout=TICK_RETRY,
                    timeout_summary=TICK_RETRY_SUMMARY,
                )
            return
        if not produced and next_deadline(self._current()) == deadline:
            # The decider saw nothing due: wait for a command rather than spin.
            log.warning("deadline_without_effect", deadline=str(deadline))
            await workflow.wait_condition(lambda: self._current().version != seen)

    @workflow.update(name=COMMAND_UPDATE)
    async def command(self, request: CommandRequest) -> CommandResult:
        return await self._answer(request)

    async def _answer(self, request: CommandRequest) -> CommandResult:
        events = await self._apply(request.command)
        state = self._current()
        return CommandResult(
            episode_id=self._episode_id,
            events=events,
            version=state.version,
            stage=state.stage.value,
            state=state if request.include_state else None,
            position=self._positions.pop(request.command.command_id, None),
        )

    @workflow.update(dynamic=True)
    async def named_command(self, name: str, args: Sequence[RawValue]) -> CommandResult:
        """A staff command sent under its own type's name (`record_attendance`, ...), so
        the history names each command; applied exactly as through `command`.

        The SDK hands the handler the payload its validator was given, so the request
        the validator accepted is taken as it is rather than decoded again; a handler
        without one (on replay, where validators do not run) decodes its own."""
        accepted, self._accepted = self._accepted, None
        if accepted is not None and len(args) == 1 and args[0].payload is accepted[0]:
            return await self._answer(accepted[1])
        return await self._answer(_named_request(name, args))

    @named_command.validator
    def _validate_named_command(self, name: str, args: Sequence[RawValue]) -> None:
        request = _named_request(name, args)
        self._validate_command(request)
        self._accepted = (args[0].payload, request)

    @command.validator
    def _validate_command(self, request: CommandRequest) -> None:
        # Runs before anything is written: a refused command leaves no trace in history.
        command = request.command
        # First: a caller outside the episode's program learns nothing about it, not even
        # a repeat's answer or a refusal that depends on its state.
        self._check_programs(request.programs)
        if isinstance(command, Tick):
            raise ApplicationError(
                "time passes by itself: ticks come from the episode's own timers",
                type="CommandNotAllowed",
                non_retryable=True,
            )
        if self._ledger.get(command.command_id) is not None:
            # Applied by this run: answered with its events, unless the request differs.
            self._known_answer(command, command_fingerprint(command))
            return
        if self._ledger.maybe_applied_earlier(command.command_id):
            # An earlier run may have applied it, and judging it again against today's
            # state would refuse a mere repeat: the handler asks the store first.
            return
        self._decide(command, for_handler=True)

    def _check_programs(self, programs: tuple[str, ...] | None) -> None:
        """Refuse a caller whose programs (None: all) exclude the episode's program.

        The episode's program never changes, so the validator's word holds for the
        handler too. With no episode yet, the decider refuses the command itself.
        """
        if programs is None or self._state is None or self._state.program_id in programs:
            return
        raise ApplicationError(
            outside_programs_message(self._episode_id),
            type=OUTSIDE_PROGRAMS,
            non_retryable=True,
        )

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
        """This run's most recent entries (at most TIMELINE_LENGTH, none from earlier
        runs): a glance at what just happened. The whole timeline is in the event store."""
        return TimelineView(episode_id=self._episode_id, entries=tuple(self._timeline))

    async def _apply(self, command: Command) -> tuple[Event, ...]:
        """Decide, persist, then adopt the new state; the caller sees it only once stored.

        A command id already applied to the episode is answered with the events it
        produced then, by this run or an earlier one, and nothing is decided or written.
        """
        # The episode's own ticks are not requests: nobody can repeat one.
        fingerprint = None if isinstance(command, Tick) else command_fingerprint(command)
        if self._rules_revision is None:
            current = workflow.patched(CURRENT_RULES_AT_ADMISSION)
            self._rules_revision = CURRENT_RULES if current else FIRST_RULES
        async with self._lock:
            events = self._known_answer(command, fingerprint)
            if (
                events is None
                and fingerprint is not None
                and self._ledger.maybe_applied_earlier(command.command_id)
            ):
                # Ask the store before judging: an append with no events only looks up.
                result = await self._append((), command, fingerprint)
                self._take_stored(result, command.command_id, fingerprint)
                events = self._known_answer(command, fingerprint)
            while events is None:
                # Decide again under the lock: another command may have been applied
                # between this one's validation and now.
                decided = self._decide(command)
                if not decided:
                    return decided
                result = await self._append(decided, command, fingerprint)
                if result.stored_instead or result.applied_before:
                    # The store is ahead of this run (a workflow task whose completion was
                    # lost had already appended events; they were decided by this workflow
                    # for accepted commands), or it already holds this command (applied by
                    # an earlier run). Take what is stored, then decide this command again
                    # unless it was among it.
                    self._take_stored(result, command.command_id, fingerprint)
                    events = self._known_answer(command, fingerprint)
                    continue
                self._check_stored(decided, result)
                self._adopt(decided)
                if fingerprint is not None:
                    self._ledger.record(command.command_id, fingerprint, decided)
                    if result.position is not None:
                        self._positions[command.command_id] = result.position
                events = decided
            log.info(
                "command_applied",
                command=command.type,
                command_id=command.command_id,
                events=[e.type for e in events],
                head_seq=self._current().version,
                stage=self._current().stage.value,
            )
        if self._readmissions and not workflow.patched(READMISSION_FROM_MAIN_LOOP):
            # Histories recorded before the patch started the new episode here, before
            # answering; a failed start then failed the command that had been stored.
            pending, self._readmissions = self._readmissions, []
            for readmitted in pending:
                await self._open_readmission(readmitted)
        return events

    def _known_answer(self, command: Command, fingerprint: str | None) -> tuple[Event, ...] | None:
        """The events this run already holds for the command's id, if any; refuses the id
        if it came with another request."""
        applied = self._ledger.get(command.command_id)
        if applied is None:
            return None
        if fingerprint is not None and applied.fingerprint not in (None, fingerprint):
            err = reused_key(command.command_id)
            raise ApplicationError(err.message, type=err.code, non_retryable=True)
        return applied.events

    async def _append(
        self, events: tuple[Event, ...], command: Command, fingerprint: str | None
    ) -> AppendEventsResult:
        """Persist `events` as `command`'s (with no events: only ask whether it was applied).

        Every failure becomes a non-retryable `ApplicationError` that names its cause, so it
        fails this command (or this tick) and nothing else.
        """
        try:
            result: AppendEventsResult = await workflow.execute_local_activity(
                APPEND_EVENTS_ACTIVITY,
                AppendEventsInput(
                    episode_id=self._episode_id,
                    events=events,
                    command_id=None if fingerprint is None else command.command_id,
                    fingerprint=fingerprint,
                    after_seq=self._state.version if self._state is not None else 0,
                ),
                start_to_close_timeout=APPEND_TIMEOUT,
                summary=append_summary(len(events)),
                schedule_to_close_timeout=APPEND_DEADLINE,
                retry_policy=APPEND_RETRY,
                result_type=AppendEventsResult,
            )
        except ActivityError as err:
            raise append_failure(self._episode_id, err) from None
        return result

    def _take_stored(
        self, result: AppendEventsResult, command_id: str, fingerprint: str | None
    ) -> None:
        """Adopt what the store holds beyond this run's state, and note which command ids
        it answers (the store checked the request's fingerprint for `command_id`)."""
        if result.stored_instead:
            self._adopt(result.stored_instead)
            for stored_id, stored in _by_command(result.stored_instead).items():
                self._ledger.record(
                    stored_id, fingerprint if stored_id == command_id else None, stored
                )
        if result.applied_before:
            self._ledger.record(command_id, fingerprint, result.applied_before)

    def _check_stored(self, decided: tuple[Event, ...], result: AppendEventsResult) -> None:
        """Fail the workflow task unless the store holds exactly the decided events.

        On replay the result is the one recorded when the events were stored, so this is
        also what catches a decider that now produces other events for an old command.
        """
        if result.stored_digests is None:
            return  # recorded before the store reported digests: nothing to compare
        ours = event_digests(decided)
        for event, decided_digest, stored_digest in zip(
            decided, ours, result.stored_digests, strict=False
        ):
            if decided_digest != stored_digest:
                raise StoreDivergence(
                    f"episode {self._episode_id}: seq {event.seq} ({event.type}) as decided "
                    f"(digest {decided_digest[:12]}) differs from what the event store holds "
                    f"(digest {stored_digest[:12]})"
                )
        if len(ours) != len(result.stored_digests):
            raise StoreDivergence(
                f"episode {self._episode_id}: decided {len(ours)} event(s) from seq "
                f"{decided[0].seq}, but the event store holds {len(result.stored_digests)}"
            )

    def _adopt(self, events: tuple[Event, ...]) -> None:
        """Make stored events part of the state, the timeline and the notifications."""
        self._state = fold(events, self._state)
        for migrated in (e for e in events if isinstance(e, ProgramMigrated)):
            # From here on the episode is decided under the version it moved to.
            self._program = parse_program(migrated.definition, source="program_migrated")
            self._programs = ProgramCatalog({self._program.id: self._program})
        # Only events that call for a message go to the notification activity: those
        # that name staff to notify, and notices to a consenting family or party.
        self._outbox.extend(
            e for e in events if getattr(e, "notify", ()) or isinstance(e, PartyNotified)
        )
        if self._outbox and self._outbox_cause is None:
            self._outbox_cause = trace_context.current()
        self._readmissions.extend(e for e in events if isinstance(e, ClientReadmitted))
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

    def _decide(self, command: Command, *, for_handler: bool = False) -> tuple[Event, ...]:
        """The events `command` produces now. `for_handler` (the validator's call) keeps
        the decision for the handler: the handler takes it only if every input of `decide`
        is still the same (the command, the state, the clock, the program, the rules), so
        it gets exactly what deciding again would give. Validators do not run on replay,
        where the handler always decides."""
        ctx = DecisionContext(
            episode_id=self._episode_id,
            now=workflow.now(),
            programs=self._programs,
            rules_revision=self._rules_revision or CURRENT_RULES,
        )
        kept, self._validated = self._validated, None
        if kept is not None and not for_handler and kept.holds(command, self._state, ctx):
            return kept.events
        try:
            events = decide(self._state, command, ctx)
        except CarePathError as err:
            # A refusal that names several broken rules carries them as its details.
            details = (list(map(dict, err.errors)),) if err.errors else ()
            raise ApplicationError(
                err.message, *details, type=err.code, non_retryable=True
            ) from None
        if for_handler:
            self._validated = _Decision(command, self._state, ctx, events)
        return events

    async def _drain_outbox(self) -> None:
        while self._outbox:
            batch, self._outbox = tuple(self._outbox), []
            cause, self._outbox_cause = self._outbox_cause, None
            notify = NotifyInput(
                episode_id=self._episode_id,
                primary_clinician=self._current().primary_clinician,
                events=batch,
            )
            await trace_context.started(
                cause,
                partial(
                    workflow.start_activity,
                    SEND_NOTIFICATIONS_ACTIVITY,
                    notify,
                    start_to_close_timeout=NOTIFY_TIMEOUT,
                    retry_policy=NOTIFY_RETRY,
                    summary=notify_summary(len(batch)),
                ),
            )

    async def _open_readmissions(self) -> None:
        """Start the new episode of every stored readmission, retrying until it starts.

        The readmission is already stored, and its caller answered: a start that fails
        (the new episode's workflow id is taken, say by a workflow still closing) is tried
        again with backoff rather than reported against the command.
        """
        delay = READMISSION_RETRY_FIRST
        while self._readmissions:
            readmitted = self._readmissions[0]
            try:
                await self._open_readmission(readmitted)
            except TemporalError as err:
                if isinstance(err, CancelledError):
                    raise
                log.warning(
                    "readmission_start_failed",
                    new_episode_id=readmitted.new_episode_id,
                    error=type(err).__name__,
                    retry_in_s=delay.total_seconds(),
                )
                await workflow.sleep(delay, summary=READMISSION_RETRY_SUMMARY)
                delay = min(delay * 2, READMISSION_RETRY_MAX)
                continue
            self._readmissions.pop(0)

    async def _open_readmission(self, event: ClientReadmitted) -> None:
        """Start the new episode, linked both ways: its referral names this episode."""
        state = self._current()
        referral = ReferClient(
            command_id=f"readmit-{event.new_episode_id}",
            actor=event.actor,
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
                program=self._program,
                initial_command=referral,
            ),
            id=workflow_id_for(event.new_episode_id),
            static_summary=episode_summary(
                state.program_id, event.new_episode_id, readmission_of=self._episode_id
            ),
            # The new episode outlives this one: it must not be closed with its parent.
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._history_event_limit
        )

    def _next_deadline(self, state: EpisodeState) -> datetime | None:
        """`next_deadline(state)`, worked out once for each state this run holds."""
        known = self._deadline_of
        if known is None or known[0] is not state:
            known = self._deadline_of = (state, next_deadline(state))
        return known[1]

    def _publish_visibility(self) -> None:
        state = self._current()
        values = visibility(state, self._next_deadline(state))
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


def _inherited_search_attributes() -> dict[str, object]:
    """What this run's search attributes already hold: a continued run inherits its
    predecessor's, so a value that became empty since must be unset, not skipped."""
    inherited: dict[str, object] = {
        pair.key.name: pair.value for pair in workflow.info().typed_search_attributes
    }
    if inherited and workflow.patched(SEED_SEARCH_ATTRIBUTES):
        return inherited
    return {}


@dataclass(frozen=True)
class _Decision:
    """What `decide` gave for a command, with the inputs it was given."""

    command: Command
    state: EpisodeState | None
    ctx: DecisionContext
    events: tuple[Event, ...]

    def holds(self, command: Command, state: EpisodeState | None, ctx: DecisionContext) -> bool:
        """Whether deciding `command` on `state` under `ctx` is this decision again."""
        return (
            state is self.state
            and ctx.programs is self.ctx.programs
            and ctx.now == self.ctx.now
            and ctx.rules_revision == self.ctx.rules_revision
            and ctx.episode_id == self.ctx.episode_id
            and (command is self.command or command == self.command)
        )


def _named_request(name: str, args: Sequence[RawValue]) -> CommandRequest:
    """The request of an update sent under a command's name; refused unless it carries
    one request whose command is of that type."""
    if len(args) != 1:
        raise ApplicationError(
            f"update {name!r} takes one command request, got {len(args)} arguments",
            type="InvalidCommand",
            non_retryable=True,
        )
    request = workflow.payload_converter().from_payload(args[0].payload, CommandRequest)
    if request.command.type != name:
        raise ApplicationError(
            f"update {name!r} carries a {request.command.type!r} command: send each "
            "command under its own type's name",
            type="InvalidCommand",
            non_retryable=True,
        )
    return request


def append_failure(episode_id: str, err: ActivityError) -> ApplicationError:
    """The command's failure for an append that failed: the store's own refusal as it is,
    anything else (retries ran out of time) as the store being unavailable."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable and cause.type:
        return ApplicationError(cause.message, type=cause.type, non_retryable=True)
    last: BaseException | None = cause
    while isinstance(last, FailureError) and last.cause is not None:
        last = last.cause
    return ApplicationError(
        f"episode {episode_id}: the event store did not take the events within "
        f"{APPEND_DEADLINE.total_seconds():.0f} s ({last or err}); the command may not "
        "have been applied: send it again with the same Idempotency-Key, it is applied once",
        type="DatabaseUnavailable",
        non_retryable=True,
    )


def _by_command(events: tuple[Event, ...]) -> dict[str, tuple[Event, ...]]:
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.command_id, []).append(event)
    return {command_id: tuple(group) for command_id, group in grouped.items()}
