"""A catalog whose adult program has a second recorded version, to migrate episodes to.

The shipped programs are at version 1; tests of `migrate_program` need another version
of the same program. Version 2 here escalates after 2 consecutive no-shows instead of 3;
it is recorded but not current, so new referrals still get version 1.
"""

from __future__ import annotations

from domain.programs import ProgramCatalog, ProgramDefinition, parse_program
from programs import load_catalog


def adult_two_no_shows(version: int = 2) -> ProgramDefinition:
    adult = load_catalog().get("adult-iop")
    data = adult.model_dump(mode="json")
    data["version"] = version
    data["escalation"]["consecutive_no_shows"] = [1, 2]
    return parse_program(data)


def catalog_with_next_version() -> ProgramCatalog:
    """The shipped catalog, with adult-iop@2 recorded beside the current adult-iop@1."""
    shipped = load_catalog()
    current = {program_id: shipped.get(program_id) for program_id in shipped.ids()}
    history = {
        (program_id, version): shipped.version(program_id, version)
        for program_id in shipped.ids()
        for version in shipped.versions(program_id)
    }
    history[("adult-iop", 2)] = adult_two_no_shows()
    return ProgramCatalog(current, history)
