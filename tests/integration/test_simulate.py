"""`carepath simulate` end to end: a small cohort on the time-skipping test server and an
embedded PostgreSQL of its own, twice with the same seed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from simulation.cli import simulate

pytestmark = pytest.mark.integration


def run(out: Path, *, plot: bool = False) -> str:
    stdout, stderr = io.StringIO(), io.StringIO()
    status = simulate(
        episodes=10, weeks=2, seed=7, out=out, plot=plot, stdout=stdout, stderr=stderr
    )
    assert status == 0, stderr.getvalue()
    return stdout.getvalue()


def test_given_the_same_seed_when_simulated_twice_then_the_measures_table_and_files_are_identical(
    tmp_path: Path,
) -> None:
    first = run(tmp_path / "first", plot=True)
    second = run(tmp_path / "second")
    table_of = lambda text: text.split("run figures")[0]  # noqa: E731 - wall times vary
    assert table_of(first) == table_of(second)
    assert "tasks opened, supervisor" in first
    for name in ("measures.csv", "weekly.csv", "report.json"):
        assert (tmp_path / "first" / name).stat().st_size > 0
    measures = [
        json.loads((tmp_path / d / "report.json").read_text())["measures"]
        for d in ("first", "second")
    ]
    assert measures[0] == measures[1]
    assert measures[0]["tasks opened"] > 0
    weekly = (tmp_path / "first" / "weekly.csv").read_text()
    assert weekly == (tmp_path / "second" / "weekly.csv").read_text()
    for chart in ("open-tasks-by-role.png", "attendance.png", "escalation-funnel.png"):
        assert (tmp_path / "first" / chart).read_bytes().startswith(b"\x89PNG")


def test_given_a_bad_cohort_file_when_simulating_then_it_exits_2_naming_the_field(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "cohort.yaml"
    bad.write_text("name: x\narrivals_per_week: -1\n", encoding="utf-8")
    stderr = io.StringIO()
    assert simulate(cohort=bad, stdout=io.StringIO(), stderr=stderr) == 2
    assert "arrivals_per_week" in stderr.getvalue()


def test_given_clients_readmitted_after_a_relapse_when_their_new_episodes_close_then_the_run_still_ends(
    tmp_path: Path,
) -> None:
    import asyncio

    from simulation.cli import resolve_program, run_cohort
    from simulation.cohort import DEFAULT_COHORT, load_cohort

    text = DEFAULT_COHORT.read_text(encoding="utf-8")
    for name, value in (
        ("dropout_per_week", "0.0"),
        ("check_in_reached", "1.0"),
        ("relapse_per_check_in", "1.0"),
        ("readmission_after_relapse", "1.0"),
    ):
        text = "\n".join(
            f"{name}: {value}" if line.startswith(f"{name}:") else line
            for line in text.splitlines()
        )
    cohort_file = tmp_path / "relapsing.yaml"
    cohort_file.write_text(text + "\n", encoding="utf-8")
    run = asyncio.run(
        run_cohort(
            resolve_program("adult-iop"),
            load_cohort(cohort_file),
            clients=3,
            weeks=1,
            seed=7,
            cohort_name="relapsing",
        )
    )
    # Every client was readmitted once, and every episode, old and new, was closed: the
    # test server's clock kept skipping after a readmission's episode closed.
    assert run.report.episodes == 6
    assert run.figures.unlocks >= 1
    assert all(
        client[-1][-1].event_type in ("episode_discharged", "client_referred_out")
        for client in run.clients
    )
