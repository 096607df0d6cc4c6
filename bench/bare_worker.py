"""`python -m bench.bare_worker`: the baseline's worker, a process of its own.

It runs `BareUpdateWorkflow` and its no-op activity on CAREPATH_TEMPORAL_TASK_QUEUE, with
the data converter, workflow runner, activation executor (`workers.activations`), payload
walk (`workers.payload_passes`) and event loop a CarePath worker uses (payloads sealed
under CAREPATH_PAYLOAD_KEYS_FILE; the sandbox only if CAREPATH_WORKFLOW_SANDBOX says so),
until SIGTERM. It is configured by the same `CAREPATH_*` variables as `carepath worker`, so
the command benchmark can give each side a worker process of its own, as a deployment
does, and compare like with like.
"""

from __future__ import annotations

import asyncio
import signal

from temporalio.worker import Worker

from bench.bare_workflow import BareUpdateWorkflow, noop
from workers import payload_passes
from workers.activations import InlineActivations
from workers.event_loop import run
from workers.payload_codec import payload_keyring
from workers.settings import Settings
from workers.temporal import connect, data_converter
from workers.worker import workflow_runner


async def main() -> None:
    settings = Settings()
    client = await connect(
        settings.effective_temporal_address,
        settings.temporal_namespace,
        data_converter(payload_keyring(settings)),
    )
    payload_passes.install()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[BareUpdateWorkflow],
        activities=[noop],
        workflow_runner=workflow_runner(settings.workflow_sandbox),
        workflow_task_executor=InlineActivations(),
    ):
        await stop.wait()


if __name__ == "__main__":
    # The event loop `carepath worker` runs on, so the two sides differ only in their work.
    run(main())
