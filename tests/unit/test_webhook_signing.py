"""Webhook signatures per Standard Webhooks, checked by the package and by the receiver
that docs/webhooks.md documents (its code block is run here as written)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from activities.channels import WebhookChannel, webhook_secret_bytes
from activities.notifications import Notification
from store.chain import canonical_json

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
NOW = datetime(2026, 3, 2, 9, 30, 15, 250_000, tzinfo=UTC)

STAFF = Notification(
    key="ep-1:7:supervisor",
    episode_id="ep-1",
    seq=7,
    recipient="supervisor",
    subject="hold review overdue",
    due_at=NOW,
    link="https://carepath.example.org/episodes/ep-1",
)
FAMILY = Notification(
    key="ep-1:9:family:family-contact-1",
    episode_id="ep-1",
    seq=9,
    recipient="family:family-contact-1",
    subject="an update from the care team",
    due_at=None,
    consent_id="consent-1",
)


def documented_receiver() -> dict[str, Any]:
    """The names the first python block of docs/webhooks.md defines."""
    block = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert block is not None, "docs/webhooks.md lost its receiver"
    namespace: dict[str, Any] = {"__name__": "documented_receiver", "delivered": []}
    exec(compile(block.group(1), str(DOCS), "exec"), namespace)
    namespace["deliver"] = namespace["delivered"].append
    return namespace


def signed(
    notification: Notification,
    at: datetime = NOW,
    secret: str = SECRET,
    previous: tuple[str, ...] = (),
) -> tuple[dict[str, str], bytes]:
    clock: Callable[[], datetime] = lambda: at  # noqa: E731
    channel = WebhookChannel(
        "http://receiver.test/hooks",
        webhook_secret_bytes(secret),
        previous_secrets=[webhook_secret_bytes(s) for s in previous],
        clock=clock,
    )
    body = canonical_json(notification.message())
    return channel.headers(notification, body), body


def seconds(at: datetime) -> float:
    return at.timestamp()


class TestSignature:
    def test_given_a_notification_when_it_is_signed_then_the_standard_webhooks_package_verifies_it(
        self,
    ) -> None:
        now = datetime.now(UTC)
        headers, body = signed(STAFF, at=now)

        assert Webhook(SECRET).verify(body, headers) == json.loads(body)
        assert headers["webhook-timestamp"] == str(int(now.timestamp()))
        assert headers["webhook-signature"].startswith("v1,")

    def test_given_a_request_when_its_body_is_altered_then_the_package_refuses_it(self) -> None:
        headers, body = signed(STAFF, at=datetime.now(UTC))

        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            Webhook(SECRET).verify(body.replace(b"supervisor", b"clinician!"), headers)

    def test_given_two_attempts_when_signed_then_the_id_is_the_notification_key_and_only_the_time_moves(
        self,
    ) -> None:
        first, body = signed(STAFF, at=NOW)
        retry, again = signed(STAFF, at=NOW + timedelta(minutes=30))

        assert body == again
        assert first["webhook-id"] == retry["webhook-id"] == STAFF.key
        assert first["webhook-timestamp"] != retry["webhook-timestamp"]
        assert first["webhook-signature"] != retry["webhook-signature"]

    def test_given_a_secret_being_rotated_when_signed_then_receivers_with_either_secret_accept(
        self,
    ) -> None:
        now = datetime.now(UTC)
        headers, body = signed(STAFF, at=now, previous=(OLD_SECRET,))

        assert len(headers["webhook-signature"].split()) == 2
        Webhook(SECRET).verify(body, headers)
        Webhook(OLD_SECRET).verify(body, headers)

    def test_given_a_plain_secret_from_before_when_used_then_its_utf8_bytes_are_the_key(
        self,
    ) -> None:
        now = datetime.now(UTC)
        headers, body = signed(STAFF, at=now, secret="an old plain secret")

        Webhook(b"an old plain secret").verify(body, headers)

    def test_given_a_legacy_receiver_when_the_setting_is_on_then_the_old_header_is_sent_too(
        self,
    ) -> None:
        channel = WebhookChannel("http://r.test", b"s", legacy_signature=True, clock=lambda: NOW)

        headers = channel.headers(STAFF, b"{}")

        assert headers["X-CarePath-Signature"].startswith("sha256=")


class TestDocumentedReceiver:
    def test_given_a_fresh_request_when_checked_then_it_is_accepted_and_delivered_once(
        self,
    ) -> None:
        receiver = documented_receiver()
        headers, body = signed(STAFF, at=datetime.now(UTC))
        seen: set[str] = set()

        statuses = [receiver["handle"](SECRET, headers, body, seen) for _ in range(2)]

        assert statuses == [200, 200]
        assert receiver["delivered"] == [json.loads(body)]

    def test_given_a_request_recorded_ten_minutes_ago_when_replayed_then_it_is_rejected(
        self,
    ) -> None:
        receiver = documented_receiver()
        headers, body = signed(STAFF, at=NOW)

        with pytest.raises(receiver["WebhookRejected"], match="outside the tolerance"):
            receiver["verify_carepath_webhook"](
                SECRET, headers, body, now=seconds(NOW + timedelta(minutes=10))
            )
        assert receiver["handle"](SECRET, headers, body, set()) == 400
        assert receiver["delivered"] == []

    def test_given_a_replay_with_a_new_timestamp_when_checked_then_the_signature_fails(
        self,
    ) -> None:
        receiver = documented_receiver()
        headers, body = signed(STAFF, at=NOW - timedelta(hours=1))
        forged = {**headers, "webhook-timestamp": str(int(datetime.now(UTC).timestamp()))}

        with pytest.raises(receiver["WebhookRejected"], match="no valid signature"):
            receiver["verify_carepath_webhook"](SECRET, forged, body)

    def test_given_the_signature_of_a_rotated_out_secret_when_checked_then_the_receiver_accepts_either(
        self,
    ) -> None:
        receiver = documented_receiver()
        headers, body = signed(STAFF, at=NOW, previous=(OLD_SECRET,))

        for secret in (SECRET, OLD_SECRET):
            assert receiver["verify_carepath_webhook"](secret, headers, body, now=seconds(NOW))

    def test_given_missing_headers_when_checked_then_the_request_is_rejected(self) -> None:
        receiver = documented_receiver()

        with pytest.raises(receiver["WebhookRejected"], match="missing"):
            receiver["verify_carepath_webhook"](SECRET, {}, b"{}")


class TestExternalReference:
    def test_given_a_family_notice_when_sent_then_nothing_in_it_names_the_episode_or_the_recipient_ref(
        self,
    ) -> None:
        headers, body = signed(FAMILY, at=NOW)
        outside = body.decode() + json.dumps(headers) + FAMILY.text()

        assert "ep-1" not in outside
        assert json.loads(body)["key"] == headers["webhook-id"] == FAMILY.reference
        assert re.fullmatch(r"ref-[0-9a-f]{32}", FAMILY.reference)

    def test_given_a_family_notice_when_logged_then_the_line_names_only_the_recipient_kind(
        self,
    ) -> None:
        fields = FAMILY.log_fields()

        assert "family-contact-1" not in repr(fields)
        assert (fields["recipient"], fields["key"]) == ("family", FAMILY.reference)

    def test_given_a_staff_notice_when_referenced_then_its_reference_is_its_key(self) -> None:
        assert STAFF.reference == STAFF.key
        assert STAFF.log_fields()["recipient"] == "supervisor"
