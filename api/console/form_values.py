"""A command form's values: a body shown as form values, and a submitted form read back.

Browsers send every input as text. Reading a form back turns each into what the command
model expects: moments entered in the clinic's local time (`datetime-local`) become
aware datetimes in UTC, an empty optional input is left out (the model's default
applies), an unticked checkbox is `False`, numbers are numbers, a list is one line per
item or ticked boxes, and the JSON of nested lists is parsed. The request model then
judges the body; its errors come back keyed by form field name (`FormInvalid`).

Local times across a change of the clocks: a time the clocks skip (02:30 on the night
they go forward) does not exist and is refused with a message saying so; a time that
occurs twice (01:30 on the night they go back) is read as its first occurrence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError, create_model

from api.console.form_errors import (
    FormErrors,
    FormInvalid,
    add,
    validation_errors,
)
from api.console.form_fields import CommandForm, FormField, form_for

FormValues = dict[str, str | list[str]]
TRUE_WORDS = frozenset({"on", "true", "yes", "1"})


def submitted(data: Mapping[str, Any], name: str) -> list[str]:
    """Every text value submitted under `name`: from Starlette's `FormData` (several
    values per name) or a plain mapping of a string or a list of strings."""
    getlist = getattr(data, "getlist", None)
    raw: Any = getlist(name) if callable(getlist) else data.get(name)
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    return [v for v in raw if isinstance(v, str)]


def _last(data: Mapping[str, Any], name: str) -> str:
    values = submitted(data, name)
    return values[-1] if values else ""


# --- local time ------------------------------------------------------------------------


class LocalTimeError(ValueError):
    """Raised when a local date and time cannot be read, or does not exist in the zone."""


def from_local(text: str, zone: ZoneInfo) -> datetime:
    """A `datetime-local` (or `date`, read as midnight) input in `zone`, as UTC."""
    text = text.strip()
    try:
        if len(text) == 10:
            naive = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            naive = datetime.fromisoformat(text)
    except ValueError:
        raise LocalTimeError("Enter a date and time, e.g. 2026-01-05 10:00.") from None
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    local = naive.replace(tzinfo=zone, fold=0)
    # A time the clocks skip comes back shifted when taken through UTC.
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise LocalTimeError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone.key}: the clocks go forward "
            "then. Choose another time."
        )
    return local.astimezone(UTC)


def to_local(moment: datetime | str, zone: ZoneInfo) -> str:
    """A moment as the value of a `datetime-local` input in `zone` (seconds only when
    there are any)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone).replace(tzinfo=None)
    if local.microsecond:
        return local.isoformat(timespec="microseconds")
    if local.second:
        return local.isoformat(timespec="seconds")
    return local.isoformat(timespec="minutes")


# --- a body as form values -------------------------------------------------------------


