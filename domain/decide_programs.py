"""Decisions about the program version an episode runs under.

An episode keeps the version it was referred under for its whole life; moving it to
another version is an explicit, audited command. The move is refused when the new
version could not carry the episode on from where it is: another program or level of
care, a phase it no longer defines, fewer escalation levels than the open tasks need.
"""

from __future__ import annotations

from domain import events as ev
from domain.commands_programs import MigrateProgram
from domain.decide_intake import admission_rules
from domain.emitter import Emitter
from domain.errors import InvalidCommand, ProgramVersionIncompatible, ProgramVersionUnchanged
from domain.programs import ProgramDefinition, program_digest, program_document, version_label
from domain.roles import OVERSIGHT
from domain.rules import rule
from domain.state import EpisodeState
from domain.vocabulary import FIRST_RULES


def incompatibilities(state: EpisodeState, program: ProgramDefinition) -> list[str]:
    """Why `program` cannot carry the episode on from its current state (empty: it can)."""
    reasons = []
    if program.id != state.program_id:
        reasons.append(
            f"it is a version of {program.id!r}, not of the episode's program {state.program_id!r}"
        )
    if state.phase_id is not None and state.phase_id not in {p.id for p in program.phases}:
        reasons.append(f"it does not define the episode's current phase {state.phase_id!r}")
    if state.admitted_at is not None and (state.rules.timezone or "UTC") != program.timezone:
        reasons.append(
            f"it moves the clinic to time zone {program.timezone!r}, but the episode's weeks "
            f"are counted in {state.rules.timezone or 'UTC'!r}"
        )
    open_levels = [t.level for t in state.tasks if t.is_open]
    if open_levels and max(open_levels) > program.escalation.top_level:
        reasons.append(
            f"it defines {program.escalation.top_level} escalation level(s), but the episode "
            f"has an open level-{max(open_levels)} task"
        )
    return reasons


@rule(MigrateProgram, roles=OVERSIGHT)
def migrate_program(em: Emitter, cmd: MigrateProgram) -> None:
    program = cmd.program
    if program is None or program.version != cmd.to_version:
        raise InvalidCommand(
            f"the definition of version {cmd.to_version} was not supplied: send the command "
            "through the API or the CLI, which look the version up in the program catalog"
        )
    state, current = em.state, em.program
    if program.level_of_care is not current.level_of_care:
        raise ProgramVersionIncompatible(
            f"{version_label(program.id, program.version)} is a {program.level_of_care.value} "
            f"program, the episode's is {current.level_of_care.value}: refer the client to "
            "the other level of care instead"
        )
    reasons = incompatibilities(state, program)
    if reasons:
        raise ProgramVersionIncompatible(
            f"episode {state.episode_id} cannot move to "
            f"{version_label(program.id, program.version)}: " + "; ".join(reasons)
        )
    digest = program_digest(program)
    if program.version == state.program_version and digest == state.program_digest:
        raise ProgramVersionUnchanged(
            f"episode {state.episode_id} already runs under "
            f"{version_label(program.id, program.version)}: name another version"
        )
    admitted = state.admitted_at is not None
    em.emit(
        ev.ProgramMigrated,
        program_id=program.id,
        from_version=state.program_version,
        to_version=cmd.to_version,
        from_digest=state.program_digest,
        to_digest=digest,
        definition=program_document(program),
        rules=admission_rules(program, state.rules.revision or FIRST_RULES) if admitted else None,
    )
