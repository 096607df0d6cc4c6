"""A command form ready to render: each field with its value, its messages and the ids
that tie its label, help text and messages to the input (`aria-describedby`).

`bind` is what a page passes to the `command_form` macro of `templates/_form.html`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from api.console.form_errors import FORM, FormErrors
from api.console.form_fields import CommandForm, FormField, FormGroup, Option
from api.console.form_values import initial_values, submitted


@dataclass(frozen=True)
class BoundField:
    """One input as rendered."""

    field: FormField
    id: str
    value: str
    selected: frozenset[str]
    errors: tuple[str, ...]
    help: str | None
    step: str | None

    name = property(lambda self: self.field.name)
    label = property(lambda self: self.field.label)
    kind = property(lambda self: self.field.kind)
    required = property(lambda self: self.field.required)
    options = property(lambda self: self.field.options)
    min = property(lambda self: self.field.min)
    max = property(lambda self: self.field.max)
    maxlength = property(lambda self: self.field.maxlength)

    @property
    def checked(self) -> bool:
        return bool(self.selected)

    @property
    def help_id(self) -> str | None:
        return f"{self.id}-help" if self.help else None

    @property
    def error_id(self) -> str | None:
        return f"{self.id}-error" if self.errors else None

    @property
    def describedby(self) -> str:
        return " ".join(i for i in (self.error_id, self.help_id) if i)

    @property
    def placeholder_option(self) -> bool:
        """Whether a select starts with an empty choice ("Choose…", or "Not given" when
        it may stay empty): when it has no default to show."""
        return self.field.default is None

    def option_id(self, index: int) -> str:
        return f"{self.id}-{index}"


@dataclass(frozen=True)
class BoundGroup:
    """The sub-fields of a nested model, as a fieldset."""

    group: FormGroup
    id: str
    items: tuple[BoundField | BoundGroup, ...]

    legend = property(lambda self: self.group.legend)
    help = property(lambda self: self.group.help)

    @property
    def help_id(self) -> str | None:
        return f"{self.id}-help" if self.help else None


@dataclass(frozen=True)
class SummaryEntry:
    """One line of the error summary: a link to the field (None for the whole form)."""

    href: str | None
    label: str | None
    message: str


@dataclass(frozen=True)
class Hidden:
    name: str
    value: str


@dataclass(frozen=True)
class BoundForm:
    form: CommandForm
    id: str
    items: tuple[BoundField | BoundGroup, ...]
    hidden: tuple[Hidden, ...]
    summary_entries: tuple[SummaryEntry, ...]
    form_errors: tuple[str, ...]

    kind = property(lambda self: self.form.kind)
    title = property(lambda self: self.form.title)
    summary = property(lambda self: self.form.summary)

    @property
    def submit_label(self) -> str:
        return self.form.title

    @property
    def invalid(self) -> bool:
        return bool(self.summary_entries)


def _field_help(f: FormField, zone: ZoneInfo | None) -> str | None:
    if f.kind == "datetime-local" and zone is not None:
        local = f"In the clinic's local time ({zone.key})."
        return f"{f.help} {local}" if f.help else local
    return f.help


def _bind_field(
    f: FormField, prefix: str, values: Mapping[str, Any], errors: FormErrors, zone: ZoneInfo | None
) -> BoundField:
    given = submitted(values, f.name)
    value = given[-1] if given else ""
    if f.kind == "checkbox":
        selected = frozenset({"on"} if any(v for v in given if v.lower() != "false") else ())
    elif f.kind in ("checkboxes", "select"):
        selected = frozenset(given)
    else:
        selected = frozenset()
    step = f.step
    if f.kind == "datetime-local" and len(value) > len("2026-01-05T10:00"):
        step = "1"  # a value with seconds; a browser would refuse it at the minute step
    return BoundField(
        field=f,
        id=f"{prefix}-{f.id}",
        value=value,
        selected=selected,
        errors=tuple(errors.get(f.name, ())),
        help=_field_help(f, zone),
        step=step,
    )


def _bind_items(
    items: Iterable[FormField | FormGroup],
    prefix: str,
    values: Mapping[str, Any],
    errors: FormErrors,
    zone: ZoneInfo | None,
    fixed: Mapping[str, str],
) -> tuple[BoundField | BoundGroup, ...]:
    out: list[BoundField | BoundGroup] = []
    for item in items:
        if isinstance(item, FormGroup):
            inner = _bind_items(item.items, prefix, values, errors, zone, fixed)
            out.append(BoundGroup(item, f"{prefix}-{item.id}", inner))
        elif item.name not in fixed:
            out.append(_bind_field(item, prefix, values, errors, zone))
    return tuple(out)


def bind(
    form: CommandForm,
    *,
    values: Mapping[str, Any] | None = None,
    errors: FormErrors | None = None,
    fixed: Mapping[str, str] | None = None,
    zone: ZoneInfo | None = None,
    choices: Mapping[str, Iterable[tuple[str, str]]] | None = None,
    id_prefix: str | None = None,
) -> BoundForm:
    """`form` ready to render.

    `values` are the form values to show (a submitted form shown again, or
    `values_from(...)` of a body); without them the model's defaults. `errors` are the
    messages by field name (`FormInvalid.errors`, `refusal_errors(...)`). `fixed`
    fields are sent as hidden inputs (the session a row of the day's list is about);
    `choices` turn fields into selects of (value, label); `zone` names the clinic's time
    zone in the help text of local times. Every id in the form starts with `id_prefix`
    (by default the command's name): a page that shows one command's form several times
    (a row per session) gives each its own.
    """
    prefix = id_prefix or form.spec.name
    if choices:
        form = form.with_choices(choices)
    fixed = dict(fixed or {})
    errors = errors or {}
    shown: Mapping[str, Any] = values if values is not None else initial_values(form)
    items = _bind_items(form.items, prefix, shown, errors, zone, fixed)
    names = {f.name for f in form.fields if f.name not in fixed}
    entries = [SummaryEntry(None, None, m) for m in errors.get(FORM, ())]
    # Messages about a field the page does not show belong to the whole form.
    entries += [
        SummaryEntry(None, None, m)
        for key, messages in errors.items()
        if key != FORM and key not in names
        for m in messages
    ]
    form_errors = tuple(e.message for e in entries)
    for f in form.fields:
        if f.name in names:
            for m in errors.get(f.name, ()):
                entries.append(SummaryEntry(f"#{prefix}-{_anchor(f)}", f.label, m))
    return BoundForm(
        form=form,
        id=f"form-{prefix}",
        items=items,
        hidden=tuple(Hidden(k, v) for k, v in fixed.items()),
        summary_entries=tuple(entries),
        form_errors=form_errors,
    )


def _anchor(f: FormField) -> str:
    # A group of checkboxes is reached through its first box.
    return f"{f.id}-0" if f.kind == "checkboxes" else f.id


__all__ = ["BoundField", "BoundForm", "BoundGroup", "Hidden", "Option", "SummaryEntry", "bind"]
