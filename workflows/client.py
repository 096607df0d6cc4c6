"""Client-side access to episode workflows, shared by the API, the CLI and the tests.

Turns Temporal's failure shapes back into CarePath's: a command the decider refused
becomes `CommandRejected` carrying the domain error's type and message. Every call is
bounded by the client's RPC timeout, as a whole (`TemporalTimeout` past it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WithStartWorkflowOperation,
    WorkflowExecution,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.commands import Command, ReferClient
from domain.errors import CarePathError
from domain.programs import ProgramDefinition
from domain.state import Stage
from workflows.care_pathway import CarePathwayWorkflow
from workflows.messages import (
    COMMAND_UPDATE,
    DEADLINES_QUERY,
    OUTSIDE_PROGRAMS,
    STATE_QUERY,
    TIMELINE_QUERY,
    WORKFLOW_NAME,
    CarePathwayInput,
    CommandRequest,
    CommandResult,
    DeadlinesView,
    EpisodeView,
    TimelineView,
    update_id_for,
    workflow_id_for,
)
from workflows.summaries import episode_summary

_View = TypeVar("_View", EpisodeView, DeadlinesView, TimelineView)

# Values that go into a visibility query: ids and user ids, never quotes or spaces.
SAFE_VALUE = r"^[A-Za-z0-9._@:-]{1,100}$"


class EpisodeNotFound(CarePathError):
    """Raised when no workflow exists for the episode id."""


class EpisodeOutsidePrograms(EpisodeNotFound):
    """Raised when the episode's program is not among the caller's: answered exactly like
    an episode that does not exist (`EpisodeNotFound`), so nothing tells that it does."""

    @property
    def code(self) -> str:
        return "EpisodeNotFound"


class CommandRejected(CarePathError):
    """Raised when the episode refused a command; `code` is the domain error's type."""

    def __init__(
        self, error_type: str, message: str, errors: tuple[dict[str, Any], ...] = ()
    ) -> None:
        super().__init__(message, errors=errors)
        self.error_type = error_type

    @property
    def code(self) -> str:
        return self.error_type


class TemporalUnavailable(CarePathError):
    """Raised when Temporal could not be asked (down, timed out, overloaded)."""


class TemporalTimeout(TemporalUnavailable):
    """Raised when Temporal did not answer within the client's RPC timeout (no worker
    polls, or the server is overloaded). A command may still be applied later; sent
    again with the same command id, it is applied at most once."""


