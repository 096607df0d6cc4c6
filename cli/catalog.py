"""The staff commands as the command line offers them, from a committed catalog.

`carepath episode record-assessment EPISODE --asam-edition ...` and every other staff
command are generated from their pydantic request models (`api.command_specs`): one option
per field, with its type, whether it is required, its choices, its description and an
example. Building those models imports the whole domain, which takes longer than the
start of a command may (about 0.6 s against a budget of 0.3 s), so the options are
generated once into `cli/command_catalog.json`, committed, and read from there.
`tests/unit/test_command_catalog.py` fails when the catalog drifts from the models;
regenerate it with

    python -m cli.catalog

Each entry: `name` (the subcommand), `kind`, `summary`, `description`, `path` (under
/episodes/{id}), `path_params` (positional arguments after EPISODE), `roles`, `example`
(a whole body) and `fields`, each with `name`, `type` (as shown in `--help`), `json`
(parsed as JSON, `@file` allowed), `kind` (string, integer, number, boolean, json),
`required`, `choices`, `help` and `example` (as typed on the command line).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_FILE = Path(__file__).with_name("command_catalog.json")


@cache
def load_catalog() -> tuple[dict[str, Any], ...]:
    """The committed catalog (standard library only: no model is imported)."""
    entries: list[dict[str, Any]] = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    return tuple(entries)


def build_catalog() -> list[dict[str, Any]]:
    """The catalog from the command models (imports the domain)."""
    from api.command_specs import command_specs

    entries = []
    for spec in command_specs():
        schema = spec.request_model.model_json_schema()
        required = set(schema.get("required", ()))
        defs = schema.get("$defs", {})
        fields = [
            _field(name, prop, defs, name in required, spec.body_example.get(name))
            for name, prop in schema.get("properties", {}).items()
        ]
        entries.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "summary": spec.summary,
                "description": (spec.command.__doc__ or spec.kind).strip(),
                "path": spec.path,
                "path_params": list(spec.path_params),
                "path_example": {k: str(v) for k, v in spec.path_example.items()},
                "roles": sorted(role.value for role in spec.roles),
                "example": spec.body_example,
                "fields": fields,
            }
        )
    return entries


def render(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref")
    if ref:
        return {**defs[ref.rsplit("/", 1)[-1]], **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _field(
    name: str, prop: dict[str, Any], defs: dict[str, Any], required: bool, example: Any
) -> dict[str, Any]:
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
    shape = _resolve(options[0] if len(options) == 1 else prop, defs)
    kind, shown, choices = _kind(shape, defs)
    description = prop.get("description") or shape.get("description") or ""
    if len(options) == 1 and "$ref" in options[0] and prop.get("description") is None:
        description = ""  # the enum's or model's own docstring is about the type, not the field
    if not description and name == "reason":
        description = "why, in free text; kept with the event"
    if example is None:
        example = prop.get("default") if prop.get("default") is not None else _sample(shape, defs)
    return {
        "name": name,
        "option": "--" + name.replace("_", "-"),
        "type": shown,
        "kind": kind,
        "json": kind == "json",
        "required": required,
        "choices": choices,
        "help": " ".join(description.split()),
        "default": prop.get("default"),
        "example": example if kind != "json" else json.dumps(example, separators=(", ", ": ")),
    }


def _kind(shape: dict[str, Any], defs: dict[str, Any]) -> tuple[str, str, list[str] | None]:
    if "enum" in shape:
        return "string", "choice", [str(v) for v in shape["enum"]]
    kind = shape.get("type")
    if kind == "string":
        fmt = shape.get("format")
        return (
            "string",
            {"date-time": "ISO 8601 time with offset", "date": "date"}.get(fmt or "", "text"),
            None,
        )
    if kind == "integer":
        return "integer", "integer", None
    if kind == "number":
        return "number", "number", None
    if kind == "boolean":
        return "boolean", "boolean", None
    if kind == "array":
        item = _resolve(shape.get("items", {}), defs)
        inner = "choice" if "enum" in item else item.get("type", "value")
        choices = [str(v) for v in item["enum"]] if "enum" in item else None
        return "json", f"JSON list of {inner}", choices
    title = shape.get("title", "object")
    return "json", f"JSON object ({title})", None


def _sample(shape: dict[str, Any], defs: dict[str, Any]) -> Any:
    """An example value of a field the command's declared example leaves out."""
    shape = _resolve(shape, defs)
    if "enum" in shape:
        return shape["enum"][0]
    kind = shape.get("type")
    if kind == "string":
        fmt = shape.get("format")
        return {"date-time": "2026-03-02T09:00:00-05:00", "date": "2026-03-02"}.get(
            fmt or "", "free text"
        )
    if kind == "integer":
        return max(shape.get("minimum", 1), 1)
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_sample(shape.get("items", {}), defs)]
    return {
        name: _sample(prop, defs)
        for name, prop in shape.get("properties", {}).items()
        if name in shape.get("required", ())
    }


def main() -> None:
    CATALOG_FILE.write_text(render(build_catalog()), encoding="utf-8")
    print(f"wrote {CATALOG_FILE}")


if __name__ == "__main__":
    main()
