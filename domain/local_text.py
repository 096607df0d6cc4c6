"""Moments and lengths of time as the clinic's staff read them in a message.

Events keep UTC; a refusal that names a time names it in the clinic's own time zone
(`DeadlineRules.zone`), with the zone's abbreviation, so that a window "from 09:00"
means nine in the morning at the clinic.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """`2026-01-12 04:00 EST`: the moment in the clinic's zone, to the minute."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def local_iso(moment: datetime, zone: ZoneInfo) -> str:
    """The moment as the clinic's wall-clock time with its offset (ISO 8601)."""
    return moment.astimezone(zone).isoformat()


def span(length: timedelta) -> str:
    """A length of time in the largest whole unit that fits: `14 days`, `90 minutes`."""
    seconds = int(length.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
