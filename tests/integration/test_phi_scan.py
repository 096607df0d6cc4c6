"""No PHI outside payloads: a full episode with recognisable PHI, then a scan of everything
CarePath writes outside its encrypted stores.

The episode runs through the HTTP API and a real worker (Temporal dev server, PostgreSQL)
with every field that may carry PHI set to a marker no code would write by chance: the
client's MRN, a diagnosis code, the referral reason, a problem description, plan-review
notes, a task outcome, a discharge summary, and a family contact's reference. Then:

- the log lines of the API and the worker (structlog's event dicts, before redaction, and
  the standard library's records, Temporal's SDK and httpx included), the access log
  table, the notification ledger and what the log channel and a webhook receiver got must
  hold none of them;
- the workflow's raw history as the Temporal server stores it (protobuf bytes, nothing
  decoded) must hold none of them either: that needs payload encryption.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from api_driver import Driver, example, now_iso
from api_users import bearer, users_authenticator
from local_servers import Received, webhook_receiver
from structlog.testing import capture_logs
from temporalio.client import Client

from activities.channels import LogChannel, WebhookChannel
from activities.notifications import Notification, NotificationActivities, NotificationLedger
from store.db import Pool
from store.event_store import EventStore
from testing.keys import CHAIN_KEY
from testing.stack import api_app
from tests.integration.conftest import wait_until_polling
from workers.replay import run_histories
from workers.worker import build_worker
from workflows.client import workflow_id_for

pytestmark = pytest.mark.integration

MRN = "MRN-PHI-58213"
DIAGNOSIS = "F15.259"
REASON = "phi-reason: evicted after a stimulant binge"
PROBLEM = "phi-problem: methamphetamine use disorder with psychosis"
NOTES = "phi-notes: disclosed overdose of a sibling"
OUTCOME = "phi-outcome: reached at the shelter on Birch street"
SUMMARY = "phi-summary: left against advice after relapse"
FAMILY_REF = "phi-family-contact-7731"
# What may reach nobody outside CarePath's encrypted stores. The family contact's
# reference is what the notification is routed on, so the ledger and the receiver get it.
PHI = (MRN, DIAGNOSIS, REASON, PROBLEM, NOTES, OUTCOME, SUMMARY)
NOT_LOGGED = (*PHI, FAMILY_REF)


class BothChannels:
    """The log channel and a webhook at once, so both kinds of delivery are scanned."""

    name = "webhook"

    def __init__(self, webhook: WebhookChannel) -> None:
        self._channels = (LogChannel(), webhook)

    async def send(self, notification: Notification) -> None:
        for channel in self._channels:
            await channel.send(notification)


@dataclass
class Scanned:
    """What CarePath wrote outside its payloads during one episode."""

    episode_id: str
    log_lines: list[str] = field(default_factory=list)
    access_rows: list[str] = field(default_factory=list)
    ledger_rows: list[str] = field(default_factory=list)
    webhook_requests: list[Received] = field(default_factory=list)


@pytest.fixture
async def stack(
    temporal_client: Client, db_pool: Pool
) -> AsyncIterator[tuple[httpx.AsyncClient, list[Received]]]:
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    app = api_app(temporal_client, store, task_queue, users_authenticator())
    with webhook_receiver() as hook:
        channel = BothChannels(WebhookChannel(hook.url, b"phi-scan-secret", timeout=5))
        notifications = NotificationActivities(
            channel, NotificationLedger(db_pool), "https://carepath.test"
        )
        async with build_worker(temporal_client, store, task_queue, notifications):
            await wait_until_polling(temporal_client, task_queue)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://carepath.test", headers=bearer("director")
            ) as http:
                yield http, hook.requests


@pytest.fixture
def stdlib_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Standard-library records at CAREPATH_LOG_LEVEL's default, info. (At debug,
    Temporal's SDK logs the payloads it sends and receives: encoded, so encrypted once
    the payload codec is in place, like the history.)"""
    caplog.set_level(logging.INFO)
    return caplog


