"""The simulation report's names for the quality measures of docs/measures.md."""

from __future__ import annotations

from datetime import date

from domain.measures import aggregate
from simulation.report import measure_sets, quality_values


def test_given_quality_measures_when_named_then_each_rate_and_distribution_gives_its_value() -> (
    None
):
    dumped = aggregate([], start=date(2027, 1, 4), end=date(2027, 6, 30)).model_dump()
    dumped["escalations_per_100_weeks"] = {
        2: {"value": 3.5, "numerator": 7, "denominator": 200.0, "n": 20}
    }
    dumped["completion"] = {"value": 0.5, "numerator": 1, "denominator": 2, "n": 2}
    values = quality_values(dumped)
    assert values["completion"] == 0.5
    assert values["escalations per 100 weeks, level 2"] == 3.5
    assert values["length of stay"] is None
    assert "length of stay, median" in values
    assert values["episodes"] == 0.0
    assert not {"start", "end", "program id", "program_id"} & set(values)


def test_given_a_date_range_when_choosing_measure_sets_then_quality_comes_before_staff_load() -> (
    None
):
    names = [s.name for s in measure_sets(date(2027, 1, 4), date(2027, 6, 30))]
    assert names == ["quality", "staff load"]
    assert [s.name for s in measure_sets()] == ["staff load"]
