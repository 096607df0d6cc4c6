"""Scale of one worker: many live episodes, its memory, evicted timers, the continue-as-new bound.

    python -m bench.scale --episodes 1000          # alone; progress on stderr
    bench.scale.run("small" | "full")              # from the benchmark table

Live episodes. N episodes (full: 10,000; small: 1,000) are referred and admitted (screening,
assessment, admission: four commands each, at most `CONCURRENCY` episodes in flight) on a
Temporal dev server with an embedded PostgreSQL. An admitted episode has a pending
deadline (the end of its first week), so every one of them holds a durable timer. The
worker is `python -m cli.main worker`, a process of its own configured only by
`CAREPATH_*` variables as `carepath up` configures it, so its resident memory (with any
children) is its alone: it is read once every episode is live and the worker has been idle
for a few seconds (`worker_rss_mib`, `worker_rss_mib_<N>`). The start rate is episodes
per second over the whole bulk start.

Evicted timers. A second worker process replaces the first, with a workflow cache of
`EVICTION_CACHE` runs. `PROBES` episodes of the seconds-scale `drill` program are admitted,
planned, and given one session each that nobody attends; their no-shows fall due one
after another, `PROBE_SPACING` apart, starting once every probe is set up. Each probe is
pushed out of the small cache by the probes set up after it and by queries to as many
bulk episodes, so when its timer fires the worker holds nothing of it: it fetches the
run's whole history, replays it, then decides the tick and appends its events (a local
activity) before it completes the workflow task. The latency is read from the server's
own history of each probe: from the `TimerFired` event to the `WorkflowTaskCompleted`
event of the task that handled it (server clock both). That covers the task's wait in the
queue, the history fetch, the replay, the decision and the append: everything between a
deadline and its effect being stored. (`evicted_timer_p50_ms`, `evicted_timer_p99_ms`.)

Continue-as-new bound. See `bench.long_episode`: the first run of a whole episode (twelve
weeks, a year of aftercare) is cut into prefixes and each is replayed; a line through
(events, CPU ms) gives the longest run, in tens of events, that replays in
`REPLAY_BUDGET_MS` (CPU time, so that the other processes of a busy machine do not move
it; on an idle machine wall and CPU time agree). The episode is then driven again under
the bound in force (`DEFAULT_HISTORY_EVENT_LIMIT`), to report its runs, events and
history bytes and to replay its longest run (`replay_ms_at_bound`, wall time). A run
ends a few events past the bound (it continues as new after the change that crossed it),
so the best bound is the in-budget length less that overshoot
(`continue_as_new_best_bound_events`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from temporalio.api.enums.v1 import EventType

from bench import long_episode
from bench._stack import Stack, percentile, stack, worker_process
from programs import load_catalog
from testing import samples
from testing.episodes import admitted
from workers.replay import run_histories
from workflows.client import EpisodeClient
from workflows.messages import DEFAULT_HISTORY_EVENT_LIMIT, STATE_QUERY, workflow_id_for

EPISODES = {"small": 1_000, "full": 10_000}
CONCURRENCY = 32
IDLE_S = 5.0
EVICTION_CACHE = 10
PROBES = 40
PROBE_SPACING = timedelta(seconds=0.5)
# A drill session's shortest length, and its no-show grace (programs/drill.yaml).
DRILL_SESSION_HOURS = 0.005
DRILL_GRACE = timedelta(seconds=10)
REPLAY_BUDGET_MS = 50.0


def progress(message: str) -> None:
    print(f"scale: {message}", file=sys.stderr, flush=True)


def rss_mib(process: psutil.Process) -> float:
    """Resident memory of the process and all its children, MiB."""
    total: int = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 2**20


async def bounded(
    count: int, work: Callable[[int], Awaitable[None]], label: str, limit: int = CONCURRENCY
) -> float:
    """Run work(0..count-1) with at most `limit` in flight; the elapsed seconds."""
    next_index = 0
    done = 0
    started = time.perf_counter()
    last_report = started

    async def lane() -> None:
        nonlocal next_index, done, last_report
        while next_index < count:
            index = next_index
            next_index += 1
            await work(index)
            done += 1
            now = time.perf_counter()
            if now - last_report >= 2.0 or done == count:
                last_report = now
                rate = done / (now - started)
                progress(f"{label}: {done}/{count} ({rate:.0f}/s)")

    await asyncio.gather(*(lane() for _ in range(min(limit, count))))
    return time.perf_counter() - started


async def start_live_episodes(episodes: EpisodeClient, n: int, prefix: str) -> float:
    """Refer and admit n adult episodes; the elapsed seconds."""
    adult = load_catalog().get("adult-iop")

    async def one(index: int) -> None:
        ids = samples.CommandIds(f"{prefix}-{index}")
        episode_id = f"{prefix}-{index}"
        await episodes.refer(
            episode_id, samples.referral(ids, client_ref=f"MRN-{index:06d}"), adult
        )
        for command in samples.admission(ids)[:3]:  # screening, assessment, admission
            await episodes.send(episode_id, command)

    return await bounded(n, one, "live episodes")


async def evicted_timer_latencies(
    s: Stack, queue: str, data_dir: Path, bulk_prefix: str, bulk: int
) -> list[float]:
    """Milliseconds from each probe's TimerFired to the completion of the task handling it."""
    drill = load_catalog().get("drill")
    client = s.env.client
    episodes = EpisodeClient(client, queue)
    probe_ids = [f"probe-{uuid.uuid4().hex[:8]}-{i}" for i in range(PROBES)]
    async with worker_process(s, queue, data_dir, max_cached_workflows=EVICTION_CACHE):
        setup = timedelta(seconds=10 + PROBES * 0.4)
        first_due = datetime.now(UTC) + setup

        async def probe(index: int) -> None:
            episode_id = probe_ids[index]
            ids = samples.CommandIds(episode_id)
            await admitted(
                episodes, ids, episode_id=episode_id, program=drill, client_ref=f"DRILL-{index:04d}"
            )
            ends = first_due + index * PROBE_SPACING - DRILL_GRACE
            starts = ends - timedelta(hours=DRILL_SESSION_HOURS)
            await episodes.send(
                episode_id, samples.session(ids, "s1", starts, hours=DRILL_SESSION_HOURS)
            )

        await bounded(PROBES, probe, "probes", limit=4)
        if datetime.now(UTC) > first_due:
            progress("warning: probe set-up outlasted the first deadline")

        # Evict the last probes set up too: query as many bulk episodes as the cache holds.
        for index in range(min(bulk, 2 * EVICTION_CACHE)):
            handle = client.get_workflow_handle(workflow_id_for(f"{bulk_prefix}-{index}"))
            await handle.query(STATE_QUERY)
        last_due = first_due + PROBES * PROBE_SPACING
        progress(f"probes set up; their timers fire until {last_due:%H:%M:%S}")
        await asyncio.sleep(max(0.0, (last_due - datetime.now(UTC)).total_seconds()) + 8)

    latencies = []
    for episode_id in probe_ids:
        # The no-show's timer may fire in a later run than the one that scheduled it.
        runs = await run_histories(client, workflow_id_for(episode_id))
        fired = None
        for event in (e for history in runs for e in history.events):
            if event.event_type == EventType.EVENT_TYPE_TIMER_FIRED and fired is None:
                fired = event.event_time.ToDatetime()
            elif (
                fired is not None
                and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            ):
                completed = event.event_time.ToDatetime()
                latencies.append((completed - fired).total_seconds() * 1000)
                break
        if fired is None:
            types = [EventType.Name(e.event_type) for h in runs for e in h.events]
            progress(f"{episode_id}: no timer fired in {len(runs)} runs: {types[-12:]}")
    return latencies


