"""The CarePathway workflow: one long-running execution per episode of care.

Thin on purpose: every clinical judgement is made by the pure decider. The workflow
receives commands as Updates, persists the decider's events through an activity before
answering (read-your-writes for the caller), and exposes the state as a query.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import structlog

    from carepath.domain.commands import Command
    from carepath.domain.decider import DecisionContext, decide, fold
    from carepath.domain.errors import CarePathError
    from carepath.domain.events import Event
    from carepath.domain.programs import ProgramCatalog
    from carepath.domain.state import EpisodeState
    from carepath.workflows.messages import (
        APPEND_EVENTS_ACTIVITY,
        COMMAND_UPDATE,
        STATE_QUERY,
        WORKFLOW_NAME,
        AppendEventsInput,
        AppendEventsResult,
        CarePathwayInput,
        CommandRequest,
        CommandResult,
        EpisodeView,
    )

STAGE_ATTRIBUTE = SearchAttributeKey.for_keyword("CarePathwayStage")
PROGRAM_ATTRIBUTE = SearchAttributeKey.for_keyword("ProgramId")

# The append is a local activity: it runs in the worker that holds the workflow task, which
# measured 10 ms p50 per command against 50 ms for a regular activity (DESIGN.md §6). A
# worker crash re-runs it on the next attempt; the store's idempotent append makes that safe.
APPEND_TIMEOUT = timedelta(seconds=15)
APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)

log = structlog.get_logger("carepath.workflow")


@workflow.defn(name=WORKFLOW_NAME)
class CarePathwayWorkflow:
    @workflow.init
    def __init__(self, inp: CarePathwayInput) -> None:
        self._episode_id = inp.episode_id
        self._programs = ProgramCatalog({inp.program.id: inp.program})
        self._state: EpisodeState | None = inp.snapshot
        # Commands are applied one at a time, in the order their handlers acquire the lock,
        # so two accepted commands can never both decide against the same old state.
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, inp: CarePathwayInput) -> EpisodeView:
        await workflow.wait_condition(lambda: self._state is not None and self._state.is_closed)
        # Never finish with an update mid-flight: its caller would get an error.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._view()

    @workflow.update(name=COMMAND_UPDATE)
    async def command(self, request: CommandRequest) -> CommandResult:
        async with self._lock:
            # Decide again under the lock: another command may have been applied between
            # this one's validation and now.
            events = self._decide(request.command)
            result = await workflow.execute_local_activity(
                APPEND_EVENTS_ACTIVITY,
                AppendEventsInput(episode_id=self._episode_id, events=events),
                start_to_close_timeout=APPEND_TIMEOUT,
                retry_policy=APPEND_RETRY,
                result_type=AppendEventsResult,
            )
            state = fold(events, self._state)
            assert state is not None
            self._state = state
            self._publish_visibility(state)
            log.info(
                "command_applied",
                command=request.command.type,
                command_id=request.command.command_id,
                events=[e.type for e in events],
                head_seq=result.head_seq,
                stage=state.stage.value,
            )
            return CommandResult(episode_id=self._episode_id, events=events, state=state)

    @command.validator
    def _validate_command(self, request: CommandRequest) -> None:
        # Runs before anything is written: a rejected command leaves no trace in history.
        self._decide(request.command)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> EpisodeView:
        return self._view()

    def _decide(self, command: Command) -> tuple[Event, ...]:
        ctx = DecisionContext(
            episode_id=self._episode_id, now=workflow.now(), programs=self._programs
        )
        try:
            return decide(self._state, command, ctx)
        except CarePathError as err:
            raise ApplicationError(err.message, type=err.code, non_retryable=True) from None

    def _publish_visibility(self, state: EpisodeState) -> None:
        workflow.upsert_search_attributes(
            [
                STAGE_ATTRIBUTE.value_set(state.stage.value),
                PROGRAM_ATTRIBUTE.value_set(state.program_id),
            ]
        )

    def _view(self) -> EpisodeView:
        return EpisodeView(
            episode_id=self._episode_id,
            workflow_id=workflow.info().workflow_id,
            state=self._state,
        )
