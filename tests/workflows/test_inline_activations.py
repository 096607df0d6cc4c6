"""A worker runs workflow activations on its own thread: one stuck in a loop is interrupted,
its workflow task fails and is retried, and the worker goes on serving other workflows."""

from __future__ import annotations

import itertools
import threading
import uuid

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from store.event_store import EventStore
from testing.payload_keys import TEST_CONVERTER
from workers.activations import InlineActivations
from workers.replay import build_replayer
from workers.worker import build_worker

# How many times `StuckOnce` has started: its first activation spins, the retry does not.
_STARTS = itertools.count()


@workflow.defn(sandboxed=False)
class StuckOnce:
    @workflow.run
    async def run(self) -> str:
        if next(_STARTS) == 0:
            while True:  # a decider with a bug: only the watchdog ends this
                pass
        return "finished"


@workflow.defn(sandboxed=False)
class WhichThread:
    @workflow.run
    async def run(self) -> int:
        return threading.get_ident()


async def test_given_a_worker_when_a_workflow_runs_then_its_activations_run_on_the_workers_thread(
    client: Client, task_queue: str
) -> None:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[WhichThread],
        workflow_runner=UnsandboxedWorkflowRunner(),
        workflow_task_executor=InlineActivations(),
    ):
        ran_on = await client.execute_workflow(
            WhichThread.run, id=f"thread-{uuid.uuid4()}", task_queue=task_queue
        )

    assert ran_on == threading.get_ident()


async def test_given_an_activation_stuck_in_a_loop_when_it_overruns_then_its_task_is_retried_and_the_worker_goes_on(
    client: Client, task_queue: str
) -> None:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[StuckOnce, WhichThread],
        workflow_runner=UnsandboxedWorkflowRunner(),
        workflow_task_executor=InlineActivations(deadlock_timeout=0.3),
    ):
        stuck = await client.start_workflow(
            StuckOnce.run, id=f"stuck-{uuid.uuid4()}", task_queue=task_queue
        )
        other = await client.execute_workflow(
            WhichThread.run, id=f"other-{uuid.uuid4()}", task_queue=task_queue
        )
        result = await stuck.result()

    assert other == threading.get_ident()
    assert result == "finished"
    assert next(_STARTS) == 2  # the stuck start and its retry, no more


async def test_given_carepaths_worker_and_replayer_when_built_then_their_activations_run_inline(
    client: Client, store: EventStore, task_queue: str
) -> None:
    worker = build_worker(client, store, task_queue)
    replayer = build_replayer(TEST_CONVERTER)

    assert isinstance(worker.config().get("workflow_task_executor"), InlineActivations)
    assert isinstance(replayer.config().get("workflow_task_executor"), InlineActivations)
