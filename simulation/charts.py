"""PNG charts of a simulated run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from simulation.report import ROLES, Report


def write_charts(report: Report, out: Path) -> list[Path]:
    weekly = report.weekly
    weeks = weekly["week"]
    title = f"{report.program}, {report.clients} clients, seed {report.seed}"
    paths = []

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for role in ROLES:
        ax.plot(weeks, weekly[f"open tasks at week end, {role}"], label=role.replace("_", " "))
    ax.set(xlabel="simulated week", ylabel="open tasks at the week's end", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out / "open-tasks-by-role.png"))

    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottom = [0.0] * len(weeks)
    for status, colour in (("attended", "#2e7d32"), ("excused", "#f9a825"), ("no_show", "#c62828")):
        series = weekly.get(f"sessions {status}", [0.0] * len(weeks))
        ax.bar(weeks, series, bottom=bottom, label=status.replace("_", "-"), color=colour)
        bottom = [b + s for b, s in zip(bottom, series, strict=True)]
    ax.set(xlabel="simulated week", ylabel="sessions", title=f"Attendance: {title}")
    ax.legend()
    paths.append(_save(fig, out / "attendance.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    levels = [f"level {n}" for n in range(1, 5)]
    counts = [report.measures.get(f"tasks opened at level {n}") or 0.0 for n in range(1, 5)]
    bars = ax.barh(levels[::-1], counts[::-1], color="#5c6bc0")
    ax.bar_label(bars, fmt="%d")
    ax.set(xlabel="tasks opened", title=f"Escalation ladder: {title}")
    paths.append(_save(fig, out / "escalation-funnel.png"))
    return paths


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    # No timestamp in the file: the same run gives the same bytes.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path
