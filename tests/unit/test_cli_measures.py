"""`carepath measures` (cli.measures.run_measures): asks `GET /measures` and prints a
plain-text table or the JSON, with no server (a recording client)."""

from __future__ import annotations

import io
import json
import re
from datetime import date
from typing import Any

from api.measure_routes import MEASURES_EXAMPLE
from cli.measures import run_measures
from domain.measures import QualityMeasures, compute_measures


def table(text: str) -> dict[str, list[str]]:
    """The printed table's rows by measure, their cells split where columns meet."""
    lines = text.splitlines()[2:]
    return {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in lines)}


class RecordingClient:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, dict[str, Any] | None]] = []

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        self.calls.append((method, path, params))
        return self.answer


def test_given_a_program_when_measures_are_printed_then_the_table_shows_each_measure() -> None:
    client, out = RecordingClient(MEASURES_EXAMPLE), io.StringIO()

    status = run_measures(client, date(2026, 1, 1), date(2026, 3, 31), "adult-iop", False, out)

    assert status == 0
    assert client.calls == [
        ("GET", "/measures", {"start": "2026-01-01", "end": "2026-03-31", "program": "adult-iop"})
    ]
    text = out.getvalue()
    assert text.startswith("adult-iop, 2026-01-01 to 2026-03-31: 84 episodes\n")
    rows = table(text)
    assert rows["initiation within 14 days"] == ["87.5%", "63 / 72", "72"]
    assert rows["length of stay (mean)"] == ["61.2 days", "median 63.0, p90 84.0", "44"]
    assert rows["level-3 escalations per 100 episode-weeks"] == ["1.3", "9 / 711.3 weeks", "80"]


def test_given_json_when_measures_are_printed_then_the_answer_is_printed_as_is() -> None:
    client, out = RecordingClient(MEASURES_EXAMPLE), io.StringIO()

    run_measures(client, date(2026, 1, 1), date(2026, 3, 31), None, True, out)

    assert json.loads(out.getvalue()) == MEASURES_EXAMPLE
    assert client.calls[0][2] == {"start": "2026-01-01", "end": "2026-03-31"}


def test_given_no_episodes_when_measures_are_printed_then_empty_values_read_as_dashes() -> None:
    empty = compute_measures([], start=date(2026, 1, 1), end=date(2026, 1, 31))
    client, out = RecordingClient(empty.model_dump(mode="json")), io.StringIO()

    run_measures(client, date(2026, 1, 1), date(2026, 1, 31), None, False, out)

    assert "all programs, 2026-01-01 to 2026-01-31: 0 episodes" in out.getvalue()
    assert table(out.getvalue())["completion"] == ["-", "0 / 0", "0"]
    assert table(out.getvalue())["length of stay (mean)"] == ["-", "0"]


def test_given_the_documented_example_then_it_is_a_valid_answer() -> None:
    assert QualityMeasures.model_validate(MEASURES_EXAMPLE).episodes == 84
