"""Notifications for staff about what an episode's events make due or overdue.

Messages carry no clinical detail: the episode reference, what is due, by when, who it is
for. Channels are pluggable; the structured-log channel is the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from temporalio import activity

from carepath.domain.events import Event
from carepath.workflows.messages import SEND_NOTIFICATIONS_ACTIVITY, NotifyInput, NotifyResult

log = structlog.get_logger("carepath.notifications")


@dataclass(frozen=True)
class Notification:
    """One message for one recipient about one event; `key` makes a resend detectable."""

    key: str
    episode_id: str
    recipient: str
    subject: str
    due_at: datetime | None


class Channel(Protocol):
    async def send(self, notification: Notification) -> None: ...


class LogChannel:
    """Writes each notification as a structured log line (the embedded default)."""

    async def send(self, notification: Notification) -> None:
        log.info(
            "notification",
            key=notification.key,
            episode_id=notification.episode_id,
            recipient=notification.recipient,
            subject=notification.subject,
            due_at=notification.due_at.isoformat() if notification.due_at else None,
        )


def notifications_for(inp: NotifyInput) -> list[Notification]:
    """The notifications an event batch calls for: every event that names staff to notify."""
    out: list[Notification] = []
    for event in inp.events:
        recipients: Sequence[Any] = getattr(event, "notify", ())
        for recipient in recipients:
            name = str(getattr(recipient, "value", recipient))
            if name == "primary_clinician" and inp.primary_clinician:
                name = f"primary_clinician:{inp.primary_clinician}"
            out.append(
                Notification(
                    key=f"{event.episode_id}:{event.seq}:{name}",
                    episode_id=event.episode_id,
                    recipient=name,
                    subject=event.type.replace("_", " "),
                    due_at=_due_at(event),
                )
            )
    return out


def _due_at(event: Event) -> datetime | None:
    for field in ("due_at", "review_due_at", "plan_due_at", "closes_at", "ends_at"):
        value = getattr(event, field, None)
        if isinstance(value, datetime):
            return value
    return None


class NotificationActivities:
    def __init__(self, channel: Channel | None = None) -> None:
        self._channel = channel or LogChannel()

    @activity.defn(name=SEND_NOTIFICATIONS_ACTIVITY)
    async def send_notifications(self, inp: NotifyInput) -> NotifyResult:
        notes = notifications_for(inp)
        for note in notes:
            await self._channel.send(note)
        return NotifyResult(sent=len(notes))
