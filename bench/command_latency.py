"""A staff command's round trip at 1 and 10 concurrent callers, on two paths, each
against its baseline in the same run.

- Client level: `EpisodeClient.send` (Update -> validator runs `decide` -> handler
  decides again and appends the events to PostgreSQL through a local activity -> answer)
  against a bare `execute_update` on a workflow whose handler returns at once.
- HTTP: `POST /episodes/{id}/sessions` to the API as `carepath api` builds it (users-file
  token, access log, episode gate, command route), against a minimal FastAPI endpoint that
  makes the bare update. Both apps are served by uvicorn on a local port in this process.

Each side has a worker process of its own, as a deployment has: CarePath's is `python -m
cli.main worker` (with its projector), the baseline's `python -m bench.bare_worker`, both
with the same data converter (sealed payloads), workflow runner (as
CAREPATH_WORKFLOW_SANDBOX says: by default, no sandbox) and event loop (uvloop,
`workers.event_loop`). The callers, the two
HTTP apps and the clients run in this process.

The floor. Persisting from a workflow takes an activity; CarePath's append is a local
activity. A third series, a bare update that awaits one no-op local activity (directly
and behind the minimal endpoint), shows what that mechanism costs by itself: the
`floor_*` figures, and CarePath over the floor (`command_<path>_p50_floor_ratio_<n>`).

API capacity. The HTTP apps, their callers and the clients share this process, so its
CPU time per HTTP call (`<who>_http_cpu_ms_<n>`: CarePath's API, or the minimal endpoint,
plus the HTTP client calling it) bounds what one API replica serves per core.

Where the CPU goes. Around every batch of ten calls the benchmark also reads the CPU time
of the other processes of the stack, by part (`<who>_<path>_cpu_<part>_ms_<n>`, per call):
the two worker processes together (`workers`: the idle one's background work counts for
both sides alike), the Temporal dev server (`temporal`) and PostgreSQL with its backends
(`postgres`), beside this process's own (`callers`); `<who>_<path>_stack_cpu_ms_<n>` is
their sum. With ten callers the two cores are busy, so each call's p50 follows what the
whole stack spends on it.

With 10 callers each caller has its own episode and its own bare workflow (Temporal runs
one workflow's updates one at a time, so one shared bare workflow would make the baseline
queue where CarePath's episodes do not). Calls go in rounds: every caller makes each of
the three calls in turn, all callers at once, the order rotating each round, so drift on
the machine affects all alike. Sessions are scheduled six hours apart, two hours long,
from a day after the referral, so none overlaps and all lie within the decider's year; a
caller moves to a fresh episode after SESSIONS_PER_EPISODE of them (between rounds), so
commands meet episodes of a program's size rather than one that grows for the whole run.

The ten callers' episodes are at different points of their course, as ten staff
members' clients are: before any call is measured, caller i's first episode is given
i * SESSIONS_PER_EPISODE / 10 sessions (`stagger_sessions`). Without it all ten would
reach the continue-as-new bound in the same round, each time, and the benchmark's p99
would be that coincidence, which independent episodes do not meet. Every run still continues as
new where it would: each one's cost (about 12-22 ms of the Temporal server's CPU, and a
few ms on the two commands around it, docs/operations.md) is in the round where it falls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import uvicorn
import yaml
from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle

from api.auth import UsersFileAuthenticator
from bench._stack import BARE_WORKER, percentile, stack, worker_process
from bench.bare_workflow import BareUpdateWorkflow
from bench.table import Row
from devstack.processes import free_port
from store.event_store import EventStore
from testing import samples
from testing.episodes import admitted
from testing.keys import CHAIN_KEY
from testing.stack import api_app
from workers.heap import set_aside_live_objects
from workflows.client import EpisodeClient
from workflows.messages import CommandResult

CALLERS = (1, 10)
PATHS = ("client", "http")
# (rounds at 1 caller, rounds at 10 callers, warm-up rounds), by BENCH_SCALE. A p99 needs
# many more calls than a p50. Of 100 calls it is the slowest one, a stall of the machine
# that slows a bare update as much. Ten callers' calls come in rounds of ten that share
# their fate, so 600 of them were 60 samples and the p99 was in effect the slowest round's
# (1.3-2.5x the bare update's from one run to the next). With 500 and 150 rounds the p99
# is the fifth slowest call of one caller and about the third slowest round of ten; the
# series take about 75 s more in all (128 s).
PLANS = {"small": (500, 150, 5), "full": (1000, 300, 20)}
# Calls of the bare update awaiting a regular activity (context only: about 50 ms each).
ACTIVITY_CALLS = 100
GOAL = "≤ 1.5x (bar 2x)"
# The parts of the stack whose CPU time each call is charged with (`StackCpu`), and this
# process's own (`callers`: the callers, their clients and, on the HTTP path, the apps).
STACK_PARTS = {
    "workers": "the worker processes",
    "temporal": "the Temporal server",
    "postgres": "PostgreSQL",
    "callers": "the callers and their clients",
}
TOKEN = "bench-token-clinician-7d1e"
SESSION_STEP = timedelta(hours=6)
# A caller moves to a fresh episode after this many sessions (between rounds, unmeasured):
# about a 12-week program's, so every command is judged against an episode of real size.
SESSIONS_PER_EPISODE = 40


def _rows() -> tuple[Row, ...]:
    rows = []
    for path, what, baseline, floor in (
        ("client", "client level", "bare update", "bare update + no-op local activity"),
        ("http", "HTTP", "bare update behind FastAPI", "the same + no-op local activity"),
    ):
        for callers in CALLERS:
            plural = "s" if callers > 1 else ""
            for q in ("p50", "p99"):
                rows.append(
                    Row(
                        measure=f"staff command, {what}, {callers} caller{plural}, {q}",
                        baseline=baseline,
                        baseline_value=f"bare_{path}_{q}_ms_{callers}",
                        value=f"command_{path}_{q}_ms_{callers}",
                        ratio=f"command_{path}_{q}_ratio_{callers}",
                        goal=GOAL,
                    )
                )
            rows.append(
                Row(
                    measure=f"staff command over the local-activity floor, {what}, "
                    f"{callers} caller{plural}, p50",
                    baseline=floor,
                    baseline_value=f"floor_{path}_p50_ms_{callers}",
                    value=f"command_{path}_p50_ms_{callers}",
                    ratio=f"command_{path}_p50_floor_ratio_{callers}",
                    goal="(context)",
                )
            )
    rows.extend(_stack_cpu_rows())
    rows.append(
        Row(
            measure="CPU of the API and its callers per command (HTTP, 10 callers)",
            baseline="bare update behind FastAPI",
            baseline_value="bare_http_cpu_ms_10",
            value="command_http_cpu_ms_10",
            goal="—",
        )
    )
    return tuple(rows)


def _stack_cpu_rows() -> list[Row]:
    """What every process of the stack spends per call at 10 callers: the whole, against
    the bare update and the local-activity floor, then each part (client level)."""

    def context(measure: str, baseline: str, who: str, value: str) -> Row:
        return Row(
            measure=measure,
            baseline=baseline,
            baseline_value=f"{who}_{value}",
            value=f"command_{value}",
            goal="(context)",
        )

    every = "CPU of every process per command"
    return [
        context(
            f"{every}, client level, 10 callers", "bare update", "bare", "client_stack_cpu_ms_10"
        ),
        context(
            f"{every}, HTTP, 10 callers",
            "bare update behind FastAPI",
            "bare",
            "http_stack_cpu_ms_10",
        ),
        context(
            f"{every} over the local-activity floor, client level, 10 callers",
            "bare update + no-op local activity",
            "floor",
            "client_stack_cpu_ms_10",
        ),
        *(
            context(
                f"CPU per command, client level, 10 callers: {named}",
                "bare update",
                "bare",
                f"client_cpu_{part}_ms_10",
            )
            for part, named in STACK_PARTS.items()
        ),
    ]


ROWS = _rows()


class StackCpu:
    """The CPU time (s) spent so far by the stack's other processes, by part: the worker
    processes, the Temporal dev server (a child of this process) and PostgreSQL (its
    postmaster and every process it started). A backend that exits between two readings
    takes its time with it, so PostgreSQL's share is a floor."""

    def __init__(self, workers: list[psutil.Process], postgres_pid: int | None) -> None:
        self._workers = workers
        self._temporal = [
            child
            for child in psutil.Process().children(recursive=True)
            if "start-dev" in " ".join(_cmdline(child))
        ]
        self._postgres = psutil.Process(postgres_pid) if postgres_pid is not None else None

    def read(self) -> dict[str, float]:
        postgres: list[psutil.Process] = []
        if self._postgres is not None:
            with contextlib.suppress(psutil.Error):
                postgres = [self._postgres, *self._postgres.children(recursive=True)]
        return {
            "workers": _cpu_seconds(self._workers),
            "temporal": _cpu_seconds(self._temporal),
            "postgres": _cpu_seconds(postgres),
        }


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return list(process.cmdline())
    except psutil.Error:
        return []


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            spent = process.cpu_times()
            total += spent.user + spent.system
    return total


