"""Cohort simulation at scale, against a bare workflow doing the same work on the same kind of server.

    python -m bench.simulation --episodes 1000      # alone; progress on stderr
    bench.simulation.run("small" | "full")          # from the benchmark table

Simulation. `carepath simulate`'s runner takes N clients (full: 1,000; small: 100) of the
default cohort through the adult program, 12 weeks plus 100 days of aftercare, on the
time-skipping test server with an embedded PostgreSQL (`simulation.stack`), in this
process with its worker. Its wall time is the runner's alone, from the first referral to
the last discharge (`simulation_wall_s`).

Baseline. On a fresh time-skipping test server of its own (the simulation's, with its
histories in memory, slows down), right after, a bare workflow (`BareEpisode`,
`bench.bare_workflow`) per simulated episode does the same work with nothing of CarePath
in it: the episode's timers, at the same offsets from its start as they fired in the
simulation, each followed by a local activity (an episode's tick appends its events);
as many regular activities as the episode sent notifications; and, round by round, the
same number of updates (each running a local activity, as a command's append does),
spread over the live workflows, at the same simulated moments and with the same
concurrency, one clock advance per round. The counts are read from the simulation's own
histories. The ratio is the simulation's wall time over the baseline's (goal ≤ 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.bare_workflow import BareEpisodeWorkflow, noop
from bench.table import Figures, Row
from programs import load_catalog
from simulation.cli import SIMULATION_HISTORY_EVENT_LIMIT, simulation_worker
from simulation.cohort import load_cohort
from simulation.runner import Simulation
from simulation.stack import SIMULATION_CHAIN_KEY, simulation_stack, time_skipping_server
from store.event_store import EventStore
from workers.replay import run_histories
from workers.settings import Settings
from workers.worker import workflow_runner
from workflows.client import EpisodeClient
from workflows.messages import workflow_id_for

EPISODES = {"small": 100, "full": 1_000}
WEEKS = 12
SEED = 7
CONCURRENCY = 64

ROWS = (
    Row(
        measure="simulate N episodes, 12 weeks + aftercare (wall time)",
        baseline="bare workflow, same timers, updates, activities",
        baseline_value="simulation_bare_wall_s",
        value="simulation_wall_s",
        ratio="simulation_ratio",
        unit="s",
        goal="≤ 1.5x",
    ),
)


def progress(message: str) -> None:
    print(f"simulation: {message}", file=sys.stderr, flush=True)


@dataclass
class Work:
    """What the simulation's workflows did, per episode, read from their histories."""

    timers: list[list[float]] = field(default_factory=list)  # seconds from each start
    activities: list[int] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


async def read_work(client: Client, episode_ids: list[str]) -> Work:
    work = Work()
    for episode_id in episode_ids:
        histories = await run_histories(client, workflow_id_for(episode_id))
        start = histories[0].events[0].event_time.ToDatetime()
        offsets, activities = [], 0
        for history in histories:
            work.counts["runs"] += 1
            for event in history.events:
                work.counts["history events"] += 1
                kind = event.event_type
                if kind == EventType.EVENT_TYPE_TIMER_FIRED:
                    offsets.append((event.event_time.ToDatetime() - start).total_seconds())
                elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                    activities += 1
                elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
                    work.counts["local activities"] += 1
                elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
                    work.counts["updates"] += 1
        work.timers.append(sorted(offsets))
        work.activities.append(activities)
        work.counts["timers"] += len(offsets)
        work.counts["activities"] += activities
    return work


async def simulate(
    env: WorkflowEnvironment, store: EventStore, episodes: int, history_event_limit: int | None
) -> tuple[Simulation, float]:
    client = env.client
    queue = "bench-simulation"
    program = load_catalog().get("adult-iop")
    async with simulation_worker(client, store, queue, episodes):
        sim = Simulation(
            env=env,
            store=store,
            episodes=EpisodeClient(client, queue, history_event_limit=history_event_limit),
            program=program,
            cohort=load_cohort(),
            clients=episodes,
            weeks=WEEKS,
            seed=SEED,
            run_id="bench",
        )
        started = time.perf_counter()
        last = [started]

        def report(closed: int, opened: int, moment: datetime) -> None:
            if time.perf_counter() - last[0] >= 30:
                last[0] = time.perf_counter()
                progress(f"{closed}/{opened} episodes closed, simulated {moment:%Y-%m-%d}")

        await sim.run(concurrency=CONCURRENCY, progress=report)
        return sim, time.perf_counter() - started


def rounds_of(sim: Simulation) -> list[tuple[timedelta, int]]:
    """Each round's offset from the first, and the commands sent in it."""
    first = sim.round_log[0][0]
    sent_before = [sent for _, sent in sim.round_log[1:]] + [sim.figures.commands]
    return [
        (moment - first, after - sent)
        for (moment, sent), after in zip(sim.round_log, sent_before, strict=True)
    ]


