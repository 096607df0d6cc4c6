"""`carepath programs list|show|diff`: the program versions a catalog holds, one version's
settings, and what changed between two versions.

Plain functions that print text (or JSON with `as_json`) and return an exit code, to be
wired into the command line. A version is named `id@version` (`adult-iop@2`), `id` for
the current version, or by the path of a definition file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domain.errors import CarePathError
from domain.programs import (
    ProgramCatalog,
    ProgramDefinition,
    program_digest,
    version_label,
)
from programs import load_catalog, load_program_file

_MISSING = object()


def _fail(message: str) -> int:
    """Print the error as every command does (one line, or JSON under `--json`); 2, as
    `diff` answers when it could not compare."""
    from cli.output import print_error

    print_error(message)
    return 2


def _settings(program: ProgramDefinition) -> dict[str, Any]:
    """Every setting (defaults included), as JSON data."""
    data: dict[str, Any] = program.model_dump(mode="json")
    return data


def resolve(name: str, catalog: ProgramCatalog) -> ProgramDefinition:
    """The definition `name` names: a file path, `id@version` or `id` (current)."""
    path = Path(name)
    if path.suffix in {".yaml", ".yml", ".json"} and path.is_file():
        return load_program_file(path)
    program_id, _, version = name.partition("@")
    if not version:
        return catalog.get(program_id)
    if not version.isdigit():
        raise CarePathError(f"{name!r}: name a version as id@number, e.g. adult-iop@2")
    return catalog.version(program_id, int(version))


def list_programs(directory: Path | None = None, as_json: bool = False) -> int:
    """Every program with its current version, digest and recorded versions."""
    try:
        catalog = load_catalog(directory)
    except CarePathError as err:
        return _fail(err.message)
    rows: list[dict[str, Any]] = []
    for program_id in catalog.ids():
        current = catalog.get(program_id)
        rows.append(
            {
                "id": program_id,
                "name": current.name,
                "version": current.version,
                "digest": program_digest(current),
                "versions": list(catalog.versions(program_id)),
                "clinical": current.clinical,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'program':<18} {'version':>7}  {'digest':<12}  {'recorded':<10}  name")
    for row in rows:
        recorded = ",".join(str(v) for v in row["versions"]) or "-"
        print(
            f"{row['id']:<18} {row['version']!s:>7}  {row['digest'][:12]:<12}  "
            f"{recorded:<10}  {row['name']}"
        )
    return 0


def show_program(
    program_id: str,
    version: int | None = None,
    as_json: bool = False,
    directory: Path | None = None,
) -> int:
    """One version's settings (the current one when `version` is None)."""
    try:
        catalog = load_catalog(directory)
        program = (
            catalog.get(program_id) if version is None else catalog.version(program_id, version)
        )
    except CarePathError as err:
        return _fail(err.message)
    document = {
        "label": version_label(program.id, program.version),
        "digest": program_digest(program),
        "definition": _settings(program),
    }
    if as_json:
        print(json.dumps(document, indent=2))
        return 0
    print(f"{document['label']}  digest {document['digest']}")
    for key, value in flatten(document["definition"]).items():
        print(f"  {key} = {json.dumps(value)}")
    return 0


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Settings as dotted keys: sections by name, lists of records by their id or level
    (`phases[skills].duration`, `escalation.levels[2].notify`), other lists whole."""
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(data, list) and data and all(isinstance(i, dict) for i in data):
        keys = [i.get("id", i.get("level")) for i in data]
        if None not in keys and len(set(keys)) == len(keys):
            flat = {}
            for key, item in zip(keys, data, strict=True):
                flat.update(flatten(item, f"{prefix}[{key}]"))
            return flat
    return {prefix: data}


def setting_changes(old: ProgramDefinition, new: ProgramDefinition) -> list[tuple[str, Any, Any]]:
    """Each setting that differs, as (key, old value, new value); a value absent from one
    side is `None` there. `version` itself is left out."""
    before, after = flatten(_settings(old)), flatten(_settings(new))
    changes = []
    for key in sorted(set(before) | set(after)):
        if key == "version":
            continue
        a, b = before.get(key, _MISSING), after.get(key, _MISSING)
        if a != b:
            changes.append((key, None if a is _MISSING else a, None if b is _MISSING else b))
    return changes


def diff_programs(a: str, b: str, as_json: bool = False, directory: Path | None = None) -> int:
    """Print what changed from version `a` to version `b`; 0 when nothing did, 1 when
    settings changed (like `diff`), 2 on an error."""
    try:
        catalog = load_catalog(directory)
        old, new = resolve(a, catalog), resolve(b, catalog)
    except CarePathError as err:
        return _fail(err.message)
    changes = setting_changes(old, new)
    if as_json:
        print(
            json.dumps(
                {
                    "from": version_label(old.id, old.version),
                    "to": version_label(new.id, new.version),
                    "from_digest": program_digest(old),
                    "to_digest": program_digest(new),
                    "changes": [{"setting": k, "from": x, "to": y} for k, x, y in changes],
                },
                indent=2,
            )
        )
        return 1 if changes else 0
    print(f"{version_label(old.id, old.version)} -> {version_label(new.id, new.version)}")
    if not changes:
        print("  no setting changed")
        return 0
    for key, before, after in changes:
        print(f"  {key}: {json.dumps(before)} -> {json.dumps(after)}")
    return 1