class EpisodeFilter(BaseModel):
    """Filters of the episode list; each maps to one search attribute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Stage | None = None
    program_id: str | None = Field(default=None, pattern=SAFE_VALUE)
    primary_clinician: str | None = Field(default=None, pattern=SAFE_VALUE)
    min_escalation_level: int | None = Field(default=None, ge=0, le=10)
    include_closed: bool = False
    # The programs the caller may see (None: all); an empty tuple matches nothing.
    program_ids: tuple[Annotated[str, Field(pattern=SAFE_VALUE)], ...] | None = None

    def to_query(self) -> str:
        """The visibility query; values are pattern-checked, so quoting cannot be escaped."""
        clauses = [f"WorkflowType = '{WORKFLOW_NAME}'"]
        if not self.include_closed:
            clauses.append("ExecutionStatus = 'Running'")
        if self.stage is not None:
            clauses.append(f"CarePathwayStage = '{self.stage.value}'")
        if self.program_id is not None:
            clauses.append(f"ProgramId = '{self.program_id}'")
        if self.program_ids is not None:
            listed = ", ".join(f"'{program}'" for program in self.program_ids)
            clauses.append(f"ProgramId IN ({listed})" if listed else "ProgramId = ''")
        if self.primary_clinician is not None:
            clauses.append(f"PrimaryClinician = '{self.primary_clinician}'")
        if self.min_escalation_level is not None:
            clauses.append(f"EscalationLevel >= {self.min_escalation_level}")
        return " AND ".join(clauses)


class EpisodeSummary(BaseModel):
    episode_id: str
    workflow_id: str
    status: str
    stage: str | None
    program_id: str | None
    primary_clinician: str | None
    escalation_level: int
    next_deadline: datetime | None
    started_at: datetime | None


class EpisodeClient:
    def __init__(
        self,
        client: Client,
        task_queue: str,
        history_event_limit: int | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._history_event_limit = history_event_limit
        # None: wait as long as Temporal takes (the tests' time-skipping server).
        self._rpc_timeout = rpc_timeout

    @contextlib.asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        """Bound one call into Temporal as a whole. Each RPC also carries the timeout, but
        an update is re-sent until a worker accepts it and then polled for its outcome,
        so only an overall deadline bounds what the caller waits."""
        if self._rpc_timeout is None:
            yield
            return
        seconds = self._rpc_timeout.total_seconds()
        try:
            async with asyncio.timeout(seconds):
                yield
        except (TimeoutError, RPCTimeoutOrCancelledError):
            raise TemporalTimeout(
                f"Temporal did not answer within {seconds:g} s: no worker may be running, "
                "or the server is overloaded"
            ) from None
        except RPCError as err:
            if err.status == RPCStatusCode.DEADLINE_EXCEEDED:
                raise TemporalTimeout(
                    f"Temporal did not answer within {seconds:g} s ({err.message})"
                ) from None
            raise

    async def refer(
        self, episode_id: str, command: ReferClient, program: ProgramDefinition
    ) -> CommandResult:
        """Start the episode's workflow and apply the referral in one round trip."""

        def start() -> WithStartWorkflowOperation[CarePathwayWorkflow, EpisodeView]:
            # An operation is sent once: a second name needs a new one.
            return WithStartWorkflowOperation(
                CarePathwayWorkflow.run,
                CarePathwayInput(episode_id=episode_id, program=program, **self._input_options()),
                id=workflow_id_for(episode_id),
                task_queue=self._task_queue,
                # A retried referral (same command id) reaches the same workflow, where the
                # episode applies a command id once; any other referral is refused by the
                # decider, and the same id with another request as IdempotencyKeyReused.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary=episode_summary(program.id, episode_id, command.readmission_of),
            )

        try:
            async with self._deadline():
                for name in _update_names(command):
                    try:
                        result: CommandResult = (
                            await self._client.execute_update_with_start_workflow(
                                name,
                                CommandRequest(command=command, include_state=True),
                                start_workflow_operation=start(),
                                id=update_id_for(command),
                                result_type=CommandResult,
                                rpc_timeout=self._rpc_timeout,
                            )
                        )
                        return result
                    except WorkflowUpdateFailedError as err:
                        # The run started for a refused first update has ended: the next
                        # name starts another.
                        if name == COMMAND_UPDATE or not _unknown_update(err):
                            raise
            raise AssertionError("unreachable: the last name returns or raises")
        except WorkflowUpdateFailedError as err:
            raise _rejection(err) from None
        except RPCError as err:
            raise TemporalUnavailable(f"Temporal: {err.message}") from None

    def _input_options(self) -> dict[str, int]:
        if self._history_event_limit is None:
            return {}
        return {"history_event_limit": self._history_event_limit}

    async def send(
        self,
        episode_id: str,
        command: Command,
        *,
        include_state: bool = False,
        programs: tuple[str, ...] | None = None,
    ) -> CommandResult:
        """Apply a command to a running episode, once per command id (`update_id_for`).

        The update is named after the command's type (`record_attendance`, ...), so the
        episode's history tells one command from another. A worker that predates the names
        refuses them before anything is written; the command is then sent again, same
        update id, as the `command` update (docs/versioning.md, "Update names").

        The result carries the new events, version and stage; pass `include_state` for the
        whole state as well (it costs history space: see CommandRequest). `programs` are
        the caller's (None: every program): the workflow refuses an episode of any other
        program as `EpisodeOutsidePrograms`.
        """
        handle = self._client.get_workflow_handle(workflow_id_for(episode_id))
        try:
            async with self._deadline():
                for name in _update_names(command):
                    try:
                        result: CommandResult = await handle.execute_update(
                            name,
                            CommandRequest(
                                command=command, include_state=include_state, programs=programs
                            ),
                            id=update_id_for(command),
                            result_type=CommandResult,
                            rpc_timeout=self._rpc_timeout,
                        )
                        return result
                    except WorkflowUpdateFailedError as err:
                        if name == COMMAND_UPDATE or not _unknown_update(err):
                            raise
            raise AssertionError("unreachable: the last name returns or raises")
        except WorkflowUpdateFailedError as err:
            raise _rejection(err) from None
        except RPCError as err:
            raise _rpc_error(err, episode_id) from None

    async def page(
        self, filters: EpisodeFilter, limit: int = 100, token: bytes | None = None
    ) -> tuple[list[EpisodeSummary], bytes | None]:
        """One page of `list`: at most `limit` episodes from where Temporal's page token
        `token` left off, and the token of the next page (None at the end)."""
        out: list[EpisodeSummary] = []
        listing = self._client.list_workflows(
            filters.to_query(), next_page_token=token, rpc_timeout=self._rpc_timeout
        )
        try:
            async with self._deadline():
                # A visibility store may answer a short page that is not the last one.
                while len(out) < limit:
                    await listing.fetch_next_page(page_size=limit - len(out))
                    out.extend(_summary(e) for e in listing.current_page or ())
                    if listing.next_page_token is None:
                        break
        except RPCError as err:
            if err.status == RPCStatusCode.INVALID_ARGUMENT and token is not None:
                raise InvalidPageToken(
                    "the cursor does not continue this listing: start again without it"
                ) from None
            raise TemporalUnavailable(f"Temporal: {err.message}") from None
        return out, listing.next_page_token

    async def list(self, filters: EpisodeFilter, limit: int = 100) -> list[EpisodeSummary]:
        """Episodes matching the filters, newest first, from Temporal's visibility store."""
        out: list[EpisodeSummary] = []
        listing = self._client.list_workflows(
            filters.to_query(), limit=limit, rpc_timeout=self._rpc_timeout
        )
        try:
            async with self._deadline():
                async for execution in listing:
                    out.append(_summary(execution))
        except RPCError as err:
            raise TemporalUnavailable(f"Temporal: {err.message}") from None
        return out

    async def deadlines(self, episode_id: str) -> DeadlinesView:
        return await self._query(episode_id, DEADLINES_QUERY, DeadlinesView)

    async def timeline(self, episode_id: str) -> TimelineView:
        """The running workflow's most recent entries, from its current run only (at most
        50): the whole timeline is the event store's (`EventStore.read_stream`)."""
        return await self._query(episode_id, TIMELINE_QUERY, TimelineView)

    async def view(self, episode_id: str) -> EpisodeView:
        return await self._query(episode_id, STATE_QUERY, EpisodeView)

    async def _query(self, episode_id: str, query: str, result_type: type[_View]) -> _View:
        handle = self._client.get_workflow_handle(workflow_id_for(episode_id))
        try:
            async with self._deadline():
                result: _View = await handle.query(
                    query, result_type=result_type, rpc_timeout=self._rpc_timeout
                )
        except RPCError as err:
            raise _rpc_error(err, episode_id) from None
        return result