@dataclass
class Lane:
    """One caller's episode and bare workflow."""

    episode_id: str
    bare: WorkflowHandle[BareUpdateWorkflow, int]
    first_session: datetime
    ids: samples.CommandIds
    sessions: int = 0

    def next_session(self) -> tuple[str, datetime]:
        self.sessions += 1
        return f"s{self.sessions}", self.first_session + SESSION_STEP * self.sessions


async def _timed(call: Awaitable[object]) -> float:
    started = time.perf_counter()
    await call
    return (time.perf_counter() - started) * 1000


@contextlib.asynccontextmanager
async def _served(app: FastAPI) -> AsyncIterator[str]:
    """`app` served by uvicorn on a free local port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", access_log=False)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def _bare_app(lanes: list[Lane]) -> FastAPI:
    app = FastAPI()

    @app.post("/bare/{index}")
    async def touch(index: int) -> dict[str, int]:
        return {"value": await lanes[index].bare.execute_update(BareUpdateWorkflow.touch, index)}

    @app.post("/floor/{index}")
    async def touch_local(index: int) -> dict[str, int]:
        update = BareUpdateWorkflow.touch_local
        return {"value": await lanes[index].bare.execute_update(update, index)}

    return app


def _authenticator(directory: Path) -> UsersFileAuthenticator:
    path = directory / "users.yaml"
    user = {"user_id": samples.CLINICIAN.user_id, "role": "clinician", "programs": ["adult-iop"]}
    path.write_text(yaml.safe_dump({"tokens": {TOKEN: user}}), encoding="utf-8")
    return UsersFileAuthenticator(path)


async def _admitted(episodes: EpisodeClient, ids: samples.CommandIds) -> tuple[str, datetime]:
    """A new episode in the program with a treatment plan; (its id, its first session)."""
    episode_id, referred_at = await admitted(episodes, ids)
    return episode_id, referred_at + timedelta(days=1)


async def _lane(client: Client, episodes: EpisodeClient, queue: str, index: int) -> Lane:
    ids = samples.CommandIds(f"bench{index}")
    episode_id, first_session = await _admitted(episodes, ids)
    bare: WorkflowHandle[BareUpdateWorkflow, int] = await client.start_workflow(
        BareUpdateWorkflow.run, id=f"bare-{uuid.uuid4()}", task_queue=queue
    )
    return Lane(episode_id, bare, first_session, ids)


def stagger_sessions(index: int) -> int:
    """How many sessions caller `index` is given before any call is measured: ten callers
    start a tenth of an episode apart, the first at its start."""
    return index * SESSIONS_PER_EPISODE // max(CALLERS)


async def _schedule_next_session(episodes: EpisodeClient, lane: Lane) -> CommandResult:
    """The staff command the client-level series measures: the lane's next session."""
    session_id, starts_at = lane.next_session()
    command = samples.session(lane.ids, session_id, starts_at, hours=2)
    return await episodes.send(lane.episode_id, command)


