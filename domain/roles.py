"""Who may issue which command: the role groups the rules are registered with, and the check.

Each rule names the roles that may issue its command (`@rule(c.Discharge, roles=OVERSIGHT)`,
see `domain.rules`); this module holds those groups and checks an actor against them.
Auditors are read-only and issue no command; the system role issues only `Tick`.
Resolving an escalation task also depends on the task's level (see `check_may_resolve`).
"""

from __future__ import annotations

from domain.actors import Actor, Role
from domain.errors import CommandNotAllowed
from domain.rules import rule_for

_INTAKE = Role.INTAKE_COORDINATOR
_CLIN = Role.CLINICIAN
_SUP = Role.SUPERVISOR
_DIR = Role.CLINICAL_DIRECTOR

# Clinicians and those above them: clinical judgement and records.
CLINICAL = frozenset({_CLIN, _SUP, _DIR})
# Everyone who meets clients: intake coordinators as well as the clinical staff.
FRONT_DESK = frozenset({_INTAKE, _CLIN, _SUP, _DIR})
# Supervisors and the clinical director: overrides, discharge, case reviews.
OVERSIGHT = frozenset({_SUP, _DIR})
# Payer authorizations: intake coordinators deal with payers, with oversight.
INTAKE_AND_OVERSIGHT = frozenset({_INTAKE, _SUP, _DIR})
# The workflow's own timer.
SYSTEM = frozenset({Role.SYSTEM})

# Escalation tasks at or above this level need oversight to resolve (case reviews and up).
OVERSIGHT_TASK_LEVEL = 3


def _names(roles: frozenset[Role]) -> str:
    return " or ".join(sorted(role.value for role in roles))


def allowed_roles(command_type: str) -> frozenset[Role]:
    """The roles that may issue a command type, as its rule was registered."""
    return rule_for(command_type).roles


def check_allowed(command_type: str, actor: Actor) -> None:
    """Raise `CommandNotAllowed` unless the actor's role may issue this command type."""
    allowed = allowed_roles(command_type)
    if actor.role not in allowed:
        raise CommandNotAllowed(
            f"role {actor.role.value!r} may not {command_type.replace('_', ' ')}: "
            f"ask a user with role {_names(allowed)}"
        )


def check_may_resolve(level: int, actor: Actor) -> None:
    """Case reviews and higher need a supervisor or the clinical director."""
    if level >= OVERSIGHT_TASK_LEVEL and actor.role not in OVERSIGHT:
        raise CommandNotAllowed(
            f"a level-{level} escalation task needs oversight: ask a user with role "
            f"{_names(OVERSIGHT)} to resolve it"
        )