def _update_names(command: Command) -> tuple[str, str]:
    """The update names a command is sent under, in turn: its type's, then `command` for
    workers that predate per-command names."""
    return (command.type, COMMAND_UPDATE)


# How the SDK refuses an update whose name no handler takes (a worker older than the name).
_NO_HANDLER = re.compile(r"^Update handler for '[^']*' expected but not found")


def _unknown_update(err: WorkflowUpdateFailedError) -> bool:
    """Whether the workflow refused the update for its name alone: nothing was applied."""
    cause = err.cause
    return (
        isinstance(cause, ApplicationError)
        and cause.type == "RuntimeError"
        and bool(_NO_HANDLER.match(cause.message))
    )


def _rejection(err: WorkflowUpdateFailedError) -> CarePathError:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == OUTSIDE_PROGRAMS:
        return EpisodeOutsidePrograms(cause.message)
    if isinstance(cause, ApplicationError) and cause.type:
        return CommandRejected(cause.type, cause.message, _broken_rules(cause))
    return CommandRejected("CommandFailed", str(cause or err))


def _broken_rules(cause: ApplicationError) -> tuple[dict[str, Any], ...]:
    """The structured list of broken rules a refusal carries as its first detail, if any."""
    details = cause.details
    if not details or not isinstance(details[0], list):
        return ()
    return tuple(item for item in details[0] if isinstance(item, dict))


def _rpc_error(err: RPCError, episode_id: str) -> CarePathError:
    if err.status == RPCStatusCode.NOT_FOUND:
        return EpisodeNotFound(
            f"no episode {episode_id!r}: check the id (it is returned on referral)"
        )
    return TemporalUnavailable(f"Temporal: {err.message}")


class InvalidPageToken(Exception):
    """Temporal refused a listing's page token (one of another query, or forged)."""


def _summary(execution: WorkflowExecution) -> EpisodeSummary:
    attrs = {key.name: value for key, value in execution.typed_search_attributes}
    return EpisodeSummary(
        episode_id=execution.id.removeprefix("episode-"),
        workflow_id=execution.id,
        status=execution.status.name.lower() if execution.status else "unknown",
        stage=attrs.get("CarePathwayStage"),
        program_id=attrs.get("ProgramId"),
        primary_clinician=attrs.get("PrimaryClinician"),
        escalation_level=int(attrs.get("EscalationLevel") or 0),
        next_deadline=attrs.get("NextDeadline"),
        started_at=execution.start_time,
    )
