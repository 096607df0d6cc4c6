"""The cohort model of `carepath simulate`: validation, drift, and per-client draws."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from domain.vocabulary import StaffRecipient
from simulation.cohort import (
    Attendance,
    ClientDraws,
    Cohort,
    CohortInvalid,
    arrival_offsets,
    load_cohort,
)


def cohort(**changes: object) -> Cohort:
    return load_cohort().model_copy(update=changes)


def test_given_the_shipped_cohort_when_loaded_then_it_states_its_assumptions() -> None:
    shipped = load_cohort()
    assert shipped.assumptions
    assert set(shipped.staff_response) == set(StaffRecipient)


def test_given_attendance_drift_when_weeks_pass_then_probabilities_drift_and_stay_in_range() -> (
    None
):
    model = Attendance(attend=0.8, excused=0.1, attend_drift_per_week=-0.1)
    assert model.probabilities(1) == pytest.approx((0.8, 0.1, 0.1))
    assert model.probabilities(3) == pytest.approx((0.6, 0.1, 0.3))
    attend, excused, no_show = model.probabilities(20)
    assert (attend, excused) == (0.0, 0.1)
    assert no_show == pytest.approx(0.9)


def test_given_attend_and_excused_above_one_when_validated_then_refused() -> None:
    with pytest.raises(ValueError, match="must not exceed 1"):
        Attendance(attend=0.9, excused=0.2)


def test_given_a_cohort_file_missing_a_staff_role_when_loaded_then_the_field_is_named(
    tmp_path: Path,
) -> None:
    text = load_cohort().model_dump_json()
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace('"clinical_director"', '"nobody"'), encoding="utf-8")
    with pytest.raises(CohortInvalid, match="staff_response"):
        load_cohort(path)


def test_given_a_file_that_is_not_a_mapping_when_loaded_then_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(CohortInvalid, match="mapping"):
        load_cohort(path)


def test_given_the_same_seed_when_a_client_draws_then_every_stream_repeats() -> None:
    model = load_cohort()
    first, second = ClientDraws(model, 7, 3), ClientDraws(model, 7, 3)
    assert [first.session(w) for w in range(1, 13)] == [second.session(w) for w in range(1, 13)]
    assert first.dropout_week(12) == second.dropout_week(12)
    assert first.response(StaffRecipient.SUPERVISOR) == second.response(StaffRecipient.SUPERVISOR)


def test_given_other_draws_in_between_when_a_client_draws_attendance_then_it_is_unchanged() -> None:
    """Common random numbers: a program that opens more tasks (more response draws) must
    not change the client's attendance."""
    model = load_cohort()
    plain, busy = ClientDraws(model, 7, 1), ClientDraws(model, 7, 1)
    sessions = []
    for week in range(1, 13):
        busy.response(StaffRecipient.PRIMARY_CLINICIAN)
        busy.reengages()
        sessions.append(busy.session(week))
    assert sessions == [plain.session(w) for w in range(1, 13)]


def test_given_other_seeds_or_clients_when_drawing_then_the_draws_differ() -> None:
    model = load_cohort()

    def responses(seed: int, client: int) -> tuple[timedelta, ...]:
        draws = ClientDraws(model, seed, client)
        return tuple(draws.response(StaffRecipient.SUPERVISOR) for _ in range(5))

    assert len({responses(7, 0), responses(7, 1), responses(8, 0)}) == 3


def test_given_certain_attendance_when_drawing_then_every_session_is_attended() -> None:
    model = cohort(attendance=Attendance(attend=1.0, excused=0.0))
    draws = ClientDraws(model, 1, 0)
    assert {draws.session(w) for w in range(1, 13)} == {"attended"}


def test_given_no_dropout_when_drawing_the_dropout_week_then_none() -> None:
    assert ClientDraws(cohort(dropout_per_week=0.0), 1, 0).dropout_week(12) is None
    assert ClientDraws(cohort(dropout_per_week=1.0), 1, 0).dropout_week(12) == 1


def test_given_an_arrival_rate_when_drawing_arrivals_then_they_rise_at_about_that_rate() -> None:
    offsets = arrival_offsets(cohort(arrivals_per_week=50.0), 2000, seed=7)
    assert offsets == sorted(offsets)
    assert offsets == arrival_offsets(cohort(arrivals_per_week=50.0), 2000, seed=7)
    assert offsets[-1] / timedelta(weeks=1) == pytest.approx(40, rel=0.1)


def test_given_a_response_median_when_drawing_many_then_the_median_is_near_it() -> None:
    draws = ClientDraws(load_cohort(), 7, 0)
    hours = sorted(
        draws.response(StaffRecipient.SUPERVISOR) / timedelta(hours=1) for _ in range(801)
    )
    assert hours[400] == pytest.approx(30, rel=0.15)
