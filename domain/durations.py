"""Durations in program definitions: ISO 8601 strings such as `PT60M`, `P14D`, `PT30S`.

A program sets every length of time as a duration, so a training drill can run its
timers in seconds while a clinic runs them in days. Definitions written before durations
existed named a unit in the field (`no_show_grace_minutes: 60`); `legacy_units` reads
those into the duration field, so old files and the program recorded in old workflow
histories still load, to the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

UNITS = {
    "seconds": timedelta(seconds=1),
    "minutes": timedelta(minutes=1),
    "hours": timedelta(hours=1),
    "days": timedelta(days=1),
    "weeks": timedelta(weeks=1),
}


def _iso_only(value: Any) -> Any:
    """Refuse bare numbers: `60` could mean seconds, minutes or days."""
    if isinstance(value, bool | int | float):
        raise ValueError(
            f"{value!r} has no unit: write an ISO 8601 duration such as 'PT60M', 'P14D' or 'PT30S'"
        )
    return value


# At most about a year and a half: no program timer is longer than a year of aftercare.
Duration = Annotated[
    timedelta,
    BeforeValidator(_iso_only),
    Field(ge=timedelta(0), le=timedelta(days=550)),
]
PositiveDuration = Annotated[Duration, Field(gt=timedelta(0))]


def legacy_units(data: Any, fields: Mapping[str, tuple[str, str]]) -> Any:
    """Read old unit-named fields into their duration fields.

    `fields` maps an old name to (new name, unit), for example
    `{"no_show_grace_minutes": ("no_show_grace", "minutes")}`. A list of numbers becomes
    a list of durations. Naming both the old and the new field is an error.
    """
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    for old, (new, unit) in fields.items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(f"give either {old!r} or {new!r}, not both")
        value = out.pop(old)
        step = UNITS[unit]
        if isinstance(value, list | tuple):
            out[new] = tuple(_scaled(v, step, old) for v in value)
        else:
            out[new] = _scaled(value, step, old)
    return out


def _scaled(value: Any, step: timedelta, name: str) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number (or use the ISO 8601 duration field)")
    return step * value
