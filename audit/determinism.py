"""`audit determinism`: would the current workflow code break the episodes Temporal holds?

Fetches the live histories (every run of one episode, or every CarePathway run the
namespace lists) and replays them with the SDK's Replayer against the code of this
process. A run that fails to replay would fail its next workflow task after a deploy
(a non-determinism error): guard the change with `workflow.patched(...)` first.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowExecution, WorkflowHistory
from temporalio.service import RPCError

from audit.errors import AuditError
from workflows.client import SAFE_VALUE, TemporalUnavailable
from workflows.messages import WORKFLOW_NAME, workflow_id_for

FETCH_CONCURRENCY = 8

# Replays histories and maps each run id to its failure (None when it replayed cleanly).
# The worker's wiring provides it (`workers.replay.replay`): the audit knows what to
# replay, the worker knows how its workflows are run (data converter, sandbox).
Replay = Callable[[Sequence[WorkflowHistory]], Awaitable[dict[str, Exception | None]]]


class RunReplay(BaseModel):
    """The outcome of replaying one workflow run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str
    workflow_id: str
    run_id: str
    status: str
    history_events: int
    ok: bool
    error: str | None = None

    def describe(self) -> str:
        head = f"{self.episode_id} run {self.run_id} ({self.status}, {self.history_events} events)"
        return f"{head}: replays cleanly" if self.ok else f"{head}: WOULD BREAK: {self.error}"


class DeterminismReport(BaseModel):
    """Every run checked; `ok` only if each one replayed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    runs: tuple[RunReplay, ...]

    @property
    def broken(self) -> tuple[RunReplay, ...]:
        return tuple(r for r in self.runs if not r.ok)


def query_for(episode_id: str | None, include_closed: bool) -> str:
    """The visibility query listing the runs to check."""
    if episode_id is not None:
        if not re.fullmatch(SAFE_VALUE, episode_id):
            raise AuditError(
                f"episode id {episode_id!r} has characters an episode id never has: check it"
            )
        # One episode: every run it has, open or closed (continue-as-new leaves several).
        return f"WorkflowId = '{workflow_id_for(episode_id)}'"
    query = f"WorkflowType = '{WORKFLOW_NAME}'"
    return query if include_closed else f"{query} AND ExecutionStatus = 'Running'"


async def check_determinism(
    client: Client,
    episode_id: str | None = None,
    *,
    replay: Replay,
    include_closed: bool = False,
) -> DeterminismReport:
    """Replay one episode's runs, or every listed CarePathway run, with `replay`."""
    query = query_for(episode_id, include_closed)
    try:
        executions = [execution async for execution in client.list_workflows(query)]
    except RPCError as err:
        raise TemporalUnavailable(f"Temporal: {err.message}") from None
    if episode_id is not None and not executions:
        raise AuditError(
            f"Temporal lists no run of episode {episode_id!r}: check the id; a closed episode "
            "is listed only until the namespace's retention period ends"
        )
    histories = await _fetch_histories(client, executions)
    failures = await replay(histories) if histories else {}
    runs = tuple(
        _run_replay(execution, history, failures.get(history.run_id))
        for execution, history in zip(executions, histories, strict=True)
    )
    return DeterminismReport(ok=all(r.ok for r in runs), runs=runs)


async def _fetch_histories(
    client: Client, executions: Sequence[WorkflowExecution]
) -> list[WorkflowHistory]:
    limit = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def fetch(execution: WorkflowExecution) -> WorkflowHistory:
        async with limit:
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            return await handle.fetch_history()

    try:
        return list(await asyncio.gather(*(fetch(e) for e in executions)))
    except RPCError as err:
        raise TemporalUnavailable(f"Temporal: {err.message}") from None


def _run_replay(
    execution: WorkflowExecution, history: WorkflowHistory, failure: Exception | None
) -> RunReplay:
    error = None
    if failure is not None:
        first_line = (str(failure).strip().splitlines() or [""])[0]
        error = f"{type(failure).__name__}: {first_line}"
    return RunReplay(
        episode_id=execution.id.removeprefix(workflow_id_for("")),
        workflow_id=execution.id,
        run_id=execution.run_id,
        status=execution.status.name.lower() if execution.status else "unknown",
        history_events=len(history.events),
        ok=failure is None,
        error=error,
    )
