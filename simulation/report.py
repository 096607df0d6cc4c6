"""What a simulated run reports: measures from its events, staff load, Temporal figures.

Measures are pluggable: a `MeasureSet` turns one episode's stored events into facts and
a list of facts into named values. The report runs every set over every client's
episodes; `--compare` resamples clients and aggregates again (`simulation.compare`), so a
set needs nothing but those two functions. The staff-load set is here; the quality
measures of docs/measures.md join through `quality_measure_set` when they are present.

The measures table depends only on the events, and the runner makes those depend only on
the seed: the same seed prints the same table. Run figures (wall time, history events,
continue-as-new) are the machine's and are reported beside it, not in it.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from domain.vocabulary import StaffRecipient
from store.records import StoredEvent

WEEK = timedelta(weeks=1)
ROLES = tuple(r.value for r in StaffRecipient)
# Events after which an episode's open tasks no longer stand.
CLOSING = frozenset({"episode_discharged", "client_referred_out"})

Value = float | None
Facts = Any


@dataclass(frozen=True)
class MeasureSet:
    """Named measures: facts of one episode's events, and values of many episodes' facts."""

    name: str
    per_episode: Callable[[Sequence[StoredEvent]], Facts]
    aggregate: Callable[[Sequence[Facts]], Mapping[str, Value]]
    # Facts of each of one client's episodes when an episode's facts depend on the
    # client's other episodes (readmission, follow-up); `per_episode` of each otherwise.
    per_client: Callable[[Sequence[Sequence[StoredEvent]]], list[Facts]] | None = None

    def client_facts(self, client: Sequence[Sequence[StoredEvent]]) -> list[Facts]:
        if self.per_client is not None:
            return self.per_client(client)
        return [self.per_episode(events) for events in client]

    def values(self, clients: Sequence[Sequence[Facts]]) -> dict[str, Value]:
        return dict(self.aggregate([facts for client in clients for facts in client]))


@dataclass(frozen=True)
class TaskSpan:
    role: str
    level: int
    kind: str
    opened: datetime
    closed: datetime | None


@dataclass(frozen=True)
class StaffFacts:
    """One episode's tasks (each with when it stood open) and notifications."""

    tasks: tuple[TaskSpan, ...]
    notifications: tuple[tuple[datetime, int], ...]


def staff_facts(events: Sequence[StoredEvent]) -> StaffFacts:
    opened: dict[str, tuple[str, int, str, datetime]] = {}
    closed: dict[str, datetime] = {}
    notes: list[tuple[datetime, int]] = []
    for stored in events:
        payload, at = stored.payload, stored.occurred_at
        notify = payload.get("notify")
        if notify:
            notes.append((at, len(notify)))
        kind = stored.event_type
        if kind == "escalation_raised":
            recipients = payload["notify"]
            opened[payload["task_id"]] = (recipients[0], payload["level"], payload["task_kind"], at)
        elif kind in ("task_resolved", "escalation_task_superseded"):
            closed.setdefault(payload["task_id"], at)
        elif kind in CLOSING:
            for task_id in opened:
                closed.setdefault(task_id, at)
    spans = tuple(
        TaskSpan(role, level, task_kind, at, closed.get(task_id))
        for task_id, (role, level, task_kind, at) in opened.items()
    )
    return StaffFacts(tasks=spans, notifications=tuple(notes))


def peak_open(spans: Sequence[TaskSpan], role: str | None = None) -> int:
    """The most tasks standing open at once (of one role, or all)."""
    changes: list[tuple[datetime, int]] = []
    for span in spans:
        if role is None or span.role == role:
            changes.append((span.opened, 1))
            if span.closed is not None:
                changes.append((span.closed, -1))
    # At the same moment a close counts before an open.
    changes.sort(key=lambda change: (change[0], change[1]))
    peak = current = 0
    for _, delta in changes:
        current += delta
        peak = max(peak, current)
    return peak


