"""Quality measures computed from event streams: engagement, follow-up and flow.

Each measure is defined in docs/measures.md, in the manner of the HEDIS measures IET
(initiation and engagement) and FUH/FUA (follow-up after discharge); they are not
certified HEDIS measures. Pure: a stream is one episode's events in seq order, as the
decider emits them and the store reads them back; nothing here reads the clock.

Three entry points:

- `compute_measures(streams, start=, end=, program_id=)` - the measures of a date range:
  what `GET /measures` answers and what a simulation reports;
- `cohort_facts(...)` - the same in two steps: one `EpisodeFacts` per episode (what that
  episode contributes to each numerator and denominator), for a bootstrap that resamples
  episodes: `aggregate(random.choices(facts, k=len(facts)), start=, end=)`;
- `aggregate(facts, ...)` - sums facts into `QualityMeasures`; for any facts,
  `compute_measures(...) == aggregate(cohort_facts(...), ...)`.

The range is calendar days `start`..`end`, both included, in each episode's program time
zone; everything is measured as of the end of `end` (later events are ignored), and a
rate whose window (14 days, 30 days, ...) would reach past `end` counts only index events
whose window has closed by then.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field

from domain import events as ev
from domain.measure_timeline import ExitKind, Timeline, episode_zone, timeline
from domain.vocabulary import DischargeReason

# Engagement, in the manner of HEDIS IET: a first attended session within 14 days of the
# referral, then 2 or more further attended sessions within 34 days after it.
INITIATION_DAYS = 14
ENGAGEMENT_DAYS = 34
ENGAGEMENT_SESSIONS = 2
# Follow-up (FUH/FUA) and readmission windows after the exit from treatment.
FOLLOW_UP_DAYS = (7, 30)
READMISSION_DAYS = (30, 90)
WEEK = timedelta(weeks=1)
_PER = 100.0  # escalations are counted per 100 episode-weeks


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rate(_Frozen):
    """A share: `numerator` of `denominator`; `value` is None while nothing is counted.
    `n` is the number of episodes counted (the denominator itself, unless the unit
    counted is a session or a week)."""

    value: float | None
    numerator: int
    denominator: int
    n: int


class Distribution(_Frozen):
    """A quantity per episode (or per task): `value` is the mean; None when `n` is 0."""

    value: float | None
    median: float | None
    p90: float | None
    n: int
    unit: str


class PerExposure(_Frozen):
    """Events per 100 episode-weeks: `numerator` events over `denominator` weeks of
    episodes open in the range; `n` episodes contributed weeks."""

    value: float
    numerator: int
    denominator: float
    n: int


class EpisodeFacts(_Frozen):
    """What one episode contributes to each measure. A `bool | None` fact is None when
    the episode is not in that rate's denominator, else whether it is in the numerator."""

    episode_id: str
    program_id: str
    days_to_first_session: int | None = None
    initiated: bool | None = None
    engaged: bool | None = None
    followed_up: dict[int, bool] = Field(default_factory=dict)
    completed: bool | None = None
    length_of_stay_days: int | None = None
    sessions_recorded: int = 0
    sessions_attended: int = 0
    weeks_judged: int = 0
    weeks_below: int = 0
    escalations_by_level: dict[int, int] = Field(default_factory=dict)
    episode_weeks: float = 0.0
    resolution_hours: tuple[float, ...] = ()
    readmitted: dict[int, bool] = Field(default_factory=dict)

    @property
    def counted(self) -> bool:
        """Whether the episode counts in any measure of the range."""
        return any(
            (
                self.days_to_first_session is not None,
                self.initiated is not None,
                self.engaged is not None,
                self.followed_up,
                self.completed is not None,
                self.sessions_recorded,
                self.weeks_judged,
                self.episode_weeks > 0,
                self.resolution_hours,
                self.readmitted,
            )
        )


class QualityMeasures(_Frozen):
    """The measures of a date range and program (docs/measures.md defines each)."""

    start: date
    end: date
    program_id: str | None
    episodes: int = Field(description="Episodes that count in at least one measure.")
    days_to_first_session: Distribution
    initiation_14_days: Rate
    engagement_34_days: Rate
    follow_up_7_days: Rate
    follow_up_30_days: Rate
    completion: Rate
    length_of_stay: Distribution
    attendance: Rate
    weeks_below_intensity: Rate
    escalations_per_100_weeks: dict[int, PerExposure] = Field(
        description="By task level; every level shares the same episode-weeks."
    )
    task_resolution_hours: Distribution
    readmission_30_days: Rate
    readmission_90_days: Rate


# --- one episode ---------------------------------------------------------------------


class _Range:
    """The measured days in one episode's time zone, as moments."""

    def __init__(self, line: Timeline, start: date, end: date) -> None:
        self.start, self.end = start, end
        self.opens = datetime.combine(start, time(), tzinfo=line.zone)
        self.closes = datetime.combine(end + timedelta(days=1), time(), tzinfo=line.zone)

    def holds(self, day: date, window_days: int = 0) -> bool:
        """Whether `day` is in the range and a window of that many days after it has
        closed by the range's end."""
        return self.start <= day <= self.end - timedelta(days=window_days)