async def worker_scale(n: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with stack() as s:
        with tempfile.TemporaryDirectory(prefix="carepath-scale-") as tmp:
            data_dir = Path(tmp)
            queue = f"scale-{uuid.uuid4().hex[:8]}"
            prefix = f"live-{uuid.uuid4().hex[:6]}"
            episodes = EpisodeClient(s.env.client, queue)
            async with worker_process(s, queue, data_dir) as worker:
                figures["worker_rss_mib_empty"] = rss_mib(worker)
                elapsed = await start_live_episodes(episodes, n, prefix)
                progress(f"{n} episodes live; idle {IDLE_S:g} s before reading the RSS")
                await asyncio.sleep(IDLE_S)
                rss = rss_mib(worker)
            figures.update(
                {
                    "episodes": float(n),
                    "worker_rss_mib": rss,
                    f"worker_rss_mib_{n}": rss,
                    "episode_start_per_s": n / elapsed,
                }
            )
            progress(f"worker RSS {rss:.0f} MiB at {n} episodes; timers of evicted episodes ...")
            latencies = await evicted_timer_latencies(s, queue, data_dir, prefix, n)
            figures["evicted_timer_p50_ms"] = percentile(latencies, 0.5)
            figures["evicted_timer_p99_ms"] = percentile(latencies, 0.99)
            figures["evicted_timer_samples"] = float(len(latencies))
    return figures


async def continue_as_new_bound() -> dict[str, float]:
    figures: dict[str, float] = {}
    async with stack() as s:
        progress("a whole episode in one run, for the replay curve ...")
        whole = await long_episode.drive(s.pool, long_episode.UNBOUNDED)
        full = whole.runs[0].events
        lengths = sorted({*range(100, full, 100), full})
        curve = await long_episode.replay_times(long_episode.prefixes(whole.first_run, lengths))
        for point in curve:
            progress(
                f"replay of {point.events:5d} events: {point.wall_ms:6.1f} ms "
                f"({point.cpu_ms:6.1f} ms CPU)"
            )
        within_budget = long_episode.choose_bound(
            [(p.events, p.cpu_ms) for p in curve], REPLAY_BUDGET_MS, step=10
        )
        bounded_episode = await long_episode.drive(s.pool, DEFAULT_HISTORY_EVENT_LIMIT)
        runs = bounded_episode.runs
        for number, run in enumerate(runs, 1):
            progress(
                f"12-week episode + 12 months aftercare, run {number}: {run.events} "
                f"events, {run.bytes / 1024:.0f} KiB"
            )
        longest = max(runs, key=lambda r: r.events).events
        [replayed] = await long_episode.replay_times([bounded_episode.longest_run])
        # A run continues as new after the change that crossed the bound: it ends a few
        # events past it. The best bound leaves room for that overshoot.
        best = max(10, within_budget - (longest - DEFAULT_HISTORY_EVENT_LIMIT))
        progress(
            f"{within_budget} events replay in {REPLAY_BUDGET_MS:g} ms; runs end up to "
            f"{longest - DEFAULT_HISTORY_EVENT_LIMIT} past the bound: best bound {best}; "
            f"the longest run now ({longest} events) replays in {replayed.wall_ms:.1f} ms"
        )
        figures.update(
            {
                "continue_as_new_bound_events": float(DEFAULT_HISTORY_EVENT_LIMIT),
                "continue_as_new_best_bound_events": float(best),
                "replay_ms_at_bound": replayed.wall_ms,
                "replay_cpu_ms_at_bound": replayed.cpu_ms,
                "replay_ms_whole_episode_one_run": curve[-1].wall_ms,
                "episode_12w_12m_events": float(bounded_episode.events),
                "episode_12w_12m_history_bytes": float(bounded_episode.bytes),
                "episode_12w_12m_runs": float(len(runs)),
                "episode_12w_12m_max_run_events": float(longest),
                "episode_12w_12m_max_run_bytes": float(max(r.bytes for r in runs)),
            }
        )
    return figures


async def run(scale: str, episodes: int | None = None) -> dict[str, float]:
    n = episodes if episodes is not None else EPISODES[scale]
    figures = await worker_scale(n)
    figures.update(await continue_as_new_bound())
    return figures


def report(figures: dict[str, float]) -> None:
    for key, value in figures.items():
        print(f"{key:40} {value:12.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--episodes", type=int, default=EPISODES["small"])
    parser.add_argument(
        "--only", choices=("worker", "bound"), help="run one part only (default: both)"
    )
    args = parser.parse_args(argv)
    from workers.logging import configure_logging

    configure_logging("console", "warning", stream=sys.stderr)
    if args.only == "worker":
        figures = asyncio.run(worker_scale(args.episodes))
    elif args.only == "bound":
        figures = asyncio.run(continue_as_new_bound())
    else:
        figures = asyncio.run(run("small", args.episodes))
    report(figures)


if __name__ == "__main__":
    main()
