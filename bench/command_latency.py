"""A staff command's round trip against a bare Temporal update on the same server.

CarePath's command: Update -> validator runs `decide` -> handler decides again, appends
the events to PostgreSQL through a local activity -> answer. The baseline: an Update whose
handler returns at once. Both run in this process, against the same dev server, alternating
call by call so drift on the machine affects them equally. Goal: ratio of p50 at most 2x.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from bench._stack import percentile, stack
from bench.bare_workflow import BareUpdateWorkflow, noop
from programs import load_catalog
from store.event_store import EventStore
from testing import samples
from testing.keys import CHAIN_KEY
from workers.worker import SANDBOX_RUNNER, build_worker
from workflows.client import EpisodeClient


async def run(n: int = 200, warmup: int = 20) -> dict[str, float]:
    async with stack() as s:
        client = s.env.client
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        store = EventStore(s.pool, chain_key=CHAIN_KEY)
        bare_worker = Worker(
            client,
            task_queue=queue + "-bare",
            workflows=[BareUpdateWorkflow],
            activities=[noop],
            workflow_runner=SANDBOX_RUNNER,
        )
        async with build_worker(client, store, queue), bare_worker:
            bare: WorkflowHandle[BareUpdateWorkflow, int] = await client.start_workflow(
                BareUpdateWorkflow.run, id=f"bare-{uuid.uuid4()}", task_queue=queue + "-bare"
            )
            episodes = EpisodeClient(client, queue)
            ids = samples.CommandIds("bench")
            episode_id = str(uuid.uuid4())
            await episodes.refer(episode_id, samples.referral(ids), load_catalog().get("adult-iop"))
            for command in samples.admission(ids):
                await episodes.send(episode_id, command)
            start = (await episodes.view(episode_id)).state
            assert start is not None
            first_session = start.referred_at + timedelta(days=30)

            times: dict[str, list[float]] = {"bare": [], "local": [], "regular": [], "command": []}
            for i in range(warmup + n):
                t = time.perf_counter()
                await bare.execute_update(BareUpdateWorkflow.touch_local, i)
                t_local = time.perf_counter() - t
                t = time.perf_counter()
                await bare.execute_update(BareUpdateWorkflow.touch_activity, i)
                t_regular = time.perf_counter() - t
                t0 = time.perf_counter()
                await bare.execute_update(BareUpdateWorkflow.touch, i)
                t1 = time.perf_counter()
                command = samples.session(
                    ids, f"s{i}", first_session + timedelta(hours=i * 6), hours=2
                )
                await episodes.send(episode_id, command)
                t2 = time.perf_counter()
                if i >= warmup:
                    times["bare"].append((t1 - t0) * 1000)
                    times["command"].append((t2 - t1) * 1000)
                    times["local"].append(t_local * 1000)
                    times["regular"].append(t_regular * 1000)
            await bare.signal(BareUpdateWorkflow.finish)

    figures = {
        f"{name}_{label}_ms": percentile(values, q)
        for name, values in times.items()
        for label, q in (("p50", 0.50), ("p99", 0.99))
    }
    figures["ratio_p50"] = figures["command_p50_ms"] / figures["bare_p50_ms"]
    return figures


def report(figures: dict[str, float], n: int) -> None:
    print(f"command round trip, {n} sequential calls from one caller (dev server, same run):")
    print(
        f"  bare Temporal update   p50 {figures['bare_p50_ms']:6.1f} ms   p99 {figures['bare_p99_ms']:6.1f} ms"
    )
    print(
        f"  CarePath command       p50 {figures['command_p50_ms']:6.1f} ms   "
        f"p99 {figures['command_p99_ms']:6.1f} ms"
    )
    print(f"  ratio (p50)            {figures['ratio_p50']:.2f}x   (goal: <= 2x)")
    print("  why the append is a local activity (bare update that awaits one no-op activity):")
    for name, label in (("local", "local activity"), ("regular", "regular activity")):
        print(
            f"    {label:<18}   p50 {figures[f'{name}_p50_ms']:6.1f} ms   "
            f"p99 {figures[f'{name}_p99_ms']:6.1f} ms   "
            f"({figures[f'{name}_p50_ms'] / figures['bare_p50_ms']:.2f}x bare)"
        )


if __name__ == "__main__":
    N = 200
    report(asyncio.run(run(N)), N)