async def _stagger(episodes: EpisodeClient, lane: Lane, index: int) -> None:
    """Move caller `index`'s lane `stagger_sessions(index)` sessions into its episode."""
    for _ in range(stagger_sessions(index)):
        await _schedule_next_session(episodes, lane)


async def _renew(episodes: EpisodeClient, lane: Lane) -> None:
    """Move the lane to a fresh episode once its episode has a program's worth of sessions."""
    if lane.sessions >= SESSIONS_PER_EPISODE:
        lane.episode_id, lane.first_session = await _admitted(episodes, lane.ids)
        lane.sessions = 0


Call = Callable[[Lane], Awaitable[object]]


async def _measure(
    name: str,
    lanes: list[Lane],
    calls: dict[str, Call],
    renew: Call,
    rounds: int,
    warmup: int,
    stack_cpu: StackCpu | None = None,
) -> dict[str, list[float]]:
    """Latencies (ms) of `rounds` rounds in which every lane makes each of `calls` in turn
    (the order rotates each round), all lanes at once; `renew` runs on every lane between
    rounds, unmeasured. Each batch's CPU per call goes in `<label>_<name>_cpu` (this
    process) and, with `stack_cpu`, `<label>_<name>_cpu_<part>` (the others)."""
    times: dict[str, list[float]] = {f"{label}_{name}": [] for label in calls}
    order = list(calls.items())
    for i in range(warmup + rounds):
        await asyncio.gather(*(renew(lane) for lane in lanes))
        for label, call in order[i % len(order) :] + order[: i % len(order)]:
            before = stack_cpu.read() if stack_cpu is not None else {}
            cpu = time.process_time()
            took = await asyncio.gather(*(_timed(call(lane)) for lane in lanes))
            spent = (time.process_time() - cpu) * 1000 / len(lanes)
            after = stack_cpu.read() if stack_cpu is not None else {}
            if i >= warmup:
                times[f"{label}_{name}"].extend(took)
                times.setdefault(f"{label}_{name}_cpu", []).append(spent)
                for part, at in after.items():
                    per_call = (at - before[part]) * 1000 / len(lanes)
                    times.setdefault(f"{label}_{name}_cpu_{part}", []).append(per_call)
    return times