def staff_load(facts: Sequence[StaffFacts]) -> dict[str, Value]:
    spans = [span for f in facts for span in f.tasks]
    by_role = Counter(span.role for span in spans)
    by_level = Counter(span.level for span in spans)
    by_kind = Counter(span.kind for span in spans)
    out: dict[str, Value] = {"tasks opened": float(len(spans))}
    for role in ROLES:
        out[f"tasks opened, {role}"] = float(by_role[role])
    for level in range(1, 5):
        out[f"tasks opened at level {level}"] = float(by_level[level])
    for kind in sorted(by_kind):
        out[f"tasks opened, {kind}"] = float(by_kind[kind])
    out["notifications"] = float(sum(n for f in facts for _, n in f.notifications))
    out["peak open tasks"] = float(peak_open(spans))
    for role in ROLES:
        out[f"peak open tasks, {role}"] = float(peak_open(spans, role))
    return out


STAFF_LOAD = MeasureSet("staff load", staff_facts, staff_load)


def quality_measure_set(start: date, end: date) -> MeasureSet | None:
    """The quality measures of docs/measures.md (`domain.measures`) over the days
    `start`..`end`, when that module is present: each episode's `episode_facts` (with
    the client's other episodes, for readmission and follow-up), summed by `aggregate`."""
    try:
        measures = importlib.import_module("domain.measures")
    except ModuleNotFoundError:  # pragma: no cover - present since the measures landed
        return None
    episode_facts = measures.episode_facts
    aggregate = measures.aggregate

    def per_client(client: Sequence[Sequence[StoredEvent]]) -> list[Facts]:
        streams = [[stored.event for stored in events] for events in client]
        out = []
        for i, stream in enumerate(streams):
            others = streams[:i] + streams[i + 1 :]
            facts = episode_facts(stream, start=start, end=end, client_streams=others)
            out.append(facts if facts is not None and facts.counted else None)
        return out

    def per_episode(events: Sequence[StoredEvent]) -> Facts:
        return per_client([events])[0]

    def values(all_facts: Sequence[Facts]) -> dict[str, Value]:
        counted = [facts for facts in all_facts if facts is not None]
        return quality_values(aggregate(counted, start=start, end=end).model_dump())

    return MeasureSet("quality", per_episode, values, per_client)


# The date range and program of a measures result name no measure.
_NOT_MEASURES = frozenset({"start", "end", "program_id"})


def quality_values(result: Mapping[str, Any]) -> dict[str, Value]:
    """The named values of a `QualityMeasures` (dumped): each rate's and distribution's
    value (and a distribution's median), escalations per 100 episode-weeks by level."""
    out: dict[str, Value] = {}
    for name, value in result.items():
        label = name.replace("_", " ")
        if name in _NOT_MEASURES:
            continue
        if isinstance(value, Mapping) and "value" in value:
            out[label] = _float(value["value"])
            if "median" in value:
                out[f"{label}, median"] = _float(value["median"])
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                out[f"{label}, level {key}"] = _float(inner["value"])
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[label] = float(value)
    return out


def _float(value: Any) -> Value:
    return None if value is None else float(value)


def measure_sets(start: date | None = None, end: date | None = None) -> list[MeasureSet]:
    """The staff-load measures, and the quality measures over `start`..`end` if given."""
    sets = [STAFF_LOAD]
    quality = quality_measure_set(start, end) if start is not None and end is not None else None
    if quality is not None:
        sets.insert(0, quality)
    return sets


def date_range(
    runs: Sequence[Sequence[Sequence[Sequence[StoredEvent]]]],
) -> tuple[date, date] | None:
    """The first and last day with an event, over every run given (clients, episodes,
    events): the range a run's quality measures cover."""
    moments = [
        stored.occurred_at
        for clients in runs
        for client in clients
        for events in client
        for stored in (events[0], events[-1])
        if events
    ]
    if not moments:
        return None
    return min(moments).date(), max(moments).date()


# --- weekly series for the charts ------------------------------------------------------


