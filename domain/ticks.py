"""What the passage of time means: the decision for a `Tick(now)`.

Everything due at or before `now` is handled in one tick, rule by rule in the order of
the table of deadline rules (`domain.deadlines`), so after a tick `next_deadline(state)`
is always later than `now` and the workflow never spins. Each rule is judged against the
state as the tick has left it so far: a weekly check sees the no-shows just recorded, and
a rule whose firing makes its next moment due (several weeks missed) fires again. Tasks
opened by a tick are due relative to the tick, never in its past.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.deadlines import DEADLINE_RULES, DeadlineRule, Due, due_items
from domain.emitter import Emitter


def tick(em: Emitter) -> None:
    """Fire every deadline that has passed by the tick's time, in table order."""
    for deadline_rule in DEADLINE_RULES:
        fire_due(em, deadline_rule)


def fire_due(em: Emitter, deadline_rule: DeadlineRule[Any]) -> None:
    """Fire `deadline_rule` for each of its items due by now, earliest-listed first,
    until none is due.

    Firing must settle the item (its event marks it done, or moves it on); an item that
    is still due after it fired would make the tick loop, so it is refused instead.
    """
    fired: set[tuple[datetime, str | None]] = set()
    while (due := _first_due(em, deadline_rule)) is not None:
        if (due.at, due.ref) in fired:
            raise AssertionError(
                f"deadline rule {deadline_rule.kind!r} fired for {due.ref or due.at.isoformat()} "
                "and is still due: its event must settle what it fired for"
            )
        fired.add((due.at, due.ref))
        deadline_rule.fire(em, due)


def _first_due(em: Emitter, deadline_rule: DeadlineRule[Any]) -> Due[Any] | None:
    return next((d for d in due_items(deadline_rule, em.state) if d.at <= em.now), None)
