"""The one-line summaries an episode's history shows in the Temporal UI and CLI.

A timer, an activity and a workflow start can each carry a summary. CarePath's name what
the timer waits for, what an activity is given, and which program and episode a workflow
is: identifiers and counts only, never a client reference or free text (docs/security.md).
Summaries are payloads, so the codec encrypts them like every other payload; the UI and
`temporal workflow show --codec-endpoint ...` read them through the codec server.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

# What each deadline kind (domain.deadlines.DEADLINE_RULES) waits for; `{ref}` is the
# deadline's reference (a session, task, check-in or authorization id).
_DEADLINE_WORDS = {
    "session_no_show": "no-show check for session {ref}",
    "task_due": "overdue check for task {ref}",
    "no_contact_review": "no-contact review",
    "weekly_hours_check": "weekly hours check",
    "initial_plan_due": "initial plan due",
    "plan_review_overdue": "plan review overdue",
    "plan_review_reminder": "plan review due",
    "hold_review_due": "hold review due",
    "check_in_closes": "{ref} closes",
    "authorization_reminder": "authorization {ref} expiry reminder",
    "phase_review_due": "phase review due",
}


def episode_summary(program_id: str, episode_id: str, readmission_of: str | None = None) -> str:
    """A workflow's static summary: its program and episode (and the episode it readmits)."""
    summary = f"{program_id} episode {episode_id}"
    return summary if readmission_of is None else f"{summary}, readmission of {readmission_of}"


def deadline_words(kind: str, ref: str | None) -> str:
    """What one pending deadline is, in a few words."""
    words = _DEADLINE_WORDS.get(kind)
    if words is None:
        return kind.replace("_", " ")
    if "{ref}" in words and ref is None:
        return words.replace(" {ref}", "").replace("{ref} ", "")
    return words.format(ref=ref)


def deadline_summary(
    pending: Iterable[tuple[str, datetime, str | None]], deadline: datetime
) -> str:
    """The deadline timer's summary: what falls due at `deadline`, the first item named
    and the others counted ("no-show check for session s-3 (+1 more)")."""
    due = [(kind, ref) for kind, at, ref in pending if at == deadline]
    if not due:
        return "next deadline"
    first = deadline_words(*due[0])
    return first if len(due) == 1 else f"{first} (+{len(due) - 1} more)"


def append_summary(count: int) -> str:
    """The append activity's summary; with no events it only asks the store."""
    if count == 0:
        return "look up an applied command"
    return f"append {count} event{'s' if count != 1 else ''}"


def notify_summary(count: int) -> str:
    """The notification activity's summary."""
    return f"notify {count} event{'s' if count != 1 else ''}"


READMISSION_RETRY_SUMMARY = "retry starting the readmission episode"
TICK_RETRY_SUMMARY = "retry the deadline after a store failure"
