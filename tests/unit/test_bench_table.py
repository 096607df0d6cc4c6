"""`make bench`'s one table and one flat JSON object, from given figures (no servers)."""

from __future__ import annotations

import json

import pytest

from bench import command_latency
from bench.suite import (
    BENCHMARKS,
    CLI_START_ROWS,
    EVENT_STORE_ROWS,
    SCALE_ROWS,
    Benchmark,
    append_figures,
    run_one,
)
from bench.table import HEADER, Row, flat_json, table

REQUIRED_KEYS = {
    *(
        f"command_{path}_{q}_ratio_{callers}"
        for path in ("client", "http")
        for q in ("p50", "p99")
        for callers in (1, 10)
    ),
    "append_single_ratio",
    "append_batch10_ratio",
    "append_8streams_single_ratio",
    "append_8streams_batch10_ratio",
    "projection_lag_p99_ms",
    "worker_rss_mib_10000",
    "evicted_timer_p50_ms",
    "cli_help_ms",
}

# bench.event_store's figures as it reports them today, events/s.
EVENT_STORE = {
    f"{who}_{scenario}": rate
    for scenario, (raw, ours) in {
        "1x1": (1000.0, 500.0),
        "1x10": (2000.0, 1400.0),
        "8x1": (3000.0, 1500.0),
        "8x10": (10000.0, 7000.0),
    }.items()
    for who, rate in (("raw", raw), ("carepath", ours), ("bare", ours))
}
# With several writers, CarePath's appends with no projector running (context).
EVENT_STORE |= {"alone_8x1": 2700.0, "alone_8x10": 11000.0}


def _latencies() -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for path in ("client", "http"):
        for callers in (1, 10):
            times[f"bare_{path}_{callers}"] = [10.0] * 98 + [20.0, 20.0]
            times[f"command_{path}_{callers}"] = [15.0] * 98 + [40.0, 40.0]
    return times


def _every_figure() -> dict[str, float | str]:
    return {
        **command_latency.figures(_latencies()),
        **append_figures({**EVENT_STORE, "projection_lag_p99_ms": 120.0}),
        "cli_help_ms": 180.0,
        "cli_episode_show_ms": 210.0,
        "python_bare_ms": 20.0,
        "worker_rss_mib_10000": 700.0,
        "evicted_timer_p50_ms": 30.0,
    }


def _rows() -> tuple[Row, ...]:
    return (*command_latency.ROWS, *EVENT_STORE_ROWS, *CLI_START_ROWS, *SCALE_ROWS)


def test_given_every_benchmarks_figures_when_written_as_json_then_one_flat_object_has_the_required_keys() -> (
    None
):
    document = json.loads(flat_json(_every_figure()))

    assert set(document) >= REQUIRED_KEYS
    assert all(isinstance(value, int | float | str) for value in document.values())
    assert document["command_client_p50_ratio_1"] == 1.5
    assert document["command_http_p99_ratio_10"] == 2.0


def test_given_each_batchs_cpu_when_figured_then_every_part_and_their_sum_are_per_call() -> None:
    times = {
        **_latencies(),
        "bare_client_10_cpu": [0.6, 0.8],
        "bare_client_10_cpu_workers": [2.0, 2.0],
        "bare_client_10_cpu_temporal": [2.5, 2.3],
        "bare_client_10_cpu_postgres": [0.0, 0.2],
        "command_client_10_cpu": [0.8, 1.0],
        "command_client_10_cpu_workers": [3.0, 3.4],
        "command_client_10_cpu_temporal": [3.1, 2.9],
        "command_client_10_cpu_postgres": [0.3, 0.5],
    }

    out = command_latency.figures(times)

    assert out["command_client_cpu_workers_ms_10"] == pytest.approx(3.2)
    assert out["command_client_cpu_temporal_ms_10"] == pytest.approx(3.0)
    assert out["command_client_cpu_postgres_ms_10"] == pytest.approx(0.4)
    assert out["command_client_cpu_callers_ms_10"] == pytest.approx(0.9)
    assert out["command_client_stack_cpu_ms_10"] == pytest.approx(7.5)
    assert out["bare_client_stack_cpu_ms_10"] == pytest.approx(5.2)
    assert "command_client_stack_cpu_ms_1" not in out
    lines = table([(command_latency.ROWS, out, "not measured")]).splitlines()
    whole = next(line for line in lines if "CPU of every process per command, client" in line)
    assert "bare update, 5.2 ms" in whole
    assert "7.5 ms" in whole
    assert "1.44x" in whole


