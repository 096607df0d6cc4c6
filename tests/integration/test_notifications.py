"""Notification channels against real local servers; idempotent on the event under retries."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from local_servers import smtp_sink, webhook_receiver
from standardwebhooks import Webhook
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.channels import (
    NotificationDeliveryFailed,
    SmtpChannel,
    WebhookChannel,
)
from activities.notifications import NotificationActivities, NotificationLedger
from domain.events import ConsentRevoked, EscalationRaised, Event
from store import EventStore
from store.db import Pool
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events
from testing.samples import CLINICIAN
from workers.errors import StartupError
from workers.settings import Settings
from workers.worker import notification_channel
from workflows.messages import NotifyInput

pytestmark = pytest.mark.integration

EP = "ep-notify"
SECRET = b"webhook-secret"
LINKS = "https://carepath.example.org"


@pytest.fixture
async def stored_events(db_pool: Pool) -> list[Event]:
    events = episode_events(EP, sessions=10)
    await EventStore(db_pool, chain_key=CHAIN_KEY).append(EP, events)
    return events


def batch(events: list[Event], *types: str) -> NotifyInput:
    return NotifyInput(
        episode_id=EP,
        primary_clinician="cal.clinician",
        events=tuple(e for e in events if e.type in types),
    )


def activities(pool: Pool, channel: object) -> NotificationActivities:
    return NotificationActivities(channel, NotificationLedger(pool), LINKS)  # type: ignore[arg-type]


class TestWebhook:
    async def test_each_notice_is_posted_signed_per_standard_webhooks_with_an_event_derived_id(
        self, db_pool: Pool, stored_events: list[Event]
    ) -> None:
        with webhook_receiver() as hook:
            acts = activities(db_pool, WebhookChannel(hook.url, SECRET, timeout=5))
            result = await ActivityEnvironment().run(
                acts.send_notifications, batch(stored_events, "escalation_raised")
            )

        first = next(e for e in stored_events if isinstance(e, EscalationRaised))
        assert result.sent == len(hook.requests) >= 2
        request = hook.requests[0]
        # The package's own verifier: signature and timestamp (within 5 minutes).
        Webhook(base64.b64encode(SECRET).decode()).verify(request.body, request.headers)
        assert "X-CarePath-Signature" not in request.headers
        key = f"{EP}:{first.seq}:primary_clinician:cal.clinician"
        assert request.headers["webhook-id"] == request.headers["Idempotency-Key"] == key
        body = json.loads(request.body)
        assert body == {
            "key": key,
            "episode_id": EP,
            "seq": first.seq,
            "recipient": "primary_clinician:cal.clinician",
            "subject": f"{first.task_kind.value.replace('_', ' ')} task due (escalation level 1)",
            "due_at": first.due_at.isoformat(),
            "link": f"{LINKS}/episodes/{EP}",
        }

    async def test_a_retried_activity_does_not_notify_twice(
        self, db_pool: Pool, stored_events: list[Event]
    ) -> None:
        inp = batch(stored_events, "escalation_raised", "plan_review_due_soon")
        with webhook_receiver() as hook:
            acts = activities(db_pool, WebhookChannel(hook.url, SECRET))
            first = await ActivityEnvironment().run(acts.send_notifications, inp)
            again = await ActivityEnvironment().run(acts.send_notifications, inp)

        assert (again.sent, again.already_sent) == (0, first.sent)
        keys = [r.headers["webhook-id"] for r in hook.requests]
        assert len(keys) == len(set(keys)) == first.sent

    async def test_a_server_error_fails_the_attempt_and_the_retry_repeats_the_same_key(
        self, db_pool: Pool, stored_events: list[Event]
    ) -> None:
        inp = batch(stored_events, "plan_review_due_soon")
        with webhook_receiver() as hook:
            hook.statuses = [503]
            acts = activities(db_pool, WebhookChannel(hook.url, SECRET))
            with pytest.raises(NotificationDeliveryFailed, match="answered 503"):
                await ActivityEnvironment().run(acts.send_notifications, inp)
            result = await ActivityEnvironment().run(acts.send_notifications, inp)

        assert result.sent == 1
        failed, delivered = hook.requests
        assert failed.body == delivered.body
        assert failed.headers["webhook-id"] == delivered.headers["webhook-id"]

    async def test_a_refusal_fails_without_retry_and_names_the_setting(
        self, db_pool: Pool, stored_events: list[Event]
    ) -> None:
        with webhook_receiver() as hook:
            hook.statuses = [400]
            acts = activities(db_pool, WebhookChannel(hook.url, SECRET))
            with pytest.raises(ApplicationError, match="refused") as caught:
                await ActivityEnvironment().run(
                    acts.send_notifications, batch(stored_events, "plan_review_due_soon")
                )

        assert caught.value.non_retryable

    async def test_an_unreachable_receiver_is_a_retryable_failure(
        self, db_pool: Pool, stored_events: list[Event], free_tcp_port: int
    ) -> None:
        channel = WebhookChannel(f"http://127.0.0.1:{free_tcp_port}/x", SECRET, timeout=2)
        acts = activities(db_pool, channel)

        with pytest.raises(NotificationDeliveryFailed, match="unreachable"):
            await ActivityEnvironment().run(
                acts.send_notifications, batch(stored_events, "plan_review_due_soon")
            )


class TestSmtp:
    async def test_staff_get_an_email_without_clinical_detail_once(
        self, db_pool: Pool, stored_events: list[Event]
    ) -> None:
        inp = batch(stored_events, "plan_review_due_soon")
        async with smtp_sink() as sink:
            channel = SmtpChannel(
                "127.0.0.1",
                sink.port,
                "carepath@example.org",
                {"primary_clinician:cal.clinician": "cal@example.org"},
                timeout=5,
            )
            acts = activities(db_pool, channel)
            await ActivityEnvironment().run(acts.send_notifications, inp)
            again = await ActivityEnvironment().run(acts.send_notifications, inp)

        (sender, recipients, message) = sink.messages[0]
        assert len(sink.messages) == 1
        assert again.already_sent == 1
        assert (sender, recipients) == ("carepath@example.org", ["cal@example.org"])
        assert message["Subject"] == "CarePath: treatment plan review due"
        body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert f"Episode: {EP}" in body
        assert f"Open: {LINKS}/episodes/{EP}" in body
        assert "MRN" not in body
        assert "F10" not in body

    async def test_a_recipient_without_an_address_is_refused_naming_the_setting(
        self, db_pool: Pool, stored_events: list[Event]
    ) -> None:
        async with smtp_sink() as sink:
            acts = activities(db_pool, SmtpChannel("127.0.0.1", sink.port, "cp@x", {}))
            with pytest.raises(ApplicationError, match="CAREPATH_SMTP_RECIPIENTS"):
                await ActivityEnvironment().run(
                    acts.send_notifications, batch(stored_events, "plan_review_due_soon")
                )
        assert sink.messages == []


class TestExternalRecipients:
    async def test_family_is_notified_under_an_active_consent_without_an_episode_reference(
        self, db_pool: Pool, stored_events: list[Event]
    ) -> None:
        with webhook_receiver() as hook, capture_logs() as logs:
            acts = activities(db_pool, WebhookChannel(hook.url, SECRET))
            result = await ActivityEnvironment().run(
                acts.send_notifications, batch(stored_events, "party_notified")
            )

        assert result.sent == 1
        (request,) = hook.requests
        body = json.loads(request.body)
        assert body["recipient"] == "family:family-contact-1"
        assert body["key"] == request.headers["webhook-id"]
        assert body["key"].startswith("ref-")
        assert EP not in request.body.decode() + json.dumps(request.headers)
        assert "link" not in body
        (sent,) = [line for line in logs if line["event"] == "notification_sent"]
        assert (sent["key"], sent["recipient"]) == (body["key"], "family")
        assert "family-contact-1" not in repr(logs)
        # Staff asked about the reference find the notice as docs/webhooks.md shows.
        async with db_pool.acquire() as conn:
            found = await conn.fetchrow(
                "SELECT episode_id, recipient FROM notifications_sent WHERE left(encode("
                "sha256(convert_to(notification_key, 'UTF8')), 'hex'), 32) = $1",
                body["key"].removeprefix("ref-"),
            )
        assert dict(found or {}) == {"episode_id": EP, "recipient": "family:family-contact-1"}

    async def test_a_consent_revoked_before_sending_withholds_the_message(
        self, db_pool: Pool, stored_events: list[Event]
    ) -> None:
        last = stored_events[-1]
        revoked = ConsentRevoked(
            episode_id=EP,
            seq=last.seq + 1,
            occurred_at=last.occurred_at + timedelta(hours=1),
            actor=CLINICIAN,
            command_id="revoke-1",
            consent_id="consent-1",
        )
        await EventStore(db_pool, chain_key=CHAIN_KEY).append(EP, [revoked])
        with webhook_receiver() as hook:
            acts = activities(db_pool, WebhookChannel(hook.url, SECRET))
            result = await ActivityEnvironment().run(
                acts.send_notifications, batch(stored_events, "party_notified")
            )

        assert (result.sent, result.withheld) == (0, 1)
        assert hook.requests == []


class TestChannelSettings:
    def test_the_webhook_channel_needs_its_url_and_secret(self) -> None:
        with pytest.raises(StartupError, match="CAREPATH_NOTIFY_WEBHOOK_SECRET"):
            notification_channel(Settings(notify_channel="webhook", notify_webhook_url="http://x"))

    def test_a_whsec_secret_that_is_not_base64_stops_the_worker_naming_the_setting(
        self,
    ) -> None:
        settings = Settings(
            notify_channel="webhook",
            notify_webhook_url="http://x",
            notify_webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            notify_webhook_previous_secrets=["whsec_not base64!"],
        )
        with pytest.raises(StartupError, match="CAREPATH_NOTIFY_WEBHOOK_PREVIOUS_SECRETS"):
            notification_channel(settings)

    def test_the_default_channel_is_the_log(self) -> None:
        assert notification_channel(Settings()).name == "log"
