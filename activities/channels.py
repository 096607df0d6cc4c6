"""Delivery channels for notifications: structured log, signed webhook, SMTP.

The webhook follows Standard Webhooks: `webhook-id` (the notification's stable
reference, for deduplication), `webhook-timestamp` (the attempt's time, so a receiver can
refuse a replayed request) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
`id.timestamp.body`, one per active secret while a secret is being rotated).

A channel raises `NotificationDeliveryFailed` when trying again later may work (the
activity fails and Temporal retries it with backoff) and `NotificationRejected` when it
will not (a 4xx answer, an unknown address): the activity then fails without retrying.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import smtplib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import httpx
import structlog
from standardwebhooks import Webhook

from domain.errors import CarePathError
from store.chain import canonical_json

if TYPE_CHECKING:
    from activities.notifications import Notification

log = structlog.get_logger("carepath.notifications")

WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
# Before Standard Webhooks: HMAC of the body alone (no timestamp, so replayable). Sent
# only while CAREPATH_NOTIFY_WEBHOOK_LEGACY_SIGNATURE is on, for receivers not yet moved.
LEGACY_SIGNATURE_HEADER = "X-CarePath-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
WEBHOOK_SECRET_PREFIX = "whsec_"
# Answers worth retrying: timeouts, "too early", rate limits, and every 5xx.
_RETRYABLE_STATUS = frozenset({408, 425, 429})


class NotificationDeliveryFailed(CarePathError):
    """Raised when a channel could not deliver now (unreachable, timeout, 5xx); retrying may help."""


class NotificationRejected(CarePathError):
    """Raised when a channel refuses a notification for good (4xx, no address for the
    recipient): fix the channel's settings; retrying the same message cannot help."""


class Channel(Protocol):
    """Delivers one notification; `name` is recorded in `notifications_sent`."""

    name: str

    async def send(self, notification: Notification) -> None: ...


class LogChannel:
    """Writes each notification as a structured log line (the embedded default)."""

    name = "log"

    async def send(self, notification: Notification) -> None:
        log.info("notification", **notification.log_fields())


def sign_body(secret: bytes, body: bytes) -> str:
    """The legacy signature header's value: `sha256=` and the HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def webhook_secret_bytes(secret: str) -> bytes:
    """The key bytes of a webhook secret: a Standard Webhooks `whsec_<base64>` secret is
    decoded; any other string (secrets set before) is used as its UTF-8 bytes."""
    if secret.startswith(WEBHOOK_SECRET_PREFIX):
        encoded = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    return secret.encode("utf-8")


def webhook_signature(
    secrets: Sequence[bytes], msg_id: str, timestamp: datetime, body: bytes
) -> str:
    """The `webhook-signature` value: `v1,<base64 HMAC>` per secret, space-separated."""
    text = body.decode("utf-8")
    return " ".join(Webhook(secret).sign(msg_id, timestamp, text) for secret in secrets)


class WebhookChannel:
    """POSTs the message as JSON, signed per Standard Webhooks.

    The body and `webhook-id` are the same on every attempt, so a receiver can drop a
    repeat by that id; the timestamp is each attempt's own, so a retry an hour later is
    not mistaken for a replay. `previous_secrets` add a signature each while receivers
    move to a new secret.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: bytes,
        timeout: float = 10.0,
        *,
        previous_secrets: Sequence[bytes] = (),
        legacy_signature: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._url = url
        self._secret = secret
        self._secrets = (secret, *previous_secrets)
        self._timeout = timeout
        self._legacy = legacy_signature
        self._clock = clock
        self._host = urlsplit(url).hostname or "?"

    def headers(self, notification: Notification, body: bytes) -> dict[str, str]:
        """The headers of one attempt to deliver `body`."""
        # Whole seconds: the signed timestamp and the header must be the same number.
        at = self._clock().astimezone(UTC).replace(microsecond=0)
        msg_id = notification.reference
        headers = {
            "Content-Type": "application/json",
            WEBHOOK_ID_HEADER: msg_id,
            WEBHOOK_TIMESTAMP_HEADER: str(int(at.timestamp())),
            WEBHOOK_SIGNATURE_HEADER: webhook_signature(self._secrets, msg_id, at, body),
            IDEMPOTENCY_HEADER: msg_id,
        }
        if self._legacy:
            headers[LEGACY_SIGNATURE_HEADER] = sign_body(self._secret, body)
        return headers

    async def send(self, notification: Notification) -> None:
        body = canonical_json(notification.message())
        headers = self.headers(notification, body)
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotificationDeliveryFailed(
                f"webhook at {self._host} unreachable ({type(exc).__name__}): "
                "the activity retries; check CAREPATH_NOTIFY_WEBHOOK_URL if it persists"
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status in _RETRYABLE_STATUS:
            raise NotificationDeliveryFailed(
                f"webhook at {self._host} answered {status}; the activity retries"
            )
        raise NotificationRejected(
            f"webhook at {self._host} refused the notification with {status}: check the "
            "receiver's configuration and CAREPATH_NOTIFY_WEBHOOK_SECRET"
        )


class SmtpChannel:
    """Sends a plain-text e-mail per notification through an SMTP relay (in a thread).

    The Message-ID is derived from the notification key, so a repeat after a retry carries
    the same id and mail systems that deduplicate by it show it once.
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Mapping[str, str],
        default_recipient: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._recipients = dict(recipients)
        self._default = default_recipient
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout

    def address_for(self, recipient: str) -> str:
        """The e-mail address of `recipient`: exact, then by its kind (before `:`), then default."""
        address = (
            self._recipients.get(recipient)
            or self._recipients.get(recipient.split(":", 1)[0])
            or self._default
        )
        if address is None:
            raise NotificationRejected(
                f"no e-mail address for recipient {recipient!r}: add it to "
                "CAREPATH_SMTP_RECIPIENTS or set CAREPATH_SMTP_DEFAULT_RECIPIENT"
            )
        return address

    async def send(self, notification: Notification) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = self.address_for(notification.recipient)
        message["Subject"] = f"CarePath: {notification.subject}"
        digest = hashlib.sha256(notification.key.encode("utf-8")).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@carepath>"
        message.set_content(notification.text())
        await asyncio.to_thread(self._deliver, message)

    def _deliver(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls()
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise NotificationRejected(
                f"the SMTP server at {self._host} refused the sender or recipient: "
                "check CAREPATH_SMTP_FROM and CAREPATH_SMTP_RECIPIENTS"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise NotificationRejected(
                    f"the SMTP server at {self._host} refused the message ({exc.smtp_code}): "
                    "check the SMTP settings"
                ) from exc
            raise NotificationDeliveryFailed(
                f"the SMTP server at {self._host} answered {exc.smtp_code}; the activity retries"
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise NotificationDeliveryFailed(
                f"SMTP server {self._host}:{self._port} unreachable ({type(exc).__name__}): "
                "the activity retries; check CAREPATH_SMTP_HOST if it persists"
            ) from exc
