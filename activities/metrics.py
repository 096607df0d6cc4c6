"""The activities' Prometheus metrics: what newly stored events record, and what the
notification channels delivered (docs/metrics.md).

Counted where the effect happens: an event counts once, in the append that first wrote
it (a re-append after a lost acknowledgement, or a command applied before, writes
nothing and counts nothing); a notification counts when its channel took it or refused
it. Labels are bounded: escalation level, channel, failure kind; never an id.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter

from domain.events import AttendanceRecorded, EscalationRaised, Event
from domain.vocabulary import AttendanceStatus

ESCALATIONS_OPENED = Counter(
    "carepath_escalations_opened",
    "Escalation tasks opened (escalation_raised events stored), by escalation level.",
    ["level"],
)
NO_SHOWS_RECORDED = Counter(
    "carepath_no_shows_recorded",
    "Sessions recorded as no-shows (attendance_recorded events with status no_show stored).",
)
NOTIFICATIONS_SENT = Counter(
    "carepath_notifications_sent",
    "Notifications a channel accepted, by channel (log, webhook, smtp).",
    ["channel"],
)
NOTIFICATIONS_FAILED = Counter(
    "carepath_notifications_failed",
    "Notifications a channel did not deliver, by channel and kind: `rejected` (refused for "
    "good, needs a settings fix) or `error` (retried by Temporal).",
    ["channel", "kind"],
)


def count_written(events: Sequence[Event], written: int) -> None:
    """Count what the last `written` of `events` record: an append writes the events
    after the stream's head, so those are the batch's tail."""
    if written <= 0:
        return
    for event in events[len(events) - written :]:
        if isinstance(event, EscalationRaised):
            ESCALATIONS_OPENED.labels(level=str(event.level)).inc()
        elif isinstance(event, AttendanceRecorded) and event.status is AttendanceStatus.NO_SHOW:
            NO_SHOWS_RECORDED.inc()