def test_given_event_store_figures_when_adapted_then_each_append_ratio_is_carepath_over_raw_insert() -> (
    None
):
    adapted = append_figures(EVENT_STORE)

    assert adapted["append_single_ratio"] == 0.5
    assert adapted["append_batch10_ratio"] == 0.7
    assert adapted["append_8streams_single_ratio"] == 0.5
    assert adapted["append_8streams_batch10_ratio"] == 0.7
    assert adapted["append_single_raw_events_per_s"] == 1000.0


def test_given_the_appends_alone_when_adapted_then_they_get_ratios_of_their_own() -> None:
    adapted = append_figures(EVENT_STORE)

    assert adapted["append_8streams_single_alone_ratio"] == 0.9
    assert adapted["append_8streams_batch10_alone_ratio"] == 1.1
    assert adapted["append_8streams_batch10_ratio"] == 0.7
    assert "append_single_alone_ratio" not in adapted
    lines = table([(EVENT_STORE_ROWS, adapted, "not measured")]).splitlines()
    alone = next(line for line in lines if "batches of 10, no projector" in line)
    assert "1.10x" in alone
    assert "(context)" in alone


def test_given_figures_when_the_table_is_rendered_then_it_has_a_header_and_one_row_per_measure() -> (
    None
):
    rows = _rows()

    lines = table([(rows, _every_figure(), "not measured")]).splitlines()

    assert len(lines) == 2 + len(rows)
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == list(HEADER)
    measures = [line.strip("|").split("|")[0].strip() for line in lines[2:]]
    assert measures == [row.measure for row in rows]
    assert len(set(measures)) == len(measures)
    client_1 = lines[2].split("|")
    assert client_1[2].strip() == "bare update, 10.0 ms"
    assert client_1[3].strip() == "15.0 ms"
    assert client_1[4].strip() == "1.50x"
    assert client_1[5].strip() == "≤ 1.5x (bar 2x)"
    rss = next(line for line in lines if "worker RSS" in line)
    assert "700 MiB" in rss


def test_given_a_benchmark_module_that_is_not_there_when_the_suite_runs_it_then_its_rows_say_skipped() -> (
    None
):
    absent = Benchmark("absent", "bench.no_such_benchmark", CLI_START_ROWS)

    rows, figures, note = run_one(absent, "small")

    assert (rows, figures) == (CLI_START_ROWS, {})
    lines = table([(rows, figures, note)]).splitlines()
    assert len(lines) == 2 + len(CLI_START_ROWS)
    assert all("skipped: no bench.no_such_benchmark" in line for line in lines[2:])


def test_given_the_suite_when_listed_then_it_names_every_benchmark_of_the_issue_once() -> None:
    modules = [bench.module for bench in BENCHMARKS]

    assert sorted(modules) == sorted(
        {
            "bench.command_latency",
            "bench.event_store",
            "bench.cli_start",
            "bench.scale",
            "bench.console_pages",
            "bench.simulation",
        }
    )


def test_given_ten_callers_when_they_start_then_their_episodes_are_a_tenth_apart() -> None:
    # Episodes moved in step would all continue as new in the same round (docs/operations.md).
    starts = [command_latency.stagger_sessions(i) for i in range(max(command_latency.CALLERS))]
    tenth = command_latency.SESSIONS_PER_EPISODE // len(starts)
    assert starts == list(range(0, command_latency.SESSIONS_PER_EPISODE, tenth))
