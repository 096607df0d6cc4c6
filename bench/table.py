"""The benchmarks' one table and one flat JSON object.

A benchmark module returns a flat dict of figures; `Row`s say which figures make a line of
the table: the measure, its baseline (a label and a figure), CarePath's figure, the ratio
and the goal. A row whose figures are missing shows why instead of failing the run.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Figures = dict[str, float | str]

HEADER = ("measure", "baseline", "CarePath", "ratio", "goal")


@dataclass(frozen=True)
class Row:
    """One measure. `value` (and `baseline_value`) are figure keys; `value` may be a glob
    (e.g. `worker_rss_mib_*`, whose count depends on the scale). The ratio is the figure
    `ratio` if given, else CarePath over baseline."""

    measure: str
    value: str
    goal: str
    unit: str = "ms"
    baseline: str = ""
    baseline_value: str | None = None
    ratio: str | None = None


def lookup(figures: Mapping[str, float | str], key: str | None) -> float | None:
    """The number under `key` (or the first key matching it as a glob); None if absent."""
    if key is None:
        return None
    if key in figures:
        found = figures[key]
        return float(found) if isinstance(found, int | float) else None
    for name in sorted(figures):
        if fnmatch.fnmatchcase(name, key):
            found = figures[name]
            return float(found) if isinstance(found, int | float) else None
    return None


def amount(value: float, unit: str) -> str:
    if unit == "events/s":
        return f"{value:,.0f} events/s"
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    if unit == "ms" and value >= 100:
        return f"{value:,.0f} ms"
    return f"{value:,.1f} {unit}"


def cells(row: Row, figures: Mapping[str, float | str], missing: str = "not measured") -> list[str]:
    value = lookup(figures, row.value)
    base = lookup(figures, row.baseline_value)
    ratio = lookup(figures, row.ratio)
    if ratio is None and value is not None and base:
        ratio = value / base
    baseline = row.baseline
    if base is not None:
        baseline = (
            f"{row.baseline}, {amount(base, row.unit)}" if row.baseline else amount(base, row.unit)
        )
    return [
        row.measure,
        baseline or "—",
        amount(value, row.unit) if value is not None else missing,
        f"{ratio:.2f}x" if ratio is not None and math.isfinite(ratio) else "—",
        row.goal,
    ]


def render(lines: Iterable[list[str]]) -> str:
    """A Markdown table, its columns padded to line up in a terminal too."""
    body = [list(HEADER), *lines]
    widths = [max(len(line[i]) for line in body) for i in range(len(HEADER))]

    def fmt(line: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(body[0]), rule, *(fmt(line) for line in body[1:])])


def table(sections: Iterable[tuple[tuple[Row, ...], Mapping[str, float | str], str]]) -> str:
    """One table over (rows, figures, note for a missing figure) per benchmark."""
    return render(cells(row, figures, note) for rows, figures, note in sections for row in rows)


def flat_json(figures: Mapping[str, float | str]) -> str:
    """Every figure as one flat JSON object, keys sorted; non-finite numbers become null."""
    clean: dict[str, float | str | None] = {}
    for key, value in sorted(figures.items()):
        if isinstance(value, float) and not math.isfinite(value):
            clean[key] = None
        else:
            clean[key] = value
    return json.dumps(clean, indent=2, sort_keys=True) + "\n"
