"""Refusals shown next to the fields they are about.

A form's messages are keyed by form field name (`plan.primary_clinician`); the key ""
holds what concerns the whole form. Two sources feed them: pydantic's validation of the
request model (each error's `loc` is a path into the body, mapped to the field that
holds it) and the domain's refusals (`CarePathError`), whose `errors` name a broken rule
(`rule`), sometimes a field (`field`, `loc`), and whose type says which input is wrong
(a `SessionOverlap` is about the start time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from api.console.form_fields import CommandForm, FormField, humanise
from domain.errors import CarePathError

FormErrors = dict[str, list[str]]
FORM = ""  # the key of messages about the whole form

# The field each broken rule of a refusal is about (`domain.decide_plan`'s checks).
RULE_FIELDS: Mapping[str, str] = {
    "sessions_per_week": "plan.weekly_schedule",
    "session_hours": "plan.weekly_schedule",
    "weekly_hours": "plan.weekly_schedule",
    "weekday_once": "plan.weekly_schedule",
    "primary_clinician_on_team": "plan.primary_clinician",
    "goal_problems_known": "plan.goals",
}

# The fields a refusal of each type is about, the first the form has wins; a refusal of
# another type, or whose fields the form lacks, concerns the whole form.
ERROR_FIELDS: Mapping[str, tuple[str, ...]] = {
    "ReasonRequired": ("reason",),
    "PhaseAdvanceTooEarly": ("reason",),
    "CheckInOutsideWindow": ("reason",),
    "SessionTooShort": ("hours",),
    "SessionBackdatedTooFar": ("starts_at",),
    "SessionOverlap": ("starts_at",),
    "SessionNotStarted": ("session_id",),
    "SessionClosed": ("session_id",),
    "AttendanceAlreadyRecorded": ("session_id",),
    "AttendanceNotRecorded": ("session_id",),
    "DuplicateId": ("session_id", "consent_id", "authorization_id"),
    "UnknownReference": ("session_id", "task_id", "consent_id", "check_in"),
    "TaskAlreadyResolved": ("task_id",),
    "TaskSuperseded": ("task_id",),
    "CheckInAlreadyCompleted": ("check_in",),
    "ConsentAlreadyRevoked": ("consent_id",),
    "ConsentRequired": ("recipient_ref", "scope"),
    "ScheduleOutsideIntensityBounds": ("plan.weekly_schedule",),
}


class FormInvalid(Exception):
    """Raised when a submitted form does not make a valid command body; `errors` holds
    the messages by form field name ("" for the whole form)."""

    def __init__(self, errors: FormErrors) -> None:
        super().__init__("; ".join(f"{k or 'form'}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def add(errors: FormErrors, key: str, message: str) -> None:
    messages = errors.setdefault(key, [])
    if message not in messages:
        messages.append(message)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def field_for_path(form: CommandForm, path: Sequence[str | int]) -> tuple[str, list[str | int]]:
    """The form field holding `path` of the body (the longest matching prefix), and what
    is left of the path inside it (an item of a JSON list); "" when no field holds it."""
    names = {f.name for f in form.fields}
    for end in range(len(path), 0, -1):
        head = path[:end]
        if all(isinstance(p, str) for p in head):
            name = ".".join(str(p) for p in head)
            if name in names:
                return name, list(path[end:])
    return FORM, list(path)


def _where(rest: Iterable[str | int]) -> str:
    parts = [f"item {p + 1}" if isinstance(p, int) else humanise(p).lower() for p in rest]
    return ", ".join(parts)


def _missing(field: FormField | None) -> str:
    if field is None:
        return "This is required."
    if field.kind in ("select",):
        return "Choose one."
    if field.kind == "checkboxes":
        return "Choose at least one."
    return "Enter a value."


def _message(error: Mapping[str, Any], field: FormField | None) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return _missing(field)
    if kind == "string_pattern_mismatch":
        return "Contains characters that are not allowed here (control characters or line breaks)."
    if kind == "extra_forbidden":
        return "Not a field of this form."
    text = str(error.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return _sentence(text)


def validation_errors(
    form: CommandForm, error: ValidationError, *, prefix: Sequence[str | int] = ()
) -> FormErrors:
    """Pydantic's errors of the request model as messages by form field name."""
    out: FormErrors = {}
    found = [
        (e, *field_for_path(form, [*prefix, *e.get("loc", ())]))
        for e in error.errors(include_url=False)
    ]
    # A list with a bad item is also reported too short (the item was dropped): the item's
    # own message says it all.
    with_items = {key for _, key, rest in found if rest}
    for e, key, rest in found:
        if not rest and key in with_items and e.get("type") == "too_short":
            continue
        field = form.field(key) if key else None
        message = _message(e, field if not rest else None)
        if rest:
            message = f"{_where(rest).capitalize()}: {message[:1].lower()}{message[1:]}"
        add(out, key, message)
    return out


def _named_field(form: CommandForm, entry: Mapping[str, Any]) -> str:
    names = {f.name for f in form.fields}
    named = entry.get("field")
    if isinstance(named, str) and named in names:
        return named
    loc = entry.get("loc")
    if isinstance(loc, Sequence) and not isinstance(loc, str) and loc:
        key, _ = field_for_path(form, [p for p in loc if p != "body"])
        if key:
            return key
    rule = entry.get("rule")
    if isinstance(rule, str) and RULE_FIELDS.get(rule) in names:
        return RULE_FIELDS[rule]
    return FORM


def refusal_errors(form: CommandForm, refusal: CarePathError) -> FormErrors:
    """A domain refusal as messages by form field name: each of its `errors` next to the
    field it names (or its rule is about), else its message next to the field its type
    is about, else for the whole form."""
    out: FormErrors = {}
    names = {f.name for f in form.fields}
    for entry in refusal.errors:
        message = entry.get("message")
        if isinstance(message, str) and message:
            add(out, _named_field(form, entry), _sentence(message))
    if out:
        return out
    candidates = ERROR_FIELDS.get(refusal.code, ())
    key = next((name for name in candidates if name in names), FORM)
    add(out, key, _sentence(refusal.message))
    return out