def _at(body: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = body
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def values_from(
    form: CommandForm, body: Mapping[str, Any] | BaseModel, zone: ZoneInfo
) -> FormValues:
    """The form values that show `body` (a request body, path fields included, or a
    model): what a browser would submit for it."""
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    out: FormValues = {}
    for f in form.fields:
        value = _at(data, f.path)
        if value is None:
            continue
        if f.kind == "checkbox":
            if value:
                out[f.name] = "on"
        elif f.kind == "checkboxes":
            out[f.name] = [_text(v) for v in value]
        elif f.kind == "lines":
            out[f.name] = "\n".join(_text(v) for v in value)
        elif f.kind == "datetime-local":
            out[f.name] = to_local(value, zone)
        elif f.kind == "json":
            out[f.name] = json.dumps(value, indent=2)
        else:
            out[f.name] = _text(value)
    return out


def initial_values(form: CommandForm) -> FormValues:
    """The values a fresh form shows: the model's defaults, the examples of JSON fields."""
    out: FormValues = {}
    for f in form.fields:
        if f.default is None or f.default is False:
            continue
        if f.default is True:
            out[f.name] = "on"
        else:
            out[f.name] = f.default
    return out


# --- a submitted form read back ------------------------------------------------------


class _Absent:
    """An empty input: left out of the body."""


ABSENT = _Absent()


def _number(f: FormField, text: str) -> int | float:
    if f.number_type == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError("Enter a whole number.") from None
    try:
        number = float(text)
    except ValueError:
        raise ValueError("Enter a number, e.g. 1.5.") from None
    if not math.isfinite(number):
        raise ValueError("Enter a number, e.g. 1.5.")
    return number


def _read(f: FormField, data: Mapping[str, Any], zone: ZoneInfo) -> Any:
    """The body value of one field; raises ValueError with the message to show."""
    if f.kind == "checkbox":
        return any(v.strip().lower() in TRUE_WORDS for v in submitted(data, f.name))
    if f.kind == "checkboxes":
        chosen = [v for v in submitted(data, f.name) if v]
        return chosen or ABSENT
    raw = _last(data, f.name)
    if f.kind == "textarea":
        # Browsers send line breaks as CR LF; the model keeps LF only.
        text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    else:
        text = raw.strip()
    if not text:
        return ABSENT
    if f.kind == "number":
        return _number(f, text)
    if f.kind == "datetime-local":
        return from_local(text, zone)
    if f.kind == "date":
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError("Enter a date, e.g. 2026-01-05.") from None
    if f.kind == "lines":
        lines = [line.strip() for line in text.splitlines()]
        return [line for line in lines if line] or ABSENT
    if f.kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"Not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}."
            ) from None
    if f.kind == "select" and f.nullable_bool:
        return text == "true"
    return text


def _put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = body
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def form_body(
    form: CommandForm, data: Mapping[str, Any], zone: ZoneInfo
) -> tuple[dict[str, Any], dict[str, str], FormErrors]:
    """The body and path values a submitted form holds, and the inputs it could not read
    (by field name). Every flattened nested model is present, so that a missing sub-field
    is reported at the sub-field."""
    body: dict[str, Any] = {}
    path: dict[str, str] = {}
    errors: FormErrors = {}
    for f in form.fields:
        _ensure(body, f.path[:-1])
        try:
            value = _read(f, data, zone)
        except ValueError as err:
            add(errors, f.name, str(err))
            continue
        if value is ABSENT:
            continue
        if f.in_path:
            path[f.name] = value
        else:
            _put(body, f.path, value)
    return body, path, errors


def _ensure(body: dict[str, Any], path: tuple[str, ...]) -> None:
    target = body
    for part in path:
        target = target.setdefault(part, {})


@cache
def _path_model(kind: str) -> type[BaseModel]:
    """The fields of a command's path, checked as the command checks them."""
    form = form_for(kind)
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in form.spec.command.model_fields.items()
        if name in form.spec.path_params
    }
    return create_model(f"{form.spec.command.__name__}Path", **fields)


@dataclass(frozen=True)
class Submission:
    """A submitted form read back: the validated request body and the path's values."""

    body: BaseModel
    path: dict[str, str]


def parse_form(form: CommandForm, data: Mapping[str, Any], zone: ZoneInfo) -> Submission:
    """The command body and path values of a submitted form, validated by the request
    model; raises `FormInvalid` with every message by form field name."""
    body, path, errors = form_body(form, data, zone)
    try:
        _path_model(form.kind).model_validate(path)
    except ValidationError as err:
        for key, messages in validation_errors(form, err).items():
            for message in messages:
                add(errors, key, message)
    try:
        model = form.spec.request_model.model_validate(body)
    except ValidationError as err:
        for key, messages in validation_errors(form, err).items():
            # An input that could not be read is reported once, as unreadable.
            if key in errors:
                continue
            for message in messages:
                add(errors, key, message)
        raise FormInvalid(errors) from None
    if errors:
        raise FormInvalid(errors)
    return Submission(body=model, path=path)
