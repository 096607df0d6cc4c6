"""The fields of each staff command's form, generated from the command model.

Each staff command (`api.command_specs`) gets one form description: a field per input,
with a label, help text, the kind of input and whether it is required. Nothing is
written by hand per command, so a field added to a command appears in its form at once.

The kinds of input, from the field's type:

- free text: `text` for a line (references, ids), `textarea` for long free text;
- `number` (with a step, and the model's bounds), `checkbox` for a yes/no;
- `select` for an enumeration or a `Literal`, with readable option labels (levels of
  care as the ASAM Criteria name them); `checkboxes` for a list of enumeration values;
- `datetime-local` for moments, entered in the clinic's local time; `date` for dates;
- `lines` for a list of short texts, one per line;
- `json` for what has no form of its own (a list of models: the plan's problems, goals,
  schedule and care team), pre-filled with the command's example.

A small nested model is flattened into sub-fields named by their path
(`plan.primary_clinician`, `asam_ratings.biomedical`), grouped under a legend. The
fields a command's path carries (`session_id` of `/sessions/{session_id}/attendance`)
are fields of the form too: a page may fix them (hidden inputs) or offer choices.
"""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from api.command_specs import CommandSpec, spec_for
from domain.asam import DISPLAY_EDITION, EDITION_NAMES, MERGED_LEVELS, level_display
from domain.vocabulary import AsamEdition, LevelOfCare

Kind = Literal[
    "text",
    "textarea",
    "number",
    "checkbox",
    "select",
    "checkboxes",
    "datetime-local",
    "date",
    "lines",
    "json",
]

# A nested model with at most this many fields is shown as sub-fields; a larger one is
# edited as JSON.
FLATTEN_AT_MOST = 12
# Free text allowed to run this long or longer gets a text area rather than one line.
TEXTAREA_FROM = 1000
# Shown last: every command may carry a reason, and most forms need none.
REASON = "reason"

# Words shown in capitals (or otherwise spelled) in labels.
_WORDS = {
    "id": "ID",
    "ids": "IDs",
    "ref": "reference",
    "asam": "ASAM",
    "cbt": "CBT",
    "dbt": "DBT",
    "iop": "IOP",
    "php": "PHP",
    "aa": "AA",
    "na": "NA",
}


def humanise(name: str) -> str:
    """A field or value name as a label: `starts_at` -> "Starts at", `cbt` -> "CBT"."""
    words = [_WORDS.get(word, word) for word in name.replace("-", "_").split("_") if word]
    if not words:
        return name
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


@dataclass(frozen=True)
class Option:
    """One choice of a select or a checkbox group."""

    value: str
    label: str


@dataclass(frozen=True)
class FormField:
    """One input of a command form; `name` is the form field name (a dotted path)."""

    name: str
    label: str
    kind: Kind
    required: bool
    help: str | None = None
    # The initial form value: a string, a list of strings (checkboxes) or a bool.
    default: str | list[str] | bool | None = None
    options: tuple[Option, ...] = ()
    step: str | None = None
    min: str | None = None
    max: str | None = None
    maxlength: int | None = None
    # "int" or "float" for numbers; the nullable tri-state of an optional yes/no.
    number_type: str | None = None
    nullable_bool: bool = False
    # A field of the command's path rather than of its body.
    in_path: bool = False

    @property
    def id(self) -> str:
        """The input's HTML id: unique within a page that shows one form per command."""
        return "f-" + self.name.replace(".", "-").replace("_", "-")

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))


@dataclass(frozen=True)
class FormGroup:
    """The sub-fields of a flattened nested model, shown as a fieldset."""

    name: str
    legend: str
    help: str | None
    items: tuple[FormField | FormGroup, ...]

    @property
    def id(self) -> str:
        return "g-" + self.name.replace(".", "-").replace("_", "-")

    def fields(self) -> Iterator[FormField]:
        for item in self.items:
            if isinstance(item, FormGroup):
                yield from item.fields()
            else:
                yield item


