"""Client-side access to episode workflows, shared by the API, the CLI and the tests.

Turns Temporal's failure shapes back into CarePath's: a command the decider refused
becomes `CommandRejected` carrying the domain error's type and message.
"""

from __future__ import annotations

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from carepath.domain.commands import Command, ReferClient
from carepath.domain.errors import CarePathError
from carepath.domain.programs import ProgramDefinition
from carepath.workflows.care_pathway import CarePathwayWorkflow
from carepath.workflows.messages import (
    COMMAND_UPDATE,
    STATE_QUERY,
    CarePathwayInput,
    CommandRequest,
    CommandResult,
    EpisodeView,
    workflow_id_for,
)


class EpisodeNotFound(CarePathError):
    """Raised when no workflow exists for the episode id."""


class CommandRejected(CarePathError):
    """Raised when the episode refused a command; `code` is the domain error's type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type

    @property
    def code(self) -> str:
        return self.error_type


class TemporalUnavailable(CarePathError):
    """Raised when Temporal could not be asked (down, timed out, overloaded)."""


class EpisodeClient:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def refer(
        self, episode_id: str, command: ReferClient, program: ProgramDefinition
    ) -> CommandResult:
        """Start the episode's workflow and apply the referral in one round trip."""
        start = WithStartWorkflowOperation(
            CarePathwayWorkflow.run,
            CarePathwayInput(episode_id=episode_id, program=program),
            id=workflow_id_for(episode_id),
            task_queue=self._task_queue,
            # A retried referral (same command id) reaches the same workflow, where the
            # update id deduplicates it; any other referral is refused by the decider.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        try:
            result: CommandResult = await self._client.execute_update_with_start_workflow(
                COMMAND_UPDATE,
                CommandRequest(command=command),
                start_workflow_operation=start,
                id=command.command_id,
                result_type=CommandResult,
            )
            return result
        except WorkflowUpdateFailedError as err:
            raise _rejection(err) from None
        except RPCError as err:
            raise TemporalUnavailable(f"Temporal: {err.message}") from None

    async def send(self, episode_id: str, command: Command) -> CommandResult:
        """Apply a command to a running episode; the command id is the update id."""
        handle = self._client.get_workflow_handle(workflow_id_for(episode_id))
        try:
            result: CommandResult = await handle.execute_update(
                COMMAND_UPDATE,
                CommandRequest(command=command),
                id=command.command_id,
                result_type=CommandResult,
            )
            return result
        except WorkflowUpdateFailedError as err:
            raise _rejection(err) from None
        except RPCError as err:
            raise _rpc_error(err, episode_id) from None

    async def view(self, episode_id: str) -> EpisodeView:
        handle = self._client.get_workflow_handle(workflow_id_for(episode_id))
        try:
            view: EpisodeView = await handle.query(STATE_QUERY, result_type=EpisodeView)
            return view
        except RPCError as err:
            raise _rpc_error(err, episode_id) from None


def _rejection(err: WorkflowUpdateFailedError) -> CarePathError:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return CommandRejected(cause.type, cause.message)
    return CommandRejected("CommandFailed", str(cause or err))


def _rpc_error(err: RPCError, episode_id: str) -> CarePathError:
    if err.status == RPCStatusCode.NOT_FOUND:
        return EpisodeNotFound(
            f"no episode {episode_id!r}: check the id (it is returned on referral)"
        )
    return TemporalUnavailable(f"Temporal: {err.message}")
