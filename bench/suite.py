"""`make bench`: every benchmark in turn, then one table on stdout (and, with BENCH_JSON,
one flat JSON object of every figure).

BENCH_SCALE=small (the default) keeps a whole run under ten minutes on two cores;
BENCH_SCALE=full takes the big numbers. While the benchmarks run, logging is silenced
and anything written to stdout (the dev servers' own output included) is dropped, so
stdout holds the table alone; progress is reported on stderr, a short line per benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import structlog

from bench.table import Figures, Row, flat_json, table

SCALES = ("small", "full")
# How often each CLI start is timed, by scale.
CLI_REPEATS = {"small": 5, "full": 20}


def append_figures(raw: Mapping[str, float | str]) -> Figures:
    """bench.event_store's figures under the keys the table and the JSON name.

    The module reports `raw_<streams>x<batch>` and `carepath_<streams>x<batch>` in
    events/s, and with several writers `alone_<streams>x<batch>` (CarePath's appends with
    no projector running: the `_alone` names); the ratios are CarePath over raw INSERT
    (higher is better). Figures that already carry the new names are kept as they are.
    """
    out: Figures = dict(raw)
    scenarios = {
        "append_single": "1x1",
        "append_batch10": "1x10",
        "append_8streams_single": "8x1",
        "append_8streams_batch10": "8x10",
    }
    for name, scenario in scenarios.items():
        # CarePath with its projector alongside; then its appends alone (context).
        for suffix, side in (("", "carepath"), ("_alone", "alone")):
            raw_rate, ours = raw.get(f"raw_{scenario}"), raw.get(f"{side}_{scenario}")
            if not isinstance(raw_rate, int | float) or not isinstance(ours, int | float):
                continue
            key = f"{name}{suffix}"
            out.setdefault(f"{key}_raw_events_per_s", float(raw_rate))
            out.setdefault(f"{key}_events_per_s", float(ours))
            out.setdefault(f"{key}_ratio", float(ours) / float(raw_rate) if raw_rate else 0.0)
    return out


def _append_row(measure: str, name: str, goal: str) -> Row:
    return Row(
        measure=measure,
        baseline="raw INSERT",
        baseline_value=f"{name}_raw_events_per_s",
        value=f"{name}_events_per_s",
        ratio=f"{name}_ratio",
        unit="events/s",
        goal=goal,
    )


EVENT_STORE_ROWS = (
    _append_row("append, 1 stream, single events", "append_single", "≥ 0.5x"),
    _append_row("append, 1 stream, batches of 10", "append_batch10", "≥ 0.7x"),
    _append_row("append, 8 streams, single events", "append_8streams_single", "≥ 0.5x"),
    _append_row("append, 8 streams, batches of 10", "append_8streams_batch10", "≥ 0.7x"),
    _append_row(
        "append, 8 streams, single events, no projector running",
        "append_8streams_single_alone",
        "(context)",
    ),
    _append_row(
        "append, 8 streams, batches of 10, no projector running",
        "append_8streams_batch10_alone",
        "(context)",
    ),
    Row(
        measure="projection lag under the 8-stream load, p99",
        value="projection_lag_p99_ms",
        goal="< 1 s",
    ),
)

CLI_START_ROWS = (
    Row(
        measure="`carepath --help` start",
        baseline="bare `python -c pass`",
        baseline_value="python_bare_ms",
        value="cli_help_ms",
        goal="< 300 ms",
    ),
    Row(
        measure="`carepath episode show` start",
        baseline="bare `python -c pass`",
        baseline_value="python_bare_ms",
        value="cli_episode_show_ms",
        goal="< 300 ms",
    ),
    Row(
        measure="`carepath episode record-assessment --help` start",
        baseline="bare `python -c pass`",
        baseline_value="python_bare_ms",
        value="cli_staff_help_ms",
        goal="< 300 ms",
    ),
)

SCALE_ROWS = (
    Row(measure="worker RSS, live episodes", value="worker_rss_mib_*", unit="MiB", goal="< 1 GiB"),
    Row(
        measure="timer firing for an evicted episode (fetch, replay, tick, append), p50",
        value="evicted_timer_p50_ms",
        goal="—",
    ),
    Row(
        measure="replay of the longest run at the continue-as-new bound",
        value="replay_ms_at_bound",
        goal="≤ 50 ms",
    ),
)


@dataclass(frozen=True)
class Benchmark:
    """A benchmark module, imported only when it runs (a missing one is noted, not fatal).

    `run` is called with the arguments it names among `scale` and `repeats`; its rows are
    its module's `ROWS` if it has them, else `rows`; `adapt` maps its figures to the
    names the table and the JSON use."""

    title: str
    module: str
    rows: tuple[Row, ...] = ()
    adapt: Callable[[Mapping[str, float | str]], Figures] = dict


BENCHMARKS = (
    Benchmark("staff commands, 1 and 10 callers", "bench.command_latency"),
    Benchmark("event store append", "bench.event_store", EVENT_STORE_ROWS, append_figures),
    Benchmark("CLI start", "bench.cli_start", CLI_START_ROWS),
    Benchmark("one worker at scale", "bench.scale", SCALE_ROWS),
    Benchmark("console pages, 1,000 episodes", "bench.console_pages"),
    Benchmark("cohort simulation against a bare workflow", "bench.simulation"),
)


def _arguments(run: Callable[..., Any], scale: str) -> dict[str, Any]:
    offered = {"scale": scale, "repeats": CLI_REPEATS[scale]}
    names = inspect.signature(run).parameters
    return {name: value for name, value in offered.items() if name in names}


# Where progress goes: the terminal's stderr, also while `quiet` points fd 2 elsewhere.
_console: TextIO = sys.stderr


def _progress(text: str) -> None:
    print(f"[bench] {text}", file=_console, flush=True)


@contextlib.contextmanager
def quiet() -> Iterator[Path]:
    """No log lines while the benchmarks run, and nothing on stdout: every logger is
    silenced, file descriptor 1 (child processes' too: the dev servers print banners)
    points at /dev/null and descriptor 2 at a log file (yielded), while progress lines
    still reach the terminal's stderr."""
    global _console
    logging.disable(logging.CRITICAL)
    # structlog unconfigured prints every line; route it through the (disabled) stdlib.
    structlog.configure(
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        cache_logger_on_first_use=False,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    fd, name = tempfile.mkstemp(prefix="carepath-bench-", suffix=".log")
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)
    os.dup2(fd, 2)
    os.close(sink)
    os.close(fd)
    previous, _console = _console, os.fdopen(os.dup(saved_err), "w", encoding="utf-8")
    try:
        yield Path(name)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        _console.close()
        _console = previous
        logging.disable(logging.NOTSET)


def run_one(bench: Benchmark, scale: str) -> tuple[tuple[Row, ...], Figures, str]:
    """(rows, figures, note for a figure it lacks) of one benchmark."""
    rows = bench.rows
    try:
        module = importlib.import_module(bench.module)
        rows = tuple(getattr(module, "ROWS", bench.rows))
        _progress(f"{bench.title} ({bench.module}, {scale}) ...")
        started = time.monotonic()
        result = module.run(**_arguments(module.run, scale))
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except Exception as err:  # one failing benchmark must not hide the rest
        if isinstance(err, ModuleNotFoundError) and err.name == bench.module:
            _progress(f"{bench.title}: skipped, {bench.module} is not present")
            return rows, {}, f"skipped: no {bench.module}"
        traceback.print_exc(file=_console)
        _progress(f"{bench.title}: failed ({type(err).__name__})")
        return rows, {}, f"failed: {type(err).__name__}"
    _progress(f"{bench.title}: done in {time.monotonic() - started:.0f} s")
    return rows, bench.adapt(result), "not measured"


def main(environ: Mapping[str, str] = os.environ) -> int:
    scale = environ.get("BENCH_SCALE") or "small"
    if scale not in SCALES:
        print(f"BENCH_SCALE must be one of {', '.join(SCALES)}, not {scale!r}", file=sys.stderr)
        return 2
    json_path = environ.get("BENCH_JSON") or None
    sections = []
    figures: Figures = {}
    with quiet() as log:
        for bench in BENCHMARKS:
            rows, found, note = run_one(bench, scale)
            sections.append((rows, found, note))
            figures.update(found)
    if any(note.startswith("failed") for _, _, note in sections):
        print(f"the servers' output is in {log}", file=sys.stderr)
    else:
        log.unlink(missing_ok=True)
    print(f"CarePath benchmarks, BENCH_SCALE={scale} (ratio = CarePath / baseline)")
    print(table(sections))
    if json_path:
        Path(json_path).write_text(flat_json({**figures, "bench_scale": scale}), encoding="utf-8")
        print(f"figures written to {json_path}", file=sys.stderr)
    return 0