@dataclass(frozen=True)
class CommandForm:
    """The form of one staff command."""

    spec: CommandSpec
    items: tuple[FormField | FormGroup, ...]
    # For nested models edited as JSON: the example value shown pre-filled.
    examples: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def title(self) -> str:
        """The command in words, also the text of the submit button: "Record attendance"."""
        return humanise(self.spec.kind)

    @property
    def summary(self) -> str:
        return self.spec.summary

    @property
    def id(self) -> str:
        return "form-" + self.spec.name

    @property
    def fields(self) -> tuple[FormField, ...]:
        return tuple(_walk(self.items))

    def field(self, name: str) -> FormField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.kind} has no form field {name!r}")

    def with_choices(self, choices: Mapping[str, Iterable[tuple[str, str]]]) -> CommandForm:
        """This form with the named fields offered as selects of (value, label) choices:
        e.g. the sessions of today for `session_id`."""
        offered = {
            name: tuple(Option(v, label) for v, label in pairs) for name, pairs in choices.items()
        }
        for name in offered:
            self.field(name)  # raises for an unknown field
        return replace(self, items=_with_options(self.items, offered))


def _walk(items: Iterable[FormField | FormGroup]) -> Iterator[FormField]:
    for item in items:
        if isinstance(item, FormGroup):
            yield from item.fields()
        else:
            yield item


def _with_options(
    items: tuple[FormField | FormGroup, ...], offered: Mapping[str, tuple[Option, ...]]
) -> tuple[FormField | FormGroup, ...]:
    out: list[FormField | FormGroup] = []
    for item in items:
        if isinstance(item, FormGroup):
            out.append(replace(item, items=_with_options(item.items, offered)))
        elif item.name in offered:
            out.append(replace(item, kind="select", options=offered[item.name], maxlength=None))
        else:
            out.append(item)
    return tuple(out)


# --- building a form from a model ------------------------------------------------------


@dataclass(frozen=True)
class FieldType:
    """A field's type with `Annotated` and `| None` taken off, and the constraints found."""

    tp: Any
    optional: bool
    constraints: tuple[Any, ...]


def field_type(annotation: Any, metadata: Sequence[Any] = ()) -> FieldType:
    constraints = list(metadata)
    optional = False
    tp = annotation
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp, *extra = get_args(tp)
            for item in extra:
                if isinstance(item, FieldInfo):
                    constraints.extend(item.metadata)
                else:
                    constraints.append(item)
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != len(get_args(tp)):
                optional = True
            if len(rest) != 1:
                return FieldType(tp, optional, tuple(constraints))
            tp = rest[0]
        else:
            return FieldType(tp, optional, tuple(constraints))


def _limit(constraints: Iterable[Any], attr: str) -> Any:
    for c in constraints:
        value = getattr(c, attr, None)
        if value is not None:
            return value
    return None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _sequence_item(tp: Any) -> Any | None:
    """The item type of a list or tuple-of-any-length type, else None."""
    origin = get_origin(tp)
    if origin is list:
        return get_args(tp)[0]
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def _own_doc(tp: Any) -> str | None:
    """A class's own docstring, first paragraph, on one line; None when it has none."""
    doc = vars(tp).get("__doc__") if isinstance(tp, type) else None
    if not doc:
        return None
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split())


def option_label(value: Any) -> str:
    """How a choice is shown: levels of care as the ASAM Criteria name them."""
    if isinstance(value, LevelOfCare):
        return level_display(value, DISPLAY_EDITION)
    if isinstance(value, AsamEdition):
        return EDITION_NAMES[value]
    raw = value.value if isinstance(value, enum.Enum) else value
    return humanise(str(raw))


def _options(tp: Any) -> tuple[Option, ...] | None:
    if _is_enum(tp):
        members = [m for m in tp if not (isinstance(m, LevelOfCare) and m in MERGED_LEVELS)]
        return tuple(Option(str(m.value), option_label(m)) for m in members)
    if get_origin(tp) is Literal:
        return tuple(Option(str(v), option_label(v)) for v in get_args(tp))
    return None


def _json_help(item: Any) -> str:
    if _is_model(item):
        names = ", ".join(item.model_fields)
        doc = _own_doc(item)
        text = f"JSON: a list of objects with the fields {names}."
        return f"{doc} {text}" if doc else text
    return "JSON: a list."


def _join(*parts: str | None) -> str | None:
    text = " ".join(p for p in parts if p)
    return text or None


