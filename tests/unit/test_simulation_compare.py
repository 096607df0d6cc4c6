"""The what-if's paired bootstrap and the staff-load measures of a simulated run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulation.compare import compare, paired_bootstrap, percentile
from simulation.report import STAFF_LOAD, MeasureSet, TaskSpan, peak_open


def total(items: list[float]) -> dict[str, float | None]:
    return {"sum": float(sum(items))}


def test_given_values_when_taking_percentiles_then_they_interpolate() -> None:
    assert percentile([1, 2, 3, 4, 5], 0.5) == 3
    assert percentile([0, 10], 0.25) == 2.5
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_given_b_is_a_plus_a_constant_when_bootstrapped_then_the_interval_is_that_constant() -> (
    None
):
    a = [float(i % 7) for i in range(50)]
    b = [x + 1.0 for x in a]
    low, high = paired_bootstrap(a, b, total, seed=7, resamples=200)["sum"]
    assert low == pytest.approx(50.0)
    assert high == pytest.approx(50.0)


def test_given_the_same_seed_when_bootstrapped_twice_then_the_intervals_are_identical() -> None:
    a = [float(i % 5) for i in range(40)]
    b = [float((i * 3) % 5) for i in range(40)]
    assert paired_bootstrap(a, b, total, seed=3) == paired_bootstrap(a, b, total, seed=3)


def test_given_noisy_pairs_when_bootstrapped_then_the_interval_holds_the_difference() -> None:
    a = [float((i * 37) % 11) for i in range(200)]
    b = [x + (2.0 if i % 2 else 0.0) for i, x in enumerate(a)]
    low, high = paired_bootstrap(a, b, total, seed=1, resamples=300)["sum"]
    assert low < 200.0 < high
    assert low > 0


def test_given_unpaired_sides_when_bootstrapped_then_refused() -> None:
    with pytest.raises(ValueError, match="same clients"):
        paired_bootstrap([1.0], [1.0, 2.0], total, seed=1)


def test_given_two_runs_when_compared_then_each_measure_has_both_sides_and_an_interval() -> None:
    counting = MeasureSet("count", len, lambda facts: {"n": float(sum(facts))})
    a = [[1, 2], [1], [3]]  # clients -> their episodes' facts
    b = [[2, 2], [2], [3]]
    [diff] = compare([counting], [a], [b], seed=7, resamples=50)
    assert (diff.a, diff.b, diff.diff) == (7.0, 9.0, 2.0)
    assert diff.relative == pytest.approx(2 / 7)
    assert diff.low is not None
    assert diff.high is not None
    assert diff.low <= 2.0 <= diff.high


T0 = datetime(2026, 1, 5, tzinfo=UTC)


def span(role: str, opened_h: int, closed_h: int | None, level: int = 1) -> TaskSpan:
    closed = None if closed_h is None else T0 + timedelta(hours=closed_h)
    return TaskSpan(role, level, "outreach", T0 + timedelta(hours=opened_h), closed)


def test_given_overlapping_tasks_when_taking_the_peak_then_a_close_and_open_at_once_do_not_add() -> (
    None
):
    spans = [
        span("primary_clinician", 0, 5),
        span("primary_clinician", 1, 3),
        span("supervisor", 3, None),
        span("supervisor", 5, 6),
    ]
    assert peak_open(spans) == 2
    assert peak_open(spans, "supervisor") == 2
    assert peak_open(spans, "primary_clinician") == 2
    assert peak_open(spans, "clinical_director") == 0


def test_given_episode_facts_when_aggregated_then_tasks_are_counted_by_role_and_level() -> None:
    from simulation.report import StaffFacts

    facts = [
        StaffFacts(
            tasks=(span("primary_clinician", 0, 1), span("supervisor", 2, 4, level=3)),
            notifications=((T0, 1), (T0, 2)),
        ),
        StaffFacts(tasks=(span("supervisor", 3, 5, level=3),), notifications=((T0, 1),)),
    ]
    values = STAFF_LOAD.aggregate(facts)
    assert values["tasks opened"] == 3
    assert values["tasks opened, supervisor"] == 2
    assert values["tasks opened at level 3"] == 2
    assert values["notifications"] == 4
    assert values["peak open tasks, supervisor"] == 2
