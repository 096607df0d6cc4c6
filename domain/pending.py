"""What is due for an episode and when: the itemised form of `next_deadline`.

For staff and auditors (the workflow's pending-deadlines query); the decider itself only
needs the earliest moment.
"""

from __future__ import annotations

from datetime import datetime

from domain import deadlines as d
from domain.state import EpisodeState

PendingItem = tuple[str, datetime, str | None]


def pending_deadlines(state: EpisodeState | None) -> tuple[PendingItem, ...]:
    """Every pending deadline as (kind, due at, reference), earliest first."""
    if state is None or state.is_closed:
        return ()
    items: list[PendingItem] = []
    singles = (
        ("no_contact_review", d.no_contact_at(state)),
        ("weekly_hours_check", d.week_check_at(state)),
        ("initial_plan_due", d.initial_plan_at(state)),
        ("plan_review_reminder", d.review_reminder_at(state)),
        ("plan_review_overdue", d.review_overdue_at(state)),
        ("hold_review_due", d.hold_review_at(state)),
    )
    items.extend((kind, at, None) for kind, at in singles if at is not None)
    items.extend(
        ("session_no_show", d.no_show_at(state, s), s.session_id) for s in d.pending_sessions(state)
    )
    items.extend(("task_due", t.due_at, t.task_id) for t in d.watched_tasks(state))
    items.extend(
        ("check_in_closes", ci.closes_at, f"check-in-{ci.number}") for ci in d.open_check_ins(state)
    )
    items.extend(
        ("authorization_reminder", a.remind_at, a.authorization_id)
        for a in d.pending_reminders(state)
    )
    return tuple(sorted(items, key=lambda item: (item[1], item[0])))