def episode_facts(
    stream: Sequence[ev.Event],
    *,
    start: date,
    end: date,
    client_streams: Sequence[Sequence[ev.Event]] = (),
) -> EpisodeFacts | None:
    """What one episode contributes to the measures of `start`..`end`; None if it was
    not yet referred by then. `client_streams` are the same client's other episodes,
    which readmission and follow-up look at (`cohort_facts` finds them)."""
    as_of = _as_of(stream, end)
    line = timeline(stream, as_of)
    if line is None:
        return None
    others = [t for s in client_streams if (t := timeline(s, _as_of(s, end))) is not None]
    return _facts(line, others, start, end)


def _as_of(stream: Sequence[ev.Event], end: date) -> datetime:
    """The end of the range's last day in the episode's time zone."""
    return datetime.combine(end + timedelta(days=1), time(), tzinfo=episode_zone(stream))


def _facts(line: Timeline, others: Sequence[Timeline], start: date, end: date) -> EpisodeFacts:
    span = _Range(line, start, end)
    facts: dict[str, object] = {"episode_id": line.episode_id, "program_id": line.program_id}
    facts.update(_engagement(line, span))
    facts.update(_exit_facts(line, others, span))
    facts.update(_attendance(line, span))
    facts.update(_escalations(line, span))
    facts["resolution_hours"] = tuple(
        (resolved - raised).total_seconds() / 3600
        for raised, resolved in line.resolutions
        if span.holds(line.day(resolved))
    )
    return EpisodeFacts.model_validate(facts)


def _engagement(line: Timeline, span: _Range) -> dict[str, object]:
    referred = line.day(line.referred_at)
    if line.referred_out or not span.holds(referred):
        return {}
    starts = [line.day(s) for s in line.attended_starts()]
    facts: dict[str, object] = {}
    first = starts[0] if starts else None
    if first is not None:
        facts["days_to_first_session"] = (first - referred).days
    initiated = first is not None and (first - referred).days <= INITIATION_DAYS
    if span.holds(referred, INITIATION_DAYS):
        facts["initiated"] = initiated
    if span.holds(referred, INITIATION_DAYS + ENGAGEMENT_DAYS):
        further = 0
        if initiated and first is not None:
            further = sum(1 for d in starts if first < d <= first + timedelta(ENGAGEMENT_DAYS))
        facts["engaged"] = initiated and further >= ENGAGEMENT_SESSIONS
    return facts


def _exit_facts(line: Timeline, others: Sequence[Timeline], span: _Range) -> dict[str, object]:
    if line.exit_at is None or line.admitted_at is None:
        return {}
    exit_day = line.day(line.exit_at)
    if not span.holds(exit_day):
        return {}
    facts: dict[str, object] = {
        "completed": line.exit_kind is ExitKind.STEP_DOWN
        or line.discharge_reason is DischargeReason.COMPLETED,
        "length_of_stay_days": (exit_day - line.day(line.admitted_at)).days,
    }
    transferred = line.exit_kind is ExitKind.STEP_UP or (
        line.exit_kind is ExitKind.DISCHARGE
        and line.discharge_reason is DischargeReason.TRANSFERRED
    )
    if transferred:
        return facts
    # Aftercare contact: a completed check-in, or a session attended in a later episode.
    contacts = [*line.check_ins]
    contacts += [s for other in others for s in other.attended_starts() if s > line.exit_at]
    contact_days = [(line.day(c) - exit_day).days for c in contacts]
    facts["followed_up"] = {
        days: any(0 < d <= days for d in contact_days)
        for days in FOLLOW_UP_DAYS
        if span.holds(exit_day, days)
    }
    admissions = [
        (line.day(o.admitted_at) - exit_day).days
        for o in others
        if o.admitted_at is not None and o.admitted_at > line.exit_at
    ]
    facts["readmitted"] = {
        days: any(d <= days for d in admissions)
        for days in READMISSION_DAYS
        if span.holds(exit_day, days)
    }
    return facts


def _attendance(line: Timeline, span: _Range) -> dict[str, object]:
    recorded = [
        s
        for s in line.sessions.values()
        if not s.cancelled and s.status is not None and span.holds(line.day(s.starts_at))
    ]
    judged = [below for week_start, below in line.weeks if span.holds(line.day(week_start))]
    return {
        "sessions_recorded": len(recorded),
        "sessions_attended": sum(1 for s in recorded if s.attended),
        "weeks_judged": len(judged),
        "weeks_below": sum(judged),
    }


