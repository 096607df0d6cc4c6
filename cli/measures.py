"""`carepath measures`: the quality measures of a date range, from `GET /measures`.

`run_measures` is the whole command: it asks the API (so the caller's role and programs
apply, and the read is access-logged) and prints a plain-text table, or the API's JSON
with `as_json`. docs/measures.md defines each measure. Only the standard library is
imported: the command line loads this module when it starts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any, Protocol, TextIO

HEADER = ("measure", "value", "numerator / denominator", "n")

# The rows of the table: (label, field of the answer, how its value reads).
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("days from referral to first session (mean)", "days_to_first_session", "days"),
    ("initiation within 14 days", "initiation_14_days", "share"),
    ("engagement: 2+ sessions within 34 days", "engagement_34_days", "share"),
    ("follow-up within 7 days", "follow_up_7_days", "share"),
    ("follow-up within 30 days", "follow_up_30_days", "share"),
    ("completion", "completion", "share"),
    ("length of stay (mean)", "length_of_stay", "days"),
    ("attendance (sessions)", "attendance", "share"),
    ("weeks below intensity", "weeks_below_intensity", "share"),
    ("task resolution (mean)", "task_resolution_hours", "hours"),
    ("readmission within 30 days", "readmission_30_days", "share"),
    ("readmission within 90 days", "readmission_90_days", "share"),
)


class MeasuresClient(Protocol):
    """What the command needs of the API client (`cli.episodes.ApiClient` is one): a
    request that answers the decoded JSON, or raises the CLI's one-line error."""

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any: ...


def run_measures(
    client: MeasuresClient,
    start: date,
    end: date,
    program: str | None,
    as_json: bool,
    out: TextIO | None = None,
) -> int:
    """Print the measures of `start`..`end` (of `program`, or every program the caller
    sees) as a table, or as JSON; the exit status, 0. An API error propagates as the
    client raises it (the command line prints its one line and exits 1)."""
    out = out or sys.stdout
    params: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat()}
    if program is not None:
        params["program"] = program
    body = client.request("GET", "/measures", params=params)
    if as_json:
        out.write(json.dumps(body, indent=2) + "\n")
        return 0
    scope = body.get("program_id") or "all programs"
    out.write(f"{scope}, {body['start']} to {body['end']}: {body['episodes']} episodes\n")
    write_table(out, HEADER, measure_rows(body))
    return 0


def measure_rows(body: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table's rows for an answer of `GET /measures`."""
    rows = [_row(label, body[field], kind) for label, field, kind in _ROWS]
    for level, rate in sorted(body["escalations_per_100_weeks"].items(), key=lambda i: int(i[0])):
        rows.append(
            (
                f"level-{level} escalations per 100 episode-weeks",
                _number(rate["value"]),
                f"{rate['numerator']} / {_number(rate['denominator'])} weeks",
                str(rate["n"]),
            )
        )
    return rows


def _row(label: str, measure: dict[str, Any], kind: str) -> tuple[str, str, str, str]:
    if kind == "share":
        value = "-" if measure["value"] is None else f"{100 * measure['value']:.1f}%"
        return label, value, f"{measure['numerator']} / {measure['denominator']}", str(measure["n"])
    value = "-" if measure["value"] is None else f"{_number(measure['value'])} {kind}"
    spread = (
        ""
        if measure["median"] is None
        else f"median {_number(measure['median'])}, p90 {_number(measure['p90'])}"
    )
    return label, value, spread, str(measure["n"])


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def write_table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")
