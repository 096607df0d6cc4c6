"""Program definitions shipped with CarePath, and the loader that validates them."""

from __future__ import annotations

from pathlib import Path

import yaml

from domain.errors import ProgramDefinitionInvalid
from domain.programs import ProgramCatalog, ProgramDefinition, parse_program

BUILTIN_DIR = Path(__file__).parent


def load_program_file(path: Path) -> ProgramDefinition:
    """Read and validate one YAML (or JSON) program definition."""
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
    return parse_program(data, source=str(path))


def load_catalog(directory: Path | None = None) -> ProgramCatalog:
    """Load every `*.yaml`/`*.yml`/`*.json` definition in a directory (the built-in ones by default)."""
    directory = directory or BUILTIN_DIR
    if not directory.is_dir():
        raise ProgramDefinitionInvalid(f"{directory}: not a directory of program definitions")
    files = sorted(
        p for p in directory.iterdir() if p.suffix in {".yaml", ".yml", ".json"} and p.is_file()
    )
    programs: dict[str, ProgramDefinition] = {}
    for path in files:
        program = load_program_file(path)
        if program.id in programs:
            raise ProgramDefinitionInvalid(f"{path}: program id {program.id!r} is defined twice")
        programs[program.id] = program
    if not programs:
        raise ProgramDefinitionInvalid(f"{directory}: no program definitions found")
    return ProgramCatalog(programs)
