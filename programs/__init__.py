"""Program definitions shipped with CarePath, and the loader that validates them.

A directory of definitions holds the current version of each program (`adult-iop.yaml`,
with its `version:`) and, under `versions/`, a copy of every version ever released
(`versions/adult-iop@1.yaml`, ...), the current ones included. When `versions/` exists
the loader checks the two against each other: a definition whose settings changed while
its `version:` did not, or a current version that was never recorded, is refused
(docs/programs.md). Old versions thus stay available: to show an episode's rules, or to
migrate an episode to.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from domain.errors import ProgramDefinitionInvalid
from domain.programs import (
    ProgramCatalog,
    ProgramDefinition,
    parse_program,
    program_digest,
    version_label,
)

BUILTIN_DIR = Path(__file__).parent
VERSIONS_DIR = "versions"
_SUFFIXES = {".yaml", ".yml", ".json"}
_ARCHIVED = re.compile(r"^(?P<id>[a-z0-9][a-z0-9-]{1,62})@(?P<version>[1-9][0-9]*)$")


def load_program_file(path: Path) -> ProgramDefinition:
    """Read and validate one YAML (or JSON) program definition; without a `version:` it
    is version 1."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgramDefinitionInvalid(f"{path}: cannot read the file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProgramDefinitionInvalid(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProgramDefinitionInvalid(f"{path}: expected a mapping at the top level")
    data.setdefault("version", 1)
    return parse_program(data, source=str(path))


def _definition_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in _SUFFIXES and p.is_file())


def load_versions(directory: Path) -> dict[tuple[str, int], ProgramDefinition]:
    """Every recorded version under `directory`, by (id, version); each file is named
    `<id>@<version>` and must hold that id and version."""
    recorded: dict[tuple[str, int], ProgramDefinition] = {}
    for path in _definition_files(directory):
        match = _ARCHIVED.match(path.stem)
        if match is None:
            raise ProgramDefinitionInvalid(
                f"{path}: a recorded version is named <id>@<version> (adult-iop@2.yaml)"
            )
        program = load_program_file(path)
        key = (match["id"], int(match["version"]))
        if (program.id, program.version) != key:
            raise ProgramDefinitionInvalid(
                f"{path}: holds {version_label(program.id, program.version)}, not "
                f"{version_label(*key)}: rename the file or fix its id and version"
            )
        if key in recorded:
            raise ProgramDefinitionInvalid(f"{path}: {version_label(*key)} is recorded twice")
        recorded[key] = program
    return recorded


def check_recorded(
    path: Path, program: ProgramDefinition, recorded: dict[tuple[str, int], ProgramDefinition]
) -> None:
    """Refuse a current definition that differs from its recorded copy (changed without a
    new version), that was never recorded, or that is older than a recorded version."""
    version = program.version or 1
    label = version_label(program.id, version)
    copy_hint = f"{VERSIONS_DIR}/{label}{path.suffix}"
    known = sorted(v for p, v in recorded if p == program.id)
    if known and version < known[-1]:
        raise ProgramDefinitionInvalid(
            f"{path}: is version {version}, but version {known[-1]} of {program.id} is "
            "recorded: the current file must be the latest version"
        )
    previous = recorded.get((program.id, version))
    if previous is None:
        raise ProgramDefinitionInvalid(
            f"{path}: {label} is not recorded: copy the file to {copy_hint} so that "
            "episodes admitted under it can always be shown "
            "(`carepath programs` reads versions from there)"
        )
    ours, theirs = program_digest(program), program_digest(previous)
    if ours != theirs:
        raise ProgramDefinitionInvalid(
            f"{path}: its settings differ from the recorded {label} (digest {ours[:12]}, "
            f"recorded {theirs[:12]}): a changed program is a new version: set "
            f"`version: {known[-1] + 1}` and copy the file to "
            f"{VERSIONS_DIR}/{version_label(program.id, known[-1] + 1)}{path.suffix}"
        )


def load_catalog(directory: Path | None = None) -> ProgramCatalog:
    """Load every `*.yaml`/`*.yml`/`*.json` definition in a directory (the built-in ones by
    default), with the versions recorded under its `versions/`, checked against them."""
    directory = directory or BUILTIN_DIR
    if not directory.is_dir():
        raise ProgramDefinitionInvalid(f"{directory}: not a directory of program definitions")
    programs: dict[str, ProgramDefinition] = {}
    paths: dict[str, Path] = {}
    for path in _definition_files(directory):
        program = load_program_file(path)
        if program.id in programs:
            raise ProgramDefinitionInvalid(f"{path}: program id {program.id!r} is defined twice")
        programs[program.id] = program
        paths[program.id] = path
    if not programs:
        raise ProgramDefinitionInvalid(f"{directory}: no program definitions found")
    archive = directory / VERSIONS_DIR
    recorded = load_versions(archive) if archive.is_dir() else {}
    if archive.is_dir():
        for program_id, program in programs.items():
            check_recorded(paths[program_id], program, recorded)
    return ProgramCatalog(programs, recorded)
