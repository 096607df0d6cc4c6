"""What-if: the same clients under two programs, each measure side by side.

Both runs use the same seed, so each client draws the same arrival, attendance, dropout
and aftercare under both (common random numbers, `simulation.cohort`). The interval of a
difference is a paired bootstrap over clients: clients are resampled with replacement,
the same resample on both sides, each side's measures aggregated over it, and the 2.5th
and 97.5th percentiles of (B - A) taken. It is seeded, so it too repeats exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simulation.report import Facts, MeasureSet, Value

RESAMPLES = 400


@dataclass(frozen=True)
class Difference:
    measure: str
    a: Value
    b: Value
    diff: Value
    low: Value
    high: Value

    @property
    def relative(self) -> Value:
        if self.a is None or self.b is None or self.a == 0:
            return None
        return (self.b - self.a) / self.a


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th quantile (0..1) by linear interpolation between order statistics."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def paired_bootstrap(
    a: Sequence[Facts],
    b: Sequence[Facts],
    statistic: Callable[[Sequence[Facts]], dict[str, Value]],
    *,
    seed: int,
    resamples: int = RESAMPLES,
    confidence: float = 0.95,
) -> dict[str, tuple[Value, Value]]:
    """(low, high) of statistic(b) - statistic(a) per measure, resampling the paired
    items (clients) together. A measure without a value on either side in a resample
    is left out of that resample."""
    if len(a) != len(b):
        raise ValueError("a paired bootstrap needs the same clients on both sides")
    rng = random.Random(f"{seed}/bootstrap")
    n = len(a)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        left = statistic([a[i] for i in picks])
        right = statistic([b[i] for i in picks])
        for name, value in right.items():
            before = left.get(name)
            if value is not None and before is not None:
                draws.setdefault(name, []).append(value - before)
    tail = (1 - confidence) / 2
    out: dict[str, tuple[Value, Value]] = {}
    for name, diffs in draws.items():
        out[name] = (percentile(diffs, tail), percentile(diffs, 1 - tail))
    return out


def compare(
    sets: Sequence[MeasureSet],
    a: Sequence[Sequence[Facts]] | Sequence[Sequence[Sequence[Facts]]],
    b: Sequence[Sequence[Facts]] | Sequence[Sequence[Sequence[Facts]]],
    *,
    seed: int,
    resamples: int = RESAMPLES,
) -> list[Difference]:
    """Every measure of every set: A, B, B - A and its interval. `a[k][i]` are client
    i's episode facts for set k."""
    out: list[Difference] = []
    for k, measure_set in enumerate(sets):
        facts_a, facts_b = a[k], b[k]
        whole_a = measure_set.values(facts_a)
        whole_b = measure_set.values(facts_b)
        intervals = paired_bootstrap(
            facts_a,
            facts_b,
            measure_set.values,
            seed=seed,
            resamples=resamples,
        )
        for name in dict.fromkeys([*whole_a, *whole_b]):
            va, vb = whole_a.get(name), whole_b.get(name)
            diff = None if va is None or vb is None else vb - va
            low, high = intervals.get(name, (None, None))
            out.append(Difference(name, va, vb, diff, low, high))
    return out
