"""Replaying recorded or live workflow histories against the current workflow code.

A history that no longer replays means a code change would break the episodes that are
running now (a non-determinism error): the replay tests and `carepath audit determinism`
both go through here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Interceptor, Replayer, WorkflowRunner

from workers import payload_passes
from workers.activations import InlineActivations
from workers.worker import SANDBOX_RUNNER, WORKFLOWS


def build_replayer(
    data_converter: DataConverter,
    workflows: Sequence[type] | None = None,
    interceptors: Sequence[Interceptor] = (),
    runner: WorkflowRunner = SANDBOX_RUNNER,
) -> Replayer:
    """A replayer of CarePath's workflows (or of `workflows`, to test the check itself);
    `data_converter` holds the keys of the histories' payloads (a client's
    `data_converter`, or the tests' test-key converter); `interceptors` see what the
    replayed code does (the replay tests compare it with what was recorded). It replays
    in the sandbox, which refuses what a workflow may not do, unless `runner` says
    otherwise (a benchmark replaying as a worker does)."""
    payload_passes.install()
    return Replayer(
        workflows=list(workflows or WORKFLOWS),
        data_converter=data_converter,
        workflow_runner=runner,
        workflow_task_executor=InlineActivations(new_work_limit=0),
        interceptors=list(interceptors),
    )


async def run_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """The history of every run of a workflow, oldest first: the latest run's, then each
    run it continued from (`continued_execution_run_id`), back to the first."""
    chain = [await client.get_workflow_handle(workflow_id).fetch_history()]
    while True:
        started = chain[-1].events[0].workflow_execution_started_event_attributes
        previous = started.continued_execution_run_id
        if not previous:
            return chain[::-1]
        handle = client.get_workflow_handle(workflow_id, run_id=previous)
        chain.append(await handle.fetch_history())


def save_history(history: WorkflowHistory, path: Path) -> None:
    """Write a history with its workflow id, in Temporal's JSON history format."""
    document = {"workflow_id": history.workflow_id, "history": json.loads(history.to_json())}
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def load_history(path: Path) -> WorkflowHistory:
    document = json.loads(path.read_text(encoding="utf-8"))
    return WorkflowHistory.from_json(document["workflow_id"], document["history"])


async def replay(
    histories: Iterable[WorkflowHistory],
    workflows: Sequence[type] | None = None,
    interceptors: Sequence[Interceptor] = (),
    *,
    data_converter: DataConverter,
) -> dict[str, Exception | None]:
    """Replay each history; map its run id to the failure, or None if it replayed cleanly."""
    items = list(histories)

    async def feed() -> AsyncIterator[WorkflowHistory]:
        for history in items:
            yield history

    results: dict[str, Exception | None] = {}
    replayer = build_replayer(data_converter, workflows, interceptors)
    async with replayer.workflow_replay_iterator(feed()) as stream:
        async for result in stream:
            results[result.history.run_id] = result.replay_failure
    return results
