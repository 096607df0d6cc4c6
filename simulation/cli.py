"""`carepath simulate`: run a cohort, print the measures, write CSV, JSON and charts.

    carepath simulate --program adult-iop --episodes 500 --weeks 12 --seed 7 \\
        --cohort cohort.yaml [--out DIR] [--plot]
    carepath simulate --compare programs/adult-iop.yaml \\
        simulation/programs/adult-iop-2noshows.yaml --seed 7

`simulate(...)` takes plain arguments, so any command-line front end can call it;
`python -m simulation` is one (`main`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from temporalio.client import Client
from temporalio.worker import Worker

from domain.errors import CarePathError
from domain.programs import ProgramDefinition
from programs import load_catalog, load_program_file
from simulation.cohort import Cohort, CohortInvalid, load_cohort
from simulation.compare import Difference
from simulation.compare import compare as compare_runs
from simulation.report import (
    MeasureSet,
    Report,
    build_report,
    date_range,
    measure_sets,
    number,
    write_outputs,
)
from simulation.runner import RunFigures, Simulation, read_streams
from simulation.stack import SIMULATION_CHAIN_KEY, simulation_stack
from store.event_store import EventStore
from store.records import StoredEvent
from workers.replay import run_histories
from workers.settings import Settings
from workers.worker import build_worker
from workflows.client import EpisodeClient
from workflows.messages import workflow_id_for

Progress = Callable[[int, int, datetime], None]


def simulation_worker(client: Client, store: EventStore, queue: str, clients: int) -> Worker:
    """The worker of a simulated cohort: it keeps every episode cached, so no long run is
    replayed, and runs the workflows as `carepath worker` does (CAREPATH_WORKFLOW_SANDBOX)."""
    return build_worker(
        client,
        store,
        queue,
        max_cached_workflows=max(1000, 2 * clients),
        sandboxed=Settings().workflow_sandbox,
    )


# A simulated episode's run continues as new at this many history events, not at the
# workflow's own bound: a new run costs the worker a fresh workflow instance, and the
# simulation's worker keeps every episode cached, so it never replays a long run. Events,
# and so every measure, are the same under either bound.
SIMULATION_HISTORY_EVENT_LIMIT = 1000


def resolve_program(spec: str | Path) -> ProgramDefinition:
    """A program by file path, or by id among the built-in programs."""
    path = Path(spec)
    if path.suffix in {".yaml", ".yml", ".json"} or path.exists():
        return load_program_file(path)
    return load_catalog().get(str(spec))


@dataclass
class Run:
    report: Report
    clients: list[list[list[StoredEvent]]]
    figures: RunFigures


async def run_cohort(
    program: ProgramDefinition,
    cohort: Cohort,
    *,
    clients: int,
    weeks: int,
    seed: int,
    cohort_name: str,
    progress: Progress | None = None,
    concurrency: int = 64,
    history_event_limit: int | None = SIMULATION_HISTORY_EVENT_LIMIT,
) -> Run:
    """One simulated run on servers of its own; its report and every client's events."""
    started = time.perf_counter()
    async with simulation_stack() as stack:
        store = EventStore(stack.pool, chain_key=SIMULATION_CHAIN_KEY)
        queue = f"simulation-{seed}"
        client = stack.env.client
        async with simulation_worker(client, store, queue, clients):
            sim = Simulation(
                stack.env,
                store,
                EpisodeClient(client, queue, history_event_limit=history_event_limit),
                program,
                cohort,
                clients=clients,
                weeks=weeks,
                seed=seed,
                run_id=f"sim{seed}",
            )
            figures = await sim.run(concurrency=concurrency, progress=progress)
        events = await read_streams(store, sim)
        history_events, runs = [], []
        for ids in sim.streams():
            for episode_id in ids:
                histories = await run_histories(client, workflow_id_for(episode_id))
                history_events.append(sum(len(h.events) for h in histories))
                runs.append(len(histories))
    report = build_report(
        program=program.id,
        cohort=cohort_name,
        weeks=weeks,
        seed=seed,
        clients=events,
        origin=sim.scheduler.origin,
    )
    episodes = max(1, len(history_events))
    report.run = {
        "wall time, simulation (s)": round(figures.wall_s, 1),
        "wall time, with servers and report (s)": round(time.perf_counter() - started, 1),
        "simulated weeks": len(report.weekly["week"]),
        "staff commands": figures.commands,
        "staff commands refused": figures.refused,
        "rounds (clock advances)": figures.moments,
        "clock advance time (s)": round(figures.sleep_s, 1),
        "worklist reads": figures.store_reads,
        "history events per episode, mean": round(sum(history_events) / episodes, 1),
        "history events per episode, max": max(history_events, default=0),
        "continue-as-new": sum(runs) - len(runs),
    }
    return Run(report=report, clients=events, figures=figures)


# --- output ------------------------------------------------------------------------------


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(c).rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def measures_table(report: Report) -> str:
    title = (
        f"{report.program}: {report.clients} clients ({report.episodes} episodes), "
        f"{report.weeks} weeks, cohort {report.cohort}, seed {report.seed}"
    )
    rows = [(name, number(value)) for name, value in report.measures.items()]
    return f"{title}\n{table(rows, ('measure', 'value'))}"


def run_table(report: Report) -> str:
    rows = [(name, number(float(value))) for name, value in report.run.items()]
    return "run figures (this machine's; they vary from run to run)\n" + table(
        rows, ("figure", "value")
    )


