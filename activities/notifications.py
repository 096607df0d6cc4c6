"""Notifications about what an episode's events make due or overdue, sent once per event.

Messages carry no clinical detail: the episode reference, what is due or overdue, by
when, and a link for staff. Each notification has a key derived from its event and
recipient (`episode:seq:recipient`); the `notifications_sent` ledger records delivered
keys, so a retried activity skips what it already sent, and channels that can
deduplicate (the webhook's `webhook-id`, e-mail's Message-ID) get the same reference
again if the activity failed between sending and recording.

Staff notices come from events that carry a `notify` tuple. Family and external parties
are only contacted through a `party_notified` event - which the domain emits only under
an active consent - and only if that consent is still active when the message goes out.
What leaves for them, and what the log says about them, names neither the episode nor
the recipient's reference (that reference links a person to a Part 2 program): they get
an opaque reference, a digest of the key, which staff can look up (docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import Channel, LogChannel, NotificationRejected
from activities.metrics import NOTIFICATIONS_FAILED, NOTIFICATIONS_SENT
from domain.events import Event, PartyNotified
from store.db import Pool
from workflows.messages import SEND_NOTIFICATIONS_ACTIVITY, NotifyInput, NotifyResult

log = structlog.get_logger("carepath.notifications")

# What staff are told, by event type; nothing clinical, only what is due or overdue.
_SUBJECTS = {
    "initial_plan_overdue": "initial treatment plan overdue",
    "plan_review_due_soon": "treatment plan review due",
    "plan_review_overdue": "treatment plan review overdue",
    "hold_review_overdue": "hold review overdue",
    "phase_review_due": "phase review due",
}
_EXTERNAL_SUBJECT = "an update from the care team"


@dataclass(frozen=True)
class Notification:
    """One message for one recipient about one event; `key` makes a repeat detectable."""

    key: str
    episode_id: str
    seq: int
    recipient: str
    subject: str
    due_at: datetime | None
    link: str | None = None
    # Set for family and external recipients: the consent the disclosure rests on.
    consent_id: str | None = None

    @property
    def external(self) -> bool:
        return self.consent_id is not None

    @property
    def reference(self) -> str:
        """What identifies this notification outside the ledger (webhook id, message
        `key`, log lines): the key for staff; for family and external parties a digest
        of it, which names neither the episode nor the recipient."""
        return external_reference(self.key) if self.external else self.key

    @property
    def recipient_label(self) -> str:
        """The recipient as log lines name it: staff in full, others by kind only."""
        return self.recipient.split(":", 1)[0] if self.external else self.recipient

    def message(self) -> dict[str, Any]:
        """The JSON body a webhook receives."""
        body: dict[str, Any] = {
            "key": self.reference,
            "recipient": self.recipient,
            "subject": self.subject,
            "due_at": self.due_at.isoformat() if self.due_at else None,
        }
        if not self.external:
            # External parties get no episode reference: the consent covers a notice only.
            body.update(episode_id=self.episode_id, seq=self.seq, link=self.link)
        return body

    def text(self) -> str:
        """The plain-text form (e-mail body)."""
        if self.external:
            return (
                f"You have {self.subject}. Please contact the program for details.\n"
                f"Reference: {self.reference}\n"
            )
        due = f" by {self.due_at.isoformat()}" if self.due_at else ""
        lines = [f"CarePath: {self.subject}{due}.", f"Episode: {self.episode_id}"]
        if self.link:
            lines.append(f"Open: {self.link}")
        return "\n".join(lines) + "\n"

    def log_fields(self) -> dict[str, Any]:
        """What a log line says about this notification: no family or external party's
        reference (the episode id stays: log lines do not leave CarePath's operators)."""
        return {
            "key": self.reference,
            "episode_id": self.episode_id,
            "recipient": self.recipient_label,
            "subject": self.subject,
            "due_at": self.due_at.isoformat() if self.due_at else None,
        }


def external_reference(key: str) -> str:
    """The opaque reference of a family or external party's notification with `key`.

    A SHA-256 digest: stable (a resend carries the same one, so the receiver can drop
    it), and without the episode's UUID nobody can derive it from the recipient.
    """
    return "ref-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def notifications_for(inp: NotifyInput, link_base: str | None = None) -> list[Notification]:
    """The notifications an event batch calls for: staff named in `notify`, and the
    recipient of each `party_notified` event."""
    out: list[Notification] = []
    for event in inp.events:
        if isinstance(event, PartyNotified):
            name = f"{event.recipient_kind.value}:{event.recipient_ref}"
            out.append(
                _notification(
                    event, name, _EXTERNAL_SUBJECT, due_at=None, consent_id=event.consent_id
                )
            )
            continue
        link = f"{link_base.rstrip('/')}/episodes/{event.episode_id}" if link_base else None
        recipients: Sequence[Any] = getattr(event, "notify", ())
        for recipient in recipients:
            name = str(getattr(recipient, "value", recipient))
            if name == "primary_clinician" and inp.primary_clinician:
                name = f"primary_clinician:{inp.primary_clinician}"
            out.append(
                _notification(event, name, _subject(event), due_at=_due_at(event), link=link)
            )
    return out


def _notification(event: Event, recipient: str, subject: str, **extra: Any) -> Notification:
    """One message about `event` to `recipient`; its key makes a resend detectable."""
    return Notification(
        key=f"{event.episode_id}:{event.seq}:{recipient}",
        episode_id=event.episode_id,
        seq=event.seq,
        recipient=recipient,
        subject=subject,
        **extra,
    )


def _subject(event: Event) -> str:
    if event.type == "escalation_raised":
        kind = str(getattr(event, "task_kind", "task")).replace("_", " ")
        return f"{kind} task due (escalation level {getattr(event, 'level', 1)})"
    return _SUBJECTS.get(event.type, event.type.replace("_", " "))


def _due_at(event: Event) -> datetime | None:
    for field in (
        "due_at",
        "review_due_at",
        "plan_due_at",
        "closes_at",
        "ends_at",
        "planned_end",
    ):
        value = getattr(event, field, None)
        if isinstance(value, datetime):
            return value
    return None


class NotificationLedger:
    """`notifications_sent` and the consents read model, through the store's pool."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def already_sent(self, key: str) -> bool:
        async with self._pool.acquire() as conn:
            found = await conn.fetchval(
                "SELECT 1 FROM notifications_sent WHERE notification_key = $1", key
            )
        return found is not None

    async def record(self, notification: Notification, channel: str) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO notifications_sent "
                "(notification_key, episode_id, seq, recipient, channel) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (notification_key) DO NOTHING",
                notification.key,
                notification.episode_id,
                notification.seq,
                notification.recipient,
                channel,
            )

    async def consent_active(self, episode_id: str, consent_id: str, at: datetime) -> bool:
        """True if the consent exists, is not revoked and has not expired at `at`.

        Read from the episode's stored events, not from the consents read model, which
        the projector may not have brought up to date yet: a revocation stored a moment
        ago already withholds the message.
        """
        async with self._pool.acquire() as conn:
            active = await conn.fetchval(_CONSENT_ACTIVE, episode_id, consent_id, at)
        return bool(active)


# The consent's last record is unexpired at $3 and no revocation follows it.
_CONSENT_ACTIVE = (
    "WITH c AS (SELECT seq, event_type, payload FROM events WHERE episode_id = $1 "
    "AND event_type IN ('consent_recorded', 'consent_revoked') AND payload->>'consent_id' = $2), "
    "last AS (SELECT seq, payload FROM c WHERE event_type = 'consent_recorded' "
    "ORDER BY seq DESC LIMIT 1) "
    "SELECT (last.payload->>'expires_at')::timestamptz > $3 AND NOT EXISTS "
    "(SELECT 1 FROM c WHERE c.event_type = 'consent_revoked' AND c.seq > last.seq) FROM last"
)


class NotificationActivities:
    """The notification activity; channel, ledger and link base are injected by the worker.

    Without a ledger (unit tests) every attempt sends, and consents are taken as the
    domain checked them when the event was recorded.
    """

    def __init__(
        self,
        channel: Channel | None = None,
        ledger: NotificationLedger | None = None,
        link_base: str | None = None,
    ) -> None:
        self._channel = channel or LogChannel()
        self._ledger = ledger
        self._link_base = link_base

    @activity.defn(name=SEND_NOTIFICATIONS_ACTIVITY)
    async def send_notifications(self, inp: NotifyInput) -> NotifyResult:
        """Send each notification once; retryable failures propagate so Temporal retries."""
        sent = skipped = withheld = 0
        refused: list[str] = []
        for note in notifications_for(inp, self._link_base):
            if self._ledger is not None and await self._ledger.already_sent(note.key):
                skipped += 1
                continue
            if not await self._consented(note):
                withheld += 1
                log.warning(
                    "notification_withheld",
                    key=note.reference,
                    episode_id=note.episode_id,
                    reason="consent not active",
                )
                continue
            try:
                await self._channel.send(note)
            except NotificationRejected as err:
                NOTIFICATIONS_FAILED.labels(channel=self._channel.name, kind="rejected").inc()
                refused.append(str(err))
                continue
            except Exception:
                # Temporal retries the activity; the ledger makes the retry skip what went out.
                NOTIFICATIONS_FAILED.labels(channel=self._channel.name, kind="error").inc()
                raise
            NOTIFICATIONS_SENT.labels(channel=self._channel.name).inc()
            if self._ledger is not None:
                await self._ledger.record(note, self._channel.name)
            log.info("notification_sent", channel=self._channel.name, **note.log_fields())
            sent += 1
        if refused:
            # Everything else in the batch went out; what was refused needs a settings fix.
            raise ApplicationError(
                f"{len(refused)} notification(s) refused: {refused[0]}",
                type="NotificationRejected",
                non_retryable=True,
            )
        return NotifyResult(sent=sent, already_sent=skipped, withheld=withheld)

    async def _consented(self, note: Notification) -> bool:
        if note.consent_id is None or self._ledger is None:
            return True
        return await self._ledger.consent_active(
            note.episode_id, note.consent_id, datetime.now(UTC)
        )
