"""The cohort model: who arrives, how they attend, how staff respond (docs/simulation.md).

A cohort is data (YAML, validated here). Every random draw a client makes comes from
that client's own named streams (`ClientDraws`), seeded from the run's seed, the client's
number and the stream's name, never from a shared generator. So the same seed gives the
same run, and under `--compare` each client draws the same arrival, attendance, dropout
and aftercare under both programs (common random numbers): a difference between the two
runs comes from the program, not from the dice.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.vocabulary import StaffRecipient

DEFAULT_COHORT = Path(__file__).parent / "cohorts" / "default.yaml"

Status = Literal["attended", "excused", "no_show"]


class CohortInvalid(ValueError):
    """A cohort file that cannot be read or does not validate; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Attendance(_Model):
    """Probability that an engaged client attends a session, or is excused, in week 1, and
    how each drifts per program week after it. The rest is no-show."""

    attend: float = Field(ge=0, le=1)
    excused: float = Field(ge=0, le=1)
    attend_drift_per_week: float = Field(default=0.0, ge=-0.2, le=0.2)
    excused_drift_per_week: float = Field(default=0.0, ge=-0.2, le=0.2)

    @model_validator(mode="after")
    def _at_most_one(self) -> Attendance:
        if self.attend + self.excused > 1:
            raise ValueError("attend + excused must not exceed 1")
        return self

    def probabilities(self, week: int) -> tuple[float, float, float]:
        """(attend, excused, no-show) in program week `week` (1-based), each within 0..1."""
        attend = min(1.0, max(0.0, self.attend + self.attend_drift_per_week * (week - 1)))
        excused = min(
            1.0 - attend, max(0.0, self.excused + self.excused_drift_per_week * (week - 1))
        )
        return attend, excused, max(0.0, 1.0 - attend - excused)


class ResponseTime(_Model):
    """Hours from a task opening to staff resolving it: log-normal with this median and
    spread (the standard deviation of its logarithm)."""

    median_hours: float = Field(gt=0, le=24 * 30)
    spread: float = Field(default=0.8, ge=0, le=3)


class Cohort(_Model):
    """A synthetic cohort. Probabilities are per client (or per session, week, check-in)."""

    name: str = Field(min_length=1)
    description: str = ""
    # What the figures assume, stated in the file so that a report can say so.
    assumptions: tuple[str, ...] = ()
    arrivals_per_week: float = Field(gt=0, le=10_000)
    # Days from referral to admission (screening, assessment and admission on one visit),
    # uniform between the two.
    days_to_admission: tuple[float, float] = (2.0, 10.0)
    sessions_per_week: int = Field(default=3, ge=1, le=7)
    session_hours: float = Field(default=3.0, gt=0, le=12)
    attendance: Attendance
    # Chance, each program week, that an engaged client stops coming (every later
    # session is a no-show until outreach brings them back or they are discharged).
    dropout_per_week: float = Field(ge=0, le=1)
    # Chance that a resolved outreach task or case review brings a client who stopped
    # coming back into the program.
    reengage_after_outreach: float = Field(default=0.0, ge=0, le=1)
    # Aftercare: days of it before the episode is discharged as completed; the chance
    # that each check-in reaches the client; the chance that a reached check-in reports
    # a relapse; the chance that a relapse leads to readmission (a new episode).
    aftercare_days: int = Field(default=100, ge=0, le=400)
    check_in_reached: float = Field(default=0.8, ge=0, le=1)
    relapse_per_check_in: float = Field(default=0.08, ge=0, le=1)
    readmission_after_relapse: float = Field(default=0.5, ge=0, le=1)
    max_readmissions: int = Field(default=1, ge=0, le=3)
    # Staff response to escalation tasks, by the rung's first recipient.
    staff_response: dict[StaffRecipient, ResponseTime]

    @model_validator(mode="after")
    def _consistent(self) -> Cohort:
        low, high = self.days_to_admission
        if not 0 <= low <= high <= 90:
            raise ValueError("days_to_admission must be (low, high) with 0 <= low <= high <= 90")
        missing = set(StaffRecipient) - set(self.staff_response)
        if missing:
            names = ", ".join(sorted(r.value for r in missing))
            raise ValueError(f"staff_response needs every staff recipient; missing {names}")
        return self


def load_cohort(path: Path | None = None) -> Cohort:
    """Read and validate a cohort file (the shipped default when `path` is None)."""
    path = path or DEFAULT_COHORT
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CohortInvalid(f"{path}: cannot read the file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CohortInvalid(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CohortInvalid(f"{path}: expected a mapping at the top level")
    try:
        return Cohort.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise CohortInvalid(f"{path}: field {field!r}: {first['msg']}") from exc


def arrival_offsets(cohort: Cohort, clients: int, seed: int) -> list[timedelta]:
    """When each client is referred, from the start of the run: a Poisson process at the
    cohort's weekly rate (its own stream, so it is the same under any program)."""
    rng = random.Random(f"{seed}/arrivals")
    at, out = 0.0, []
    for _ in range(clients):
        at += rng.expovariate(cohort.arrivals_per_week)
        out.append(timedelta(weeks=at))
    return out


class ClientDraws:
    """One client's random draws, each kind from a stream of its own (see the module)."""

    def __init__(self, cohort: Cohort, seed: int, client: int) -> None:
        self.cohort = cohort
        self._prefix = f"{seed}/{client}"
        self._streams: dict[str, random.Random] = {}
        self._dropout_week: int | None = None
        self._dropout_drawn = False

    def _rng(self, stream: str) -> random.Random:
        rng = self._streams.get(stream)
        if rng is None:
            rng = self._streams[stream] = random.Random(f"{self._prefix}/{stream}")
        return rng

    def days_to_admission(self) -> float:
        low, high = self.cohort.days_to_admission
        return self._rng("intake").uniform(low, high)

    def dropout_week(self, weeks: int) -> int | None:
        """The program week from which the client stops coming (None: never, within
        `weeks`). Drawn once per episode, week by week, from the client's stream."""
        rng = self._rng("dropout")
        for week in range(1, weeks + 1):
            if rng.random() < self.cohort.dropout_per_week:
                return week
        return None

    def session(self, week: int) -> Status:
        """An engaged client's attendance of their next session in program week `week`."""
        attend, excused, _ = self.cohort.attendance.probabilities(week)
        u = self._rng("attendance").random()
        if u < attend:
            return "attended"
        return "excused" if u < attend + excused else "no_show"

    def response(self, recipient: StaffRecipient) -> timedelta:
        """How long staff of this rung take to resolve a task."""
        spec = self.cohort.staff_response[recipient]
        hours = self._rng(f"response/{recipient.value}").lognormvariate(
            math.log(spec.median_hours), spec.spread
        )
        return timedelta(hours=min(hours, 24 * 60))

    def reengages(self) -> bool:
        return self._rng("reengage").random() < self.cohort.reengage_after_outreach

    def check_in(self) -> tuple[bool, bool]:
        """(reached, relapse reported) for the client's next aftercare check-in. Both are
        drawn whatever the first says, so later check-ins see the same numbers."""
        rng = self._rng("aftercare")
        reached, relapse = rng.random(), rng.random()
        return (
            reached < self.cohort.check_in_reached,
            reached < self.cohort.check_in_reached and relapse < self.cohort.relapse_per_check_in,
        )

    def readmitted(self) -> bool:
        return self._rng("readmission").random() < self.cohort.readmission_after_relapse
