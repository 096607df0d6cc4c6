"""Decisions about escalation tasks staff close: resolving one, with its outcome.

Tasks are opened by the escalation ladder (`domain.escalation`) after missed sessions,
overdue tasks, lost contact or a relapse; closing one is a staff command with a rule of
its own, and case reviews and above need oversight to close. A task that a higher task of
its concern superseded is no longer open: resolving it is refused, naming the task that
now stands for the concern, so staff close the task that is actually open.
"""

from __future__ import annotations

from domain import commands_care as c
from domain import events as ev
from domain.emitter import Emitter
from domain.errors import TaskAlreadyResolved, TaskSuperseded, UnknownReference
from domain.roles import CLINICAL, check_may_resolve
from domain.rules import rule
from domain.state import EpisodeState, Task


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
    if task.superseded_by is not None:
        current = _replacement(em.state, task)
        then = (
            "which is already resolved: nothing to do"
            if current.resolved
            else f"(level {current.level} {current.kind.value}): resolve that one instead"
        )
        raise TaskSuperseded(
            f"task {cmd.task_id!r} was escalated and replaced by task {task.superseded_by!r}; "
            f"its {task.concern} concern now stands at task {current.task_id!r} {then}"
        )
    check_may_resolve(task.level, cmd.actor)
    em.emit(ev.TaskResolved, task_id=task.task_id, outcome=cmd.outcome)


def _replacement(state: EpisodeState, task: Task) -> Task:
    """The last task in the chain of tasks that superseded `task`."""
    while task.superseded_by is not None:
        following = state.task(task.superseded_by)
        if following is None:  # pragma: no cover - a superseding task is always raised first
            break
        task = following
    return task