async def run(scale: str = "small") -> dict[str, float]:
    rounds_1, rounds_10, warmup = PLANS[scale]
    times: dict[str, list[float]] = {}
    async with stack() as s:
        client = s.env.client
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        store = EventStore(s.pool, chain_key=CHAIN_KEY)
        with tempfile.TemporaryDirectory(prefix="carepath-bench-command-") as tmp:
            app = api_app(client, store, queue, _authenticator(Path(tmp)))
            async with (
                worker_process(s, queue, Path(tmp)) as ours,
                worker_process(s, queue + "-bare", Path(tmp), command=BARE_WORKER) as bare,
            ):
                stack_cpu = StackCpu([ours, bare], s.postgres.pid)
                episodes = EpisodeClient(client, queue)
                lanes = {
                    path: [
                        await _lane(client, episodes, queue + "-bare", i)
                        for i in range(max(CALLERS))
                    ]
                    for path in PATHS
                }
                every = [lane for path in PATHS for lane in lanes[path]]
                await asyncio.gather(
                    *(
                        _stagger(episodes, lane, i)
                        for path in PATHS
                        for i, lane in enumerate(lanes[path])
                    )
                )
                index = {id(lane): i for i, lane in enumerate(lanes.get("http", []))}
                _bare = _bare_app(lanes.get("http", []))
                async with (
                    _served(app) as api_url,
                    _served(_bare) as bare_url,
                    httpx.AsyncClient(
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        limits=httpx.Limits(max_connections=40, max_keepalive_connections=40),
                        timeout=60,
                    ) as http,
                ):

                    async def client_bare(lane: Lane) -> object:
                        return await lane.bare.execute_update(BareUpdateWorkflow.touch, 1)

                    async def client_floor(lane: Lane) -> object:
                        return await lane.bare.execute_update(BareUpdateWorkflow.touch_local, 1)

                    async def client_command(lane: Lane) -> object:
                        return await _schedule_next_session(episodes, lane)

                    async def http_bare(lane: Lane) -> object:
                        answer = await http.post(f"{bare_url}/bare/{index[id(lane)]}")
                        answer.raise_for_status()
                        return answer

                    async def http_floor(lane: Lane) -> object:
                        answer = await http.post(f"{bare_url}/floor/{index[id(lane)]}")
                        answer.raise_for_status()
                        return answer

                    async def http_command(lane: Lane) -> object:
                        session_id, starts_at = lane.next_session()
                        body = {
                            "session_id": session_id,
                            "kind": "group_skills",
                            "starts_at": starts_at.isoformat(),
                            "hours": 2,
                        }
                        answer = await http.post(
                            f"{api_url}/episodes/{lane.episode_id}/sessions", json=body
                        )
                        if answer.status_code != 200:
                            raise RuntimeError(f"{answer.status_code}: {answer.text}")
                        return answer

                    calls: dict[str, dict[str, Call]] = {
                        "client": {
                            "bare": client_bare,
                            "floor": client_floor,
                            "command": client_command,
                        },
                        "http": {"bare": http_bare, "floor": http_floor, "command": http_command},
                    }
                    # As `carepath api` does once started (workers.heap): this process
                    # serves both HTTP apps, and a full collection walking every object it
                    # made while setting up (80-90 ms) stalled whichever calls it fell in.
                    set_aside_live_objects()
                    for callers in CALLERS:
                        rounds = rounds_1 if callers == 1 else rounds_10
                        for path in PATHS:
                            times.update(
                                await _measure(
                                    f"{path}_{callers}",
                                    lanes[path][:callers],
                                    calls[path],
                                    functools.partial(_renew, episodes),
                                    rounds,
                                    warmup,
                                    # Read at ten callers only (the table's rows): a
                                    # reading walks /proc for every process of the
                                    # stack, and one caller's 3,000 calls spent about
                                    # 25 s on them.
                                    stack_cpu if callers > 1 else None,
                                )
                            )
                    # Why the append is a local activity: a bare update awaiting one no-op
                    # regular activity instead, from one caller.
                    first = every[0]
                    times["bare_activity_1"] = [
                        await _timed(
                            first.bare.execute_update(BareUpdateWorkflow.touch_activity, i)
                        )
                        for i in range(warmup + ACTIVITY_CALLS)
                    ][warmup:]
                for lane in every:
                    await lane.bare.signal(BareUpdateWorkflow.finish)
    return figures(times)