def week_of(moment: datetime, origin: datetime) -> int:
    return int((moment - origin) // WEEK) + 1


def weekly_series(
    clients: Sequence[Sequence[Sequence[StoredEvent]]], origin: datetime
) -> dict[str, list[float]]:
    """Per simulated week: tasks opened and open at the week's end by role, notifications,
    and sessions attended, excused and missed (by the week the session started)."""
    spans = [span for client in clients for events in client for span in staff_facts(events).tasks]
    last = origin
    counts: dict[str, Counter[int]] = {}  # series -> week -> amount

    def add(series: str, week: int, amount: int = 1) -> None:
        counts.setdefault(series, Counter())[week] += amount

    for client in clients:
        for events in client:
            starts: dict[str, datetime] = {}
            for stored in events:
                last = max(last, stored.occurred_at)
                payload = stored.payload
                if stored.event_type == "session_scheduled":
                    starts[payload["session_id"]] = datetime.fromisoformat(payload["starts_at"])
                elif stored.event_type == "attendance_recorded":
                    started = starts.get(payload["session_id"], stored.occurred_at)
                    add(f"sessions {payload['status']}", week_of(started, origin))
                if payload.get("notify"):
                    add(
                        "notifications", week_of(stored.occurred_at, origin), len(payload["notify"])
                    )
    for span in spans:
        add(f"tasks opened, {span.role}", week_of(span.opened, origin))
    weeks = week_of(last, origin)
    out: dict[str, list[float]] = {"week": [float(w) for w in range(1, weeks + 1)]}
    for role in ROLES:
        ends = [origin + w * WEEK for w in range(1, weeks + 1)]
        out[f"open tasks at week end, {role}"] = [
            float(
                sum(
                    1
                    for s in spans
                    if s.role == role and s.opened <= end and (s.closed is None or s.closed > end)
                )
            )
            for end in ends
        ]
    for series in sorted(counts):
        out[series] = [float(counts[series][w]) for w in range(1, weeks + 1)]
    return out


# --- the report ------------------------------------------------------------------------


@dataclass
class Report:
    program: str
    cohort: str
    clients: int
    episodes: int
    weeks: int
    seed: int
    measures: dict[str, Value]
    weekly: dict[str, list[float]]
    run: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "cohort": self.cohort,
            "clients": self.clients,
            "episodes": self.episodes,
            "weeks": self.weeks,
            "seed": self.seed,
            "measures": self.measures,
            "weekly": self.weekly,
            "run": self.run,
        }


def build_report(
    *,
    program: str,
    cohort: str,
    weeks: int,
    seed: int,
    clients: Sequence[Sequence[Sequence[StoredEvent]]],
    origin: datetime,
    sets: Sequence[MeasureSet] | None = None,
) -> Report:
    values: dict[str, Value] = {}
    if sets is None:
        span = date_range([clients])
        sets = measure_sets(*span) if span is not None else measure_sets()
    for measure_set in sets:
        facts = [measure_set.client_facts(client) for client in clients]
        values.update(measure_set.values(facts))
    return Report(
        program=program,
        cohort=cohort,
        clients=len(clients),
        episodes=sum(len(client) for client in clients),
        weeks=weeks,
        seed=seed,
        measures=values,
        weekly=weekly_series(clients, origin),
    )


def number(value: Value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def write_outputs(report: Report, out: Path, *, plot: bool) -> list[Path]:
    """measures.csv, weekly.csv and report.json into `out`; with `plot` the PNG charts."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "measures.csv", out / "weekly.csv", out / "report.json"]
    with written[0].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["measure", "value"])
        for name, value in report.measures.items():
            writer.writerow([name, "" if value is None else repr(value)])
        for name, figure in report.run.items():
            writer.writerow([f"run: {name}", repr(figure)])
    with written[1].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        names = list(report.weekly)
        writer.writerow(names)
        for row in zip(*(report.weekly[name] for name in names), strict=True):
            writer.writerow([f"{v:g}" for v in row])
    written[2].write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if plot:
        from simulation.charts import write_charts

        written.extend(write_charts(report, out))
    return written