def _field(
    name: str, info: FieldInfo, example: Any, *, in_path: bool = False
) -> FormField | FormGroup:
    t = field_type(info.annotation, info.metadata)
    required = info.is_required()
    description = info.description
    default = None if info.default is PydanticUndefined else info.default
    label = humanise(name.rsplit(".", 1)[-1])
    base = FormField(name=name, label=label, kind="text", required=required, in_path=in_path)
    tp = t.tp

    if _is_model(tp) and not t.optional and len(tp.model_fields) <= FLATTEN_AT_MOST:
        sub_example = example if isinstance(example, Mapping) else {}
        return FormGroup(
            name=name,
            legend=label,
            help=_join(description, _own_doc(tp)),
            items=_model_items(tp, prefix=name + ".", example=sub_example),
        )
    options = _options(tp)
    if options is not None:
        return replace(
            base,
            kind="select",
            help=_join(description, _own_doc(tp)),
            options=options,
            default=_form_scalar(default),
        )
    if tp is bool:
        if t.optional:
            yes_no = (Option("true", "Yes"), Option("false", "No"))
            return replace(
                base,
                kind="select",
                help=description,
                options=yes_no,
                nullable_bool=True,
                default=_form_scalar(default),
            )
        # An unticked box is an answer (no): never a missing value.
        return replace(
            base, required=False, kind="checkbox", help=description, default=bool(default)
        )
    if tp in (int, float):
        low = _limit(t.constraints, "ge")
        high = _limit(t.constraints, "le")
        return replace(
            base,
            kind="number",
            help=description,
            number_type=tp.__name__,
            step="1" if tp is int else "any",
            min=None if low is None else str(low),
            max=None if high is None else str(high),
            default=_form_scalar(default),
        )
    if tp is datetime:
        return replace(base, kind="datetime-local", help=description)
    if tp is date:
        return replace(base, kind="date", help=description, default=_form_scalar(default))
    if tp is str:
        longest = _limit(t.constraints, "max_length")
        long_text = longest is not None and longest >= TEXTAREA_FROM
        return replace(
            base,
            kind="textarea" if long_text else "text",
            help=description,
            maxlength=longest,
            default=_form_scalar(default),
        )
    item = _sequence_item(tp)
    if item is not None:
        inner = field_type(item)
        item_options = _options(inner.tp)
        listed = [_form_scalar(v) for v in default or ()]
        if item_options is not None:
            return replace(
                base,
                kind="checkboxes",
                help=_join(description, _own_doc(inner.tp)),
                options=item_options,
                default=[v for v in listed if isinstance(v, str)],
            )
        if inner.tp is str:
            return replace(
                base,
                kind="lines",
                help=_join(description, "One per line."),
                maxlength=None,
                default="\n".join(v for v in listed if isinstance(v, str)) or None,
            )
        return replace(
            base,
            kind="json",
            help=_join(description, _json_help(inner.tp)),
            default=_json_text(example if example is not None else default),
        )
    # A model too large (or optional) to flatten, a mapping, anything else: JSON.
    return replace(
        base,
        kind="json",
        help=_join(description, _own_doc(tp), "JSON."),
        default=_json_text(example if example is not None else default),
    )


def _form_scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2)
    if isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
        return json.dumps([v.model_dump(mode="json") for v in value], indent=2)
    return json.dumps(value, indent=2, default=str)


def _model_items(
    model: type[BaseModel], *, prefix: str, example: Mapping[str, Any]
) -> tuple[FormField | FormGroup, ...]:
    names = [n for n in model.model_fields if n != REASON]
    if REASON in model.model_fields:
        names.append(REASON)
    return tuple(_field(prefix + n, model.model_fields[n], example.get(n)) for n in names)


@cache
def form_for(kind: str) -> CommandForm:
    """The form of a staff command, by type (`record_attendance`) or CLI name."""
    spec = spec_for(kind)
    path_items = tuple(
        _field(name, spec.command.model_fields[name], None, in_path=True)
        for name in spec.path_params
    )
    body_items = _model_items(spec.request_model, prefix="", example=spec.body_example)
    return CommandForm(spec=spec, items=path_items + body_items)