def figures(times: dict[str, list[float]]) -> dict[str, float]:
    """p50 and p99 of every series, as `<who>_<path>_<q>_ms_<callers>`, and the ratios
    `command_<path>_<q>_ratio_<callers>` (CarePath over its baseline) and
    `command_<path>_p50_floor_ratio_<callers>` (CarePath over the local-activity floor)."""
    out: dict[str, float] = {}
    for series, values in times.items():
        head, cpu, part = series.partition("_cpu")
        if cpu:
            # CPU per call: this process's (the callers, their clients, the HTTP apps),
            # or, with a part named, another process's of the stack (`StackCpu`).
            who, _, rest = head.partition("_")
            what, _, count = rest.rpartition("_")
            spent = f"cpu{part}_ms"
            out[f"{who}_{what}_{spent}_{count}"] = statistics.fmean(values)
            continue
        who, _, rest = series.partition("_")
        what, _, count = rest.rpartition("_")
        for q, at in (("p50", 0.50), ("p99", 0.99)):
            out[f"{who}_{what}_{q}_ms_{count}"] = percentile(values, at)
        out[f"{who}_{what}_calls_{count}"] = float(len(values))
    for path in PATHS:
        for callers in CALLERS:
            for q in ("p50", "p99"):
                ours = out.get(f"command_{path}_{q}_ms_{callers}")
                base = out.get(f"bare_{path}_{q}_ms_{callers}")
                if ours is not None and base:
                    out[f"command_{path}_{q}_ratio_{callers}"] = ours / base
            ours, floor = (
                out.get(f"{who}_{path}_p50_ms_{callers}") for who in ("command", "floor")
            )
            if ours is not None and floor:
                out[f"command_{path}_p50_floor_ratio_{callers}"] = ours / floor
            for who in ("bare", "floor", "command"):
                # The whole: the other processes' parts, and this process's own CPU per
                # call as the callers' part.
                others = [
                    out[key]
                    for key in (
                        f"{who}_{path}_cpu_{p}_ms_{callers}" for p in STACK_PARTS if p != "callers"
                    )
                    if key in out
                ]
                own = out.get(f"{who}_{path}_cpu_ms_{callers}")
                if others and own is not None:
                    out[f"{who}_{path}_cpu_callers_ms_{callers}"] = own
                    out[f"{who}_{path}_stack_cpu_ms_{callers}"] = own + math.fsum(others)
    return out


if __name__ == "__main__":
    from bench.suite import quiet
    from bench.table import table

    # As `make bench` runs it: the API's request lines would come before the table.
    with quiet() as log:
        measured = asyncio.run(run())
    log.unlink(missing_ok=True)
    print(table([(ROWS, measured, "not measured")]))