async def drive_episode_with_phi(http: httpx.AsyncClient) -> str:
    """Referral to discharge, with every PHI marker in the field that carries it."""
    drive = Driver(http)
    episode_id = await drive.refer(client_ref=MRN, reason=REASON)
    await drive.ok("intake", episode_id, "record_screening")
    assessment = example("record_assessment", diagnoses=[DIAGNOSIS])
    await drive.ok("clinician", episode_id, "record_assessment", assessment)
    await drive.ok("clinician", episode_id, "admit_client")
    plan_body = example("record_treatment_plan")
    plan_body["plan"]["problems"] = [{"problem_id": "p1", "description": PROBLEM}]
    await drive.ok("clinician", episode_id, "record_treatment_plan", plan_body)
    consent = example("record_consent", recipient_ref=FAMILY_REF, expires_at=now_iso(60 * 24))
    await drive.ok("intake", episode_id, "record_consent", consent)
    notice = example("notify_party", recipient_ref=FAMILY_REF)
    await drive.ok("clinician", episode_id, "notify_party", notice)
    # A no-show opens an outreach task, whose raising notifies staff.
    await drive.past_session(episode_id, "s-phi")
    await drive.ok(
        "clinician", episode_id, "record_attendance", {"status": "no_show"}, session_id="s-phi"
    )
    (task_id,) = await drive.open_task_ids(episode_id)
    await drive.ok("clinician", episode_id, "resolve_task", {"outcome": OUTCOME}, task_id=task_id)
    review = example("complete_plan_review", notes=NOTES)
    await drive.ok("clinician", episode_id, "complete_plan_review", review)
    discharge = {"discharge_reason": "against_advice", "summary": SUMMARY}
    await drive.ok("director", episode_id, "discharge", discharge)
    return episode_id


async def notifications_sent(pool: Pool, episode_id: str, at_least: int) -> list[str]:
    """The ledger's rows of the episode, once `at_least` are there (the activity runs
    after the command's answer)."""
    async with asyncio.timeout(15):
        while True:
            async with pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT * FROM notifications_sent WHERE episode_id = $1", episode_id
                )
            if len(rows) >= at_least:
                return [json.dumps(dict(row), default=str) for row in rows]
            await asyncio.sleep(0.1)


def found(values: tuple[str, ...], texts: list[str]) -> dict[str, int]:
    """How many of `texts` hold each value (case-insensitively); only values found."""
    counts = {v: sum(v.lower() in t.lower() for t in texts) for v in values}
    return {v: n for v, n in counts.items() if n}


class TestNoPhiOutsidePayloads:
    async def test_given_a_full_episode_with_phi_when_logs_and_notifications_are_scanned_then_none_appears(
        self,
        stack: tuple[httpx.AsyncClient, list[Received]],
        db_pool: Pool,
        stdlib_logs: pytest.LogCaptureFixture,
    ) -> None:
        http, webhook_requests = stack
        with capture_logs() as structured:
            episode_id = await drive_episode_with_phi(http)
            # Staff: the outreach task's raising; family: the consented notice.
            ledger = await notifications_sent(db_pool, episode_id, at_least=2)
        async with db_pool.acquire() as conn:
            access = [
                json.dumps(dict(row), default=str)
                for row in await conn.fetch("SELECT * FROM access_log")
            ]
        stdlib_records = stdlib_logs.get_records("call")
        log_lines = [json.dumps(entry, default=str) for entry in structured] + [
            f"{record.name} {record.getMessage()} {record.__dict__}" for record in stdlib_records
        ]
        webhooks = [f"{json.dumps(r.headers)} {r.body.decode()}" for r in webhook_requests]
        channel_lines = [line for line in log_lines if '"event": "notification"' in line]

        print(
            f"scanned {len(structured)} structured and {len(stdlib_records)} standard log "
            f"lines, {len(access)} access-log rows, {len(ledger)} notifications_sent rows, "
            f"{len(channel_lines)} log-channel notifications, {len(webhooks)} webhook requests"
        )
        assert any(episode_id in line for line in log_lines), "the scan saw the episode's logs"
        assert len(webhooks) == len(channel_lines) == len(ledger) >= 2
        assert found(NOT_LOGGED, log_lines) == {}
        assert found(NOT_LOGGED, access) == {}
        assert found(PHI, ledger) == {}
        assert found(PHI, webhooks) == {}
        family = [w for w in webhooks if FAMILY_REF in w]
        assert len(family) == 1
        assert episode_id not in family[0], "the family's notice names no episode"

    async def test_given_a_full_episode_with_phi_when_the_raw_temporal_history_is_scanned_then_none_appears(
        self,
        stack: tuple[httpx.AsyncClient, list[Received]],
        temporal_client: Client,
    ) -> None:
        http, _ = stack
        episode_id = await drive_episode_with_phi(http)
        # Every run: the episode continues as new along the way, carrying its state.
        runs = await run_histories(temporal_client, workflow_id_for(episode_id))
        # Nothing decoded: the bytes the server stores and hands to anyone who may read
        # the namespace (protobuf), and the JSON the Temporal UI and CLI export.
        raw = [event.SerializeToString() for history in runs for event in history.events]
        exported = "".join(history.to_json() for history in runs)

        print(f"scanned {len(raw)} history events of {len(runs)} runs ({sum(map(len, raw))} bytes)")
        in_raw = found(PHI, [event.decode("latin-1") for event in raw])
        assert (in_raw, found(PHI, [exported])) == ({}, {})