def _escalations(line: Timeline, span: _Range) -> dict[str, object]:
    """Escalations raised while the episode was open in the range, and the weeks it was
    open in the range (from admission to discharge)."""
    if line.admitted_at is None:
        return {}
    opened = max(line.admitted_at, span.opens)
    closed = min(line.closed_at or span.closes, span.closes)
    if closed <= opened:
        return {}
    levels = Counter(level for at, level in line.escalations if opened <= at < closed)
    return {"escalations_by_level": dict(levels), "episode_weeks": (closed - opened) / WEEK}


# --- a cohort ------------------------------------------------------------------------


def cohort_facts(
    streams: Iterable[Sequence[ev.Event]],
    *,
    start: date,
    end: date,
    program_id: str | None = None,
) -> list[EpisodeFacts]:
    """One `EpisodeFacts` per episode of `program_id` (every program when None) that
    counts in the range, in the order given. Readmission and follow-up link a client's
    episodes by `client_ref`, across all the streams given."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    lines = [line for s in streams if (line := timeline(s, _as_of(s, end))) is not None]
    by_client: defaultdict[str, list[Timeline]] = defaultdict(list)
    for line in lines:
        by_client[line.client_ref].append(line)
    facts = []
    for line in lines:
        if program_id is not None and line.program_id != program_id:
            continue
        others = [o for o in by_client[line.client_ref] if o is not line]
        one = _facts(line, others, start, end)
        if one.counted:
            facts.append(one)
    return facts


def compute_measures(
    streams: Iterable[Sequence[ev.Event]],
    *,
    start: date,
    end: date,
    program_id: str | None = None,
) -> QualityMeasures:
    """The quality measures of the episodes of `program_id` (all when None) over the
    days `start`..`end` (docs/measures.md)."""
    facts = cohort_facts(streams, start=start, end=end, program_id=program_id)
    return aggregate(facts, start=start, end=end, program_id=program_id)


def aggregate(
    facts: Iterable[EpisodeFacts], *, start: date, end: date, program_id: str | None = None
) -> QualityMeasures:
    """Sum episodes' facts into the measures. Facts may repeat (a bootstrap resample)."""
    facts = list(facts)
    levels = sorted({level for f in facts for level in f.escalations_by_level})
    # fsum: the same total in whatever order the episodes come.
    weeks = math.fsum(f.episode_weeks for f in facts)
    exposed = sum(1 for f in facts if f.episode_weeks > 0)
    return QualityMeasures(
        start=start,
        end=end,
        program_id=program_id,
        episodes=len(facts),
        days_to_first_session=_distribution(
            [f.days_to_first_session for f in facts if f.days_to_first_session is not None],
            "days",
        ),
        initiation_14_days=_share([f.initiated for f in facts]),
        engagement_34_days=_share([f.engaged for f in facts]),
        follow_up_7_days=_share([f.followed_up.get(7) for f in facts]),
        follow_up_30_days=_share([f.followed_up.get(30) for f in facts]),
        completion=_share([f.completed for f in facts]),
        length_of_stay=_distribution(
            [f.length_of_stay_days for f in facts if f.length_of_stay_days is not None], "days"
        ),
        attendance=_counted(
            [(f.sessions_attended, f.sessions_recorded) for f in facts if f.sessions_recorded]
        ),
        weeks_below_intensity=_counted(
            [(f.weeks_below, f.weeks_judged) for f in facts if f.weeks_judged]
        ),
        escalations_per_100_weeks={
            level: _per_exposure(
                sum(f.escalations_by_level.get(level, 0) for f in facts), weeks, exposed
            )
            for level in levels
        },
        task_resolution_hours=_distribution(
            [hours for f in facts for hours in f.resolution_hours], "hours"
        ),
        readmission_30_days=_share([f.readmitted.get(30) for f in facts]),
        readmission_90_days=_share([f.readmitted.get(90) for f in facts]),
    )


def _share(flags: Sequence[bool | None]) -> Rate:
    counted = [flag for flag in flags if flag is not None]
    return _rate(sum(counted), len(counted), len(counted))


def _counted(pairs: Sequence[tuple[int, int]]) -> Rate:
    return _rate(sum(p[0] for p in pairs), sum(p[1] for p in pairs), len(pairs))


def _rate(numerator: int, denominator: int, n: int) -> Rate:
    value = numerator / denominator if denominator else None
    return Rate(value=value, numerator=numerator, denominator=denominator, n=n)


def _distribution(values: Sequence[float], unit: str) -> Distribution:
    if not values:
        return Distribution(value=None, median=None, p90=None, n=0, unit=unit)
    ordered = sorted(values)
    # The nearest-rank 90th percentile: a value some episode actually had.
    p90 = ordered[max(0, -(-9 * len(ordered) // 10) - 1)]
    return Distribution(
        value=statistics.fmean(ordered),
        median=float(statistics.median(ordered)),
        p90=float(p90),
        n=len(ordered),
        unit=unit,
    )


def _per_exposure(count: int, weeks: float, episodes: int) -> PerExposure:
    # Escalations are counted only within episode-weeks, so a level with any has weeks.
    return PerExposure(value=_PER * count / weeks, numerator=count, denominator=weeks, n=episodes)
