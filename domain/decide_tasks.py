"""Decisions about escalation tasks staff close: resolving one, with its outcome.

Tasks are opened by the escalation ladder (`domain.escalation`) after missed sessions,
overdue tasks, lost contact or a relapse; closing one is a staff command with a rule of
its own, and case reviews and above need oversight to close.
"""

from __future__ import annotations

from domain import commands_care as c
from domain import events as ev
from domain.emitter import Emitter
from domain.errors import TaskAlreadyResolved, UnknownReference
from domain.roles import CLINICAL, check_may_resolve
from domain.rules import rule


@rule(c.ResolveTask, roles=CLINICAL)
def resolve_task(em: Emitter, cmd: c.ResolveTask) -> None:
    task = em.state.task(cmd.task_id)
    if task is None:
        raise UnknownReference(
            f"episode {em.state.episode_id} has no task {cmd.task_id!r}: "
            "check the task id in the episode's open tasks"
        )
    if task.resolved:
        raise TaskAlreadyResolved(f"task {cmd.task_id!r} is already resolved: nothing to do")
    check_may_resolve(task.level, cmd.actor)
    em.emit(ev.TaskResolved, task_id=task.task_id, outcome=cmd.outcome)
