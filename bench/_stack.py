"""A throwaway stack for benchmarks: embedded PostgreSQL and a Temporal dev server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from devstack.embedded_postgres import EmbeddedPostgres
from devstack.processes import free_port
from store.db import Pool, create_pool
from store.migrations import migrate_url
from testing.keys import CHAIN_KEY
from testing.payload_keys import TEST_KEYS_FILE
from testing.stack import start_dev_server

ROOT = Path(__file__).resolve().parent.parent
# `python -m` arguments of a worker process: CarePath's, as `carepath worker` runs it, and
# the baseline's (`bench.bare_worker`).
CAREPATH_WORKER = ("cli.main", "worker")
BARE_WORKER = ("bench.bare_worker",)


@dataclass
class Stack:
    env: WorkflowEnvironment
    pool: Pool
    postgres: EmbeddedPostgres


@contextlib.asynccontextmanager
async def stack() -> AsyncIterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp), free_port())
        await postgres.start()
        try:
            env = await start_dev_server()
            try:
                await migrate_url(postgres.owner_url)
                pool = await create_pool(postgres.url, max_size=20)
                try:
                    yield Stack(env=env, pool=pool, postgres=postgres)
                finally:
                    await pool.close()
            finally:
                await env.shutdown()
        finally:
            await postgres.stop()


@contextlib.asynccontextmanager
async def worker_process(
    s: Stack,
    queue: str,
    data_dir: Path,
    *,
    max_cached_workflows: int | None = None,
    command: tuple[str, ...] = CAREPATH_WORKER,
) -> AsyncIterator[psutil.Process]:
    """A worker process polling `queue` on the stack, configured only by the `CAREPATH_*`
    variables `carepath up` sets: by default `python -m cli.main worker`; `command` names
    another module's arguments (the baseline's `BARE_WORKER`). Its output goes to a log
    file in `data_dir`."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CAREPATH_TEMPORAL_ADDRESS": s.env.client.service_client.config.target_host,
        "CAREPATH_DATABASE_URL": s.postgres.url,
        "CAREPATH_CHAIN_KEY": CHAIN_KEY.decode(),
        "CAREPATH_PAYLOAD_KEYS_FILE": str(TEST_KEYS_FILE),
        "CAREPATH_TEMPORAL_TASK_QUEUE": queue,
        "CAREPATH_DATA_DIR": str(data_dir),
        "CAREPATH_CHECKPOINT_INTERVAL_MINUTES": "0",
        "CAREPATH_LOG_FORMAT": "json",
        "CAREPATH_LOG_LEVEL": "error",
    }
    if max_cached_workflows is not None:
        env["CAREPATH_WORKER_MAX_CACHED_WORKFLOWS"] = str(max_cached_workflows)
    with (data_dir / f"worker-{uuid.uuid4().hex[:6]}.log").open("wb") as log:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *command,
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await _wait_for_poller(s.env.client, queue, child)
            yield psutil.Process(child.pid)
        finally:
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(child.wait(), 15)
                except TimeoutError:
                    child.kill()
                    await child.wait()


async def _wait_for_poller(client: Client, queue: str, child: asyncio.subprocess.Process) -> None:
    """Until the worker polls the queue (its start-up takes a few seconds)."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.returncode is not None:
            raise RuntimeError(f"the worker exited with {child.returncode}")
        answer = await client.workflow_service.describe_task_queue(request)
        if answer.pollers:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the worker did not poll within 60 s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