async def bare(env: WorkflowEnvironment, sim: Simulation, work: Work) -> float:
    """The baseline's wall time: the same work on bare workflows (see the module)."""
    client = env.client
    queue = "bench-simulation-bare"
    origin = await env.get_current_time()
    rounds = rounds_of(sim)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[BareEpisodeWorkflow],
        activities=[noop],
        workflow_runner=workflow_runner(Settings().workflow_sandbox),
        max_cached_workflows=max(1000, 2 * len(work.timers)),
    ):
        started = time.perf_counter()
        gate = asyncio.Semaphore(CONCURRENCY)
        handles: list[WorkflowHandle[Any, Any]] = []

        async def start(n: int) -> None:
            async with gate:
                handles.append(
                    await client.start_workflow(
                        BareEpisodeWorkflow.run,
                        args=[work.timers[n], work.activities[n]],
                        id=f"bare-{n}",
                        task_queue=queue,
                    )
                )

        await asyncio.gather(*(start(n) for n in range(len(work.timers))))
        handles.sort(key=lambda h: h.id)
        turn = 0
        for offset, count in rounds:
            ahead = origin + offset - await env.get_current_time()
            if ahead > timedelta(0):
                await env.sleep(ahead)

            async def touch(handle: WorkflowHandle[Any, Any], value: int) -> None:
                async with gate:
                    await handle.execute_update(BareEpisodeWorkflow.touch_local, value)

            batch = [handles[(turn + i) % len(handles)] for i in range(count)]
            turn += count
            await asyncio.gather(*(touch(h, i) for i, h in enumerate(batch)))
        last_timer = max((t[-1] for t in work.timers if t), default=0.0)
        ahead = origin + timedelta(seconds=last_timer + 1) - await env.get_current_time()
        if ahead > timedelta(0):
            await env.sleep(ahead)
        for handle in handles:
            await handle.signal(BareEpisodeWorkflow.finish)
        with env.auto_time_skipping_disabled():
            for handle in handles:
                await handle.result()
        return time.perf_counter() - started


async def measure(
    episodes: int, history_event_limit: int | None = SIMULATION_HISTORY_EVENT_LIMIT
) -> Figures:
    async with simulation_stack() as stack:
        client = stack.env.client
        store = EventStore(stack.pool, chain_key=SIMULATION_CHAIN_KEY)
        progress(f"simulating {episodes} episodes ...")
        sim, wall = await simulate(stack.env, store, episodes, history_event_limit)
        ids = [episode_id for ids in sim.streams() for episode_id in ids]
        work = await read_work(client, ids)
        progress(
            f"simulation: {wall:.0f} s, {sim.figures.moments} rounds, "
            f"{sim.figures.commands} commands, {dict(work.counts)}; the baseline ..."
        )
    # The baseline gets a test server of its own, as fresh as the simulation's was: the
    # simulation leaves about a million history events in the server's memory, and on that
    # server a 1,000-episode baseline ran at a fraction of its speed (the server's one
    # busy thread, the worker idle), which would flatter CarePath's ratio.
    async with time_skipping_server() as env:
        bare_wall = await bare(env, sim, work)
    progress(f"baseline: {bare_wall:.0f} s")
    n = len(ids)
    return {
        "simulation_clients": float(episodes),
        "simulation_episodes": float(n),
        "simulation_wall_s": wall,
        f"simulation_wall_s_{episodes}": wall,
        "simulation_bare_wall_s": bare_wall,
        "simulation_ratio": wall / bare_wall if bare_wall else float("nan"),
        "simulation_rounds": float(sim.figures.moments),
        "simulation_commands": float(sim.figures.commands),
        "simulation_timers": float(work.counts["timers"]),
        "simulation_updates": float(work.counts["updates"]),
        "simulation_local_activities": float(work.counts["local activities"]),
        "simulation_activities": float(work.counts["activities"]),
        "simulation_runs": float(work.counts["runs"]),
        "simulation_history_events_per_episode": work.counts["history events"] / max(1, n),
    }


def run(scale: str = "small") -> Figures:
    return asyncio.run(measure(EPISODES[scale]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulation", description=__doc__)
    parser.add_argument("--episodes", type=int, default=EPISODES["small"])
    parser.add_argument(
        "--history-event-limit",
        type=int,
        default=SIMULATION_HISTORY_EVENT_LIMIT,
        help="continue an episode's run as new at this many history events "
        "(default: the simulation's bound)",
    )
    args = parser.parse_args(argv)
    from workers.logging import configure_logging

    configure_logging("console", "warning", stream=sys.stderr)
    figures = asyncio.run(measure(args.episodes, args.history_event_limit))
    for key, value in figures.items():
        print(f"{key}: {value:,.2f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
