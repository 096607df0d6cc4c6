"""The role matrix: which role may issue which command.

Auditors are read-only and issue no command; the system role issues only `Tick`.
Resolving an escalation task also depends on the task's level (see `may_resolve`).
"""

from __future__ import annotations

from domain.actors import Actor, Role
from domain.errors import CommandNotAllowed

_INTAKE = Role.INTAKE_COORDINATOR
_CLIN = Role.CLINICIAN
_SUP = Role.SUPERVISOR
_DIR = Role.CLINICAL_DIRECTOR

_CLINICAL = frozenset({_CLIN, _SUP, _DIR})
_FRONT_DESK = frozenset({_INTAKE, _CLIN, _SUP, _DIR})
_OVERSIGHT = frozenset({_SUP, _DIR})

ALLOWED_ROLES: dict[str, frozenset[Role]] = {
    "refer_client": _FRONT_DESK,
    "start_screening": _FRONT_DESK,
    "record_screening": _FRONT_DESK,
    "refer_out": _FRONT_DESK,
    "record_assessment": _CLINICAL,
    "override_level_of_care": _OVERSIGHT,
    "admit_client": _CLINICAL,
    "record_treatment_plan": _CLINICAL,
    "advance_phase": _CLINICAL,
    "complete_plan_review": _CLINICAL,
    "place_on_hold": _CLINICAL,
    "resume_from_hold": _CLINICAL,
    "step_up": _CLINICAL,
    "record_relapse_prevention_plan": _CLINICAL,
    "record_aftercare_plan": _CLINICAL,
    "step_down": _CLINICAL,
    "discharge": _OVERSIGHT,
    "schedule_session": _FRONT_DESK,
    "reschedule_session": _FRONT_DESK,
    "cancel_session": _FRONT_DESK,
    "record_attendance": _CLINICAL,
    "correct_attendance": _CLINICAL,
    "resolve_task": _CLINICAL,
    "record_check_in": _FRONT_DESK,
    "report_relapse": _FRONT_DESK,
    "readmit_client": _CLINICAL,
    "record_consent": _FRONT_DESK,
    "revoke_consent": _FRONT_DESK,
    "notify_party": _CLINICAL,
    "record_authorization": frozenset({_INTAKE, _SUP, _DIR}),
    "tick": frozenset({Role.SYSTEM}),
}

# Escalation tasks at or above this level need oversight to resolve (case reviews and up).
OVERSIGHT_TASK_LEVEL = 3


def _names(roles: frozenset[Role]) -> str:
    return " or ".join(sorted(role.value for role in roles))


def check_allowed(command_type: str, actor: Actor) -> None:
    """Raise `CommandNotAllowed` unless the actor's role may issue this command type."""
    allowed = ALLOWED_ROLES[command_type]
    if actor.role not in allowed:
        raise CommandNotAllowed(
            f"role {actor.role.value!r} may not {command_type.replace('_', ' ')}: "
            f"ask a user with role {_names(allowed)}"
        )


def check_may_resolve(level: int, actor: Actor) -> None:
    """Case reviews and higher need a supervisor or the clinical director."""
    if level >= OVERSIGHT_TASK_LEVEL and actor.role not in _OVERSIGHT:
        raise CommandNotAllowed(
            f"a level-{level} escalation task needs oversight: ask a user with role "
            f"{_names(_OVERSIGHT)} to resolve it"
        )