def signed(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "—"
    if percent:
        return f"{value * 100:+.0f}%"
    return f"{value:+,.2f}" if not float(value).is_integer() else f"{value:+,.0f}"


def compare_table(diffs: Sequence[Difference], a: str, b: str) -> str:
    rows = [
        (
            d.measure,
            number(d.a),
            number(d.b),
            signed(d.diff),
            signed(d.relative, percent=True),
            "—" if d.low is None else f"[{signed(d.low)}, {signed(d.high)}]",
        )
        for d in diffs
    ]
    return table(rows, ("measure", a, b, "B - A", "change", "95% CI (paired bootstrap)"))


@contextmanager
def progress_bar(label: str, total: int, stream: TextIO) -> Iterator[Progress | None]:
    """A Rich progress bar of closed episodes on a terminal; nothing otherwise."""
    if not stream.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[clock]}"),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total, clock="")

        def update(closed: int, opened: int, moment: datetime) -> None:
            bar.update(task, completed=closed, total=max(total, opened), clock=f"{moment:%Y-%m-%d}")

        yield update


# --- the command ----------------------------------------------------------------------


def simulate(
    program: str = "adult-iop",
    episodes: int = 200,
    weeks: int = 12,
    seed: int = 7,
    cohort: Path | None = None,
    out: Path | None = None,
    plot: bool = False,
    compare: tuple[Path, Path] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    quiet_logs: bool = False,
) -> int:
    """Run and print; the exit status (0, or 2 for a bad program or cohort file).

    `quiet_logs`: once the arguments are known good, log only warnings (to stderr), so
    the servers' and the worker's info lines do not bury the progress and the tables."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        model = load_cohort(cohort)
        arms = [resolve_program(p) for p in compare] if compare else [resolve_program(program)]
    except (CohortInvalid, CarePathError) as err:
        print(f"carepath simulate: {err}", file=stderr)
        return 2
    if weeks < 1 or episodes < 1:
        print("carepath simulate: --episodes and --weeks must be at least 1", file=stderr)
        return 2
    if quiet_logs:
        from workers.logging import configure_logging

        configure_logging("console", "warning", stream=sys.stderr)
    cohort_name = model.name if cohort is None else str(cohort)
    runs: list[Run] = []
    for index, definition in enumerate(arms):
        label = definition.id if len(arms) == 1 else f"{'AB'[index]}: {compare[index]}"  # type: ignore[index]
        with progress_bar(f"simulating {label}", episodes, stderr) as update:
            run = asyncio.run(
                run_cohort(
                    definition,
                    model,
                    clients=episodes,
                    weeks=weeks,
                    seed=seed,
                    cohort_name=cohort_name,
                    progress=update,
                )
            )
        runs.append(run)
        if compare is None:
            print(measures_table(run.report), file=stdout)
            print(file=stdout)
            print(run_table(run.report), file=stdout)
        if out is not None:
            target = out if compare is None else out / "AB"[index]
            written = write_outputs(run.report, target, plot=plot)
            print(f"written: {', '.join(str(p) for p in written)}", file=stderr)
    if compare is not None:
        diffs = what_if(runs[0], runs[1], seed)
        print(
            f"what-if: A = {compare[0]}, B = {compare[1]}; {episodes} clients, "
            f"{weeks} weeks, seed {seed}, same draws on both sides",
            file=stdout,
        )
        print(compare_table(diffs, "A", "B"), file=stdout)
        for tag, run in zip("AB", runs, strict=True):
            print(f"\n{tag}: {run_table(run.report)}", file=stdout)
        if out is not None:
            write_compare(diffs, out)
    return 0


def what_if(
    a: Run, b: Run, seed: int, sets: Sequence[MeasureSet] | None = None
) -> list[Difference]:
    if sets is None:
        span = date_range([a.clients, b.clients])
        sets = measure_sets(*span) if span is not None else measure_sets()
    chosen = list(sets)

    def facts(run: Run) -> list[list[object]]:
        return [[s.client_facts(client) for client in run.clients] for s in chosen]

    return compare_runs(chosen, facts(a), facts(b), seed=seed)


def write_compare(diffs: Sequence[Difference], out: Path) -> None:
    import csv
    import json

    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {"measure": d.measure, "a": d.a, "b": d.b, "diff": d.diff, "low": d.low, "high": d.high}
        for d in diffs
    ]
    with (out / "compare.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["measure"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "compare.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--program", default="adult-iop", help="program id or file")
    parser.add_argument("--episodes", type=int, default=200, help="synthetic clients")
    parser.add_argument("--weeks", type=int, default=12, help="program weeks per episode")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cohort", type=Path, help="cohort YAML (default: the shipped one)")
    parser.add_argument("--out", type=Path, help="write CSV, JSON (and charts) here")
    parser.add_argument("--plot", action="store_true", help="also write PNG charts to --out")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A.yaml", "B.yaml"))
    args = parser.parse_args(argv)
    if args.plot and args.out is None:
        parser.error("--plot needs --out DIR")
    return simulate(
        program=args.program,
        episodes=args.episodes,
        weeks=args.weeks,
        seed=args.seed,
        cohort=args.cohort,
        out=args.out,
        plot=args.plot,
        compare=tuple(args.compare) if args.compare else None,
        quiet_logs=True,
    )
