"""Audit replay, verify, determinism and export on a real Temporal dev server and PostgreSQL.

One episode is driven through the workflow; the state the workflow reported after a
command in the middle, and the moment it did, are kept. Replaying the stored record as
of that moment must give exactly that state. The CLI runs in a thread (it starts its own
event loop) against the same servers, configured through the environment.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import getpass
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from api_users import bearer, users_authenticator
from divergent_workflow import DivergentCarePathway
from fhir.resources.R4B.bundle import Bundle
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from audit.determinism import check_determinism
from audit.fhir_valuesets import code_problems
from audit.replay import replay_episode
from cli.main import main
from domain import commands as c
from domain.state import EpisodeState
from domain.vocabulary import AttendanceStatus
from programs import load_catalog
from store.checkpoints import take_checkpoint
from store.db import Pool
from store.event_store import EventStore
from testing import samples
from testing.keys import CHAIN_KEY
from testing.payload_keys import TEST_CONVERTER, TEST_KEYS_FILE
from testing.stack import api_app
from workers.replay import replay
from workers.worker import build_worker
from workflows.client import EpisodeClient

pytestmark = pytest.mark.integration

AUDITOR = bearer("auditor")


@dataclass
class DrivenEpisode:
    episode_id: str
    middle_state: EpisodeState
    middle_at: datetime
    final_state: EpisodeState


@dataclass
class Stack:
    store: EventStore
    episodes: EpisodeClient
    http: httpx.AsyncClient
    temporal: Client


@pytest.fixture
async def stack(temporal_client: Client, db_pool: Pool) -> AsyncIterator[Stack]:
    """A worker on a fresh task queue and database, an episode client and the API over ASGI."""
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    app = api_app(temporal_client, store, task_queue, users_authenticator())
    async with build_worker(temporal_client, store, task_queue):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://carepath.test") as http:
            yield Stack(store, EpisodeClient(temporal_client, task_queue), http, temporal_client)


async def drive_episode(episodes: EpisodeClient) -> DrivenEpisode:
    """Refer, admit, plan, hold sessions (attended, no-show); keep the state after admission."""
    episode_id = f"audit-{uuid.uuid4().hex[:10]}"
    ids = samples.CommandIds(episode_id)
    await episodes.refer(episode_id, samples.referral(ids), load_catalog().get("adult-iop"))
    screening, assessment, admit, plan = samples.admission(ids)
    for command in (screening, assessment):
        await episodes.send(episode_id, command)
    result = await episodes.send(episode_id, admit, include_state=True)
    middle_at = datetime.now(UTC)
    assert result.state is not None
    # The next command's events must occur strictly after the recorded moment.
    await asyncio.sleep(0.05)
    await episodes.send(episode_id, plan)
    # Half-hour sessions back to back, the last begun ten minutes ago: attendance can be
    # recorded, no timer is due yet (a client's sessions may not overlap).
    started = datetime.now(UTC) - timedelta(minutes=10)
    for i, session_id in enumerate(("s1", "s2", "s3")):
        starts_at = started - (2 - i) * timedelta(minutes=30)
        await episodes.send(episode_id, samples.session(ids, session_id, starts_at, hours=0.5))
    for session_id, status in (("s1", AttendanceStatus.ATTENDED), ("s2", AttendanceStatus.NO_SHOW)):
        await episodes.send(
            episode_id,
            c.RecordAttendance(
                command_id=ids(), actor=samples.CLINICIAN, session_id=session_id, status=status
            ),
        )
    final = await episodes.view(episode_id)
    assert final.state is not None
    return DrivenEpisode(episode_id, result.state, middle_at, final.state)


class AuditCli(Protocol):
    async def __call__(self, *argv: str, key: str | None = None) -> int: ...


@pytest.fixture
def audit_cli(
    monkeypatch: pytest.MonkeyPatch, fresh_database_url: str, dev_server: WorkflowEnvironment
) -> AuditCli:
    """`carepath ARGV...` against this test's database and the session's Temporal server."""

    async def run(*argv: str, key: str | None = None) -> int:
        monkeypatch.setenv("CAREPATH_DATABASE_URL", fresh_database_url)
        monkeypatch.setenv("CAREPATH_PAYLOAD_KEYS_FILE", str(TEST_KEYS_FILE))
        monkeypatch.setenv("CAREPATH_CHAIN_KEY", CHAIN_KEY.decode())
        monkeypatch.setenv(
            "CAREPATH_TEMPORAL_ADDRESS", dev_server.client.service_client.config.target_host
        )
        if key is None:
            monkeypatch.delenv("CAREPATH_CHECKPOINT_KEY", raising=False)
        else:
            monkeypatch.setenv("CAREPATH_CHECKPOINT_KEY", key)
        return await asyncio.to_thread(main, list(argv))

    return run


def cli_json(out: str) -> str:
    """The first JSON document the CLI printed, without the worker's log lines around it."""
    lines = [line for line in out.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", line)]
    return "\n".join(lines[: lines.index("}") + 1])


async def tamper(pool: Pool, episode_id: str, seq: int) -> None:
    """Change one stored payload as a superuser who switched the append-only triggers off."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        await conn.execute(
            "UPDATE events SET payload = jsonb_set(payload, '{command_id}', '\"forged\"') "
            "WHERE episode_id = $1 AND seq = $2",
            episode_id,
            seq,
        )
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


class TestReplayAsOf:
    async def test_as_of_a_moment_mid_episode_returns_the_state_the_workflow_reported_then(
        self, stack: Stack
    ) -> None:
        driven = await drive_episode(stack.episodes)

        report = await replay_episode(stack.store, driven.episode_id, driven.middle_at)

        assert report.verification.ok
        assert report.state == driven.middle_state
        assert report.state != driven.final_state
        assert report.events_included == driven.middle_state.version < report.events_total

    async def test_without_as_of_the_record_matches_the_live_workflow(self, stack: Stack) -> None:
        driven = await drive_episode(stack.episodes)

        report = await replay_episode(stack.store, driven.episode_id, None, stack.episodes)

        assert report.state == driven.final_state
        assert report.live is not None
        assert (report.live.compared, report.live.matches) == (True, True)
        assert report.ok

    async def test_api_replay_as_of_returns_the_middle_state_to_an_auditor_only(
        self, stack: Stack
    ) -> None:
        driven = await drive_episode(stack.episodes)
        url = f"/audit/episodes/{driven.episode_id}/replay"

        response = await stack.http.get(
            url, params={"as_of": driven.middle_at.isoformat()}, headers=AUDITOR
        )
        refused = await stack.http.get(url, headers=bearer("clinician"))
        naive = await stack.http.get(url, params={"as_of": "2026-01-01T10:00:00"}, headers=AUDITOR)

        assert response.status_code == 200, response.text
        assert EpisodeState.model_validate(response.json()["state"]) == driven.middle_state
        assert refused.status_code == 403
        assert naive.status_code == 422
        assert "offset" in naive.json()["detail"]

    async def test_cli_replay_as_of_prints_the_middle_state(
        self,
        stack: Stack,
        capsys: pytest.CaptureFixture[str],
        audit_cli: AuditCli,
    ) -> None:
        driven = await drive_episode(stack.episodes)
        capsys.readouterr()

        status = await audit_cli(
            "audit",
            "replay",
            driven.episode_id,
            "--as-of",
            driven.middle_at.isoformat(),
            "--json",
        )
        live_status = await audit_cli("audit", "replay", driven.episode_id)

        out = capsys.readouterr().out
        first = json.loads(cli_json(out))
        assert status == 0
        assert EpisodeState.model_validate(first["state"]) == driven.middle_state
        assert live_status == 0
        assert "matches the workflow's state" in out


class TestVerify:
    async def test_a_tampered_event_is_named_by_episode_seq_and_reason(
        self,
        owner_pool: Pool,
        stack: Stack,
        db_pool: Pool,
        capsys: pytest.CaptureFixture[str],
        audit_cli: AuditCli,
    ) -> None:
        intact = await drive_episode(stack.episodes)
        driven = await drive_episode(stack.episodes)
        await tamper(owner_pool, driven.episode_id, 3)

        one = await stack.http.get(f"/audit/episodes/{driven.episode_id}/verify", headers=AUDITOR)
        every = await stack.http.get("/audit/verify", headers=AUDITOR)
        replay = await replay_episode(stack.store, driven.episode_id)
        status = await audit_cli("audit", "verify", "--all")

        assert (one.json()["ok"], one.json()["first_bad_seq"]) == (False, 3)
        assert "hash mismatch" in one.json()["reason"]
        assert {s["episode_id"]: s["ok"] for s in every.json()["streams"]} == {
            intact.episode_id: True,
            driven.episode_id: False,
        }
        # Nothing from the tampered event on is trusted.
        assert (replay.verification.ok, replay.events_included) == (False, 2)
        captured = capsys.readouterr()
        assert status == 1
        assert f"episode {driven.episode_id}: TAMPERED, first bad seq 3: hash mismatch" in (
            captured.err
        )
        assert "verified 2/2 streams" in captured.err

    async def test_cli_verify_of_an_intact_episode_exits_zero(
        self,
        stack: Stack,
        capsys: pytest.CaptureFixture[str],
        audit_cli: AuditCli,
    ) -> None:
        driven = await drive_episode(stack.episodes)

        status = await audit_cli("audit", "verify", driven.episode_id)
        missing = await audit_cli("audit", "verify", "no-such-episode")

        captured = capsys.readouterr()
        assert status == 0
        assert f"episode {driven.episode_id}: intact" in captured.out
        assert missing == 1
        assert "holds no events for episode 'no-such-episode'" in captured.err

    async def test_cli_verify_compares_with_the_latest_signed_checkpoint(
        self,
        stack: Stack,
        db_pool: Pool,
        capsys: pytest.CaptureFixture[str],
        audit_cli: AuditCli,
    ) -> None:
        driven = await drive_episode(stack.episodes)
        checkpoint = await take_checkpoint(db_pool, b"audit-test-key")
        assert checkpoint is not None

        status = await audit_cli(
            "audit",
            "verify",
            driven.episode_id,
            key="audit-test-key",
        )
        wrong_key = await audit_cli(
            "audit",
            "verify",
            driven.episode_id,
            key="another-key",
        )

        captured = capsys.readouterr()
        assert status == 0
        assert f"(chain and checkpoint #{checkpoint.checkpoint_id})" in captured.out
        assert wrong_key == 1
        assert "signed with another key" in captured.err


class TestDeterminism:
    async def test_live_histories_replay_cleanly_with_the_current_code(
        self,
        stack: Stack,
        capsys: pytest.CaptureFixture[str],
        audit_cli: AuditCli,
    ) -> None:
        driven = await drive_episode(stack.episodes)

        report = await check_determinism(
            stack.temporal,
            driven.episode_id,
            replay=functools.partial(replay, data_converter=TEST_CONVERTER),
        )
        status = await audit_cli("audit", "determinism", driven.episode_id)

        assert report.ok, report.runs
        # Every run of the episode (it continues as new along the way), and nothing else.
        assert report.runs
        assert {r.episode_id for r in report.runs} == {driven.episode_id}
        assert status == 0
        assert "replays cleanly" in capsys.readouterr().out

    async def test_a_workflow_that_issues_different_commands_is_reported_as_breaking(
        self, stack: Stack
    ) -> None:
        driven = await drive_episode(stack.episodes)

        report = await check_determinism(
            stack.temporal,
            driven.episode_id,
            replay=functools.partial(
                replay, data_converter=TEST_CONVERTER, workflows=[DivergentCarePathway]
            ),
        )

        assert not report.ok
        assert report.broken
        for broken in report.broken:
            assert broken.episode_id == driven.episode_id
            assert broken.error
            assert "WOULD BREAK" in broken.describe()


class TestExport:
    async def test_every_format_carries_the_stored_chain(self, stack: Stack) -> None:
        driven = await drive_episode(stack.episodes)
        url = f"/audit/episodes/{driven.episode_id}/export"
        stored = await stack.store.read_stream(driven.episode_id)

        jsonl = await stack.http.get(url, params={"format": "jsonl"}, headers=AUDITOR)
        as_csv = await stack.http.get(url, params={"format": "csv"}, headers=AUDITOR)

        lines = [json.loads(line) for line in jsonl.text.splitlines()]
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert jsonl.headers["content-type"].startswith("application/x-ndjson")
        assert [(r["seq"], r["hash"]) for r in lines] == [(e.seq, e.hash) for e in stored]
        assert [(int(r["seq"]), r["hash"]) for r in rows] == [(e.seq, e.hash) for e in stored]
        assert lines[0]["payload"] == stored[0].payload

    async def test_fhir_bundle_validates_and_uses_legal_codes(
        self,
        stack: Stack,
        tmp_path: Path,
        audit_cli: AuditCli,
    ) -> None:
        driven = await drive_episode(stack.episodes)
        output = tmp_path / "bundle.json"

        response = await stack.http.get(
            f"/audit/episodes/{driven.episode_id}/export",
            params={"format": "fhir"},
            headers=AUDITOR,
        )
        status = await audit_cli(
            "audit",
            "export",
            driven.episode_id,
            "--format",
            "fhir",
            "--output",
            str(output),
        )

        for document in (response.json(), json.loads(output.read_text())):
            Bundle.model_validate(document)
            assert code_problems(document) == []
            kinds = [e["resource"]["resourceType"] for e in document["entry"]]
            assert kinds.count("Appointment") == 3
            assert {"EpisodeOfCare", "CarePlan", "Task", "Provenance", "AuditEvent"} <= set(kinds)
            statuses = sorted(
                e["resource"]["status"]
                for e in document["entry"]
                if e["resource"]["resourceType"] == "Appointment"
            )
            assert statuses == ["booked", "fulfilled", "noshow"]
        assert status == 0
        assert response.headers["content-type"].startswith("application/fhir+json")


class TestAuditAccessRecords:
    """Every audit command leaves its access-log row, from the CLI as from the API."""

    async def _rows(self, pool: Pool, since_id: int = 0) -> list[dict[str, object]]:
        rows = await pool.fetch(
            "SELECT user_id, role, action, resource, outcome, status, method, episode_id "
            "FROM access_log WHERE id > $1 ORDER BY id",
            since_id,
        )
        return [dict(row) for row in rows]

    async def test_cli_export_leaves_an_access_row_naming_the_operator_and_episode(
        self,
        stack: Stack,
        db_pool: Pool,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        audit_cli: AuditCli,
    ) -> None:
        driven = await drive_episode(stack.episodes)
        monkeypatch.setenv("CAREPATH_OPERATOR_ID", "olga.operator")
        output = tmp_path / "export.jsonl"

        status = await audit_cli(
            "audit", "export", driven.episode_id, "--format", "jsonl", "--output", str(output)
        )

        assert status == 0
        assert output.stat().st_size > 0
        assert await self._rows(db_pool) == [
            {
                "user_id": "olga.operator",
                "role": "operator",
                "action": "export",
                "resource": "carepath audit export",
                "outcome": "success",
                "status": 200,
                "method": "CLI",
                "episode_id": driven.episode_id,
            }
        ]

    async def test_cli_replay_verify_and_determinism_are_recorded_per_episode(
        self,
        stack: Stack,
        db_pool: Pool,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        audit_cli: AuditCli,
    ) -> None:
        driven = await drive_episode(stack.episodes)
        monkeypatch.delenv("CAREPATH_OPERATOR_ID", raising=False)

        assert await audit_cli("audit", "replay", driven.episode_id, "--json") == 0
        assert await audit_cli("audit", "verify", "--all") == 0
        assert await audit_cli("audit", "verify", "no-such-episode") == 1
        await audit_cli("audit", "determinism", driven.episode_id)
        capsys.readouterr()

        rows = await self._rows(db_pool)
        assert [(r["resource"], r["episode_id"], r["outcome"]) for r in rows] == [
            ("carepath audit replay", driven.episode_id, "success"),
            ("carepath audit verify", driven.episode_id, "success"),
            ("carepath audit verify", "no-such-episode", "not_found"),
            ("carepath audit determinism", driven.episode_id, "success"),
        ]
        assert {r["user_id"] for r in rows} == {getpass.getuser()}
        assert {r["action"] for r in rows} == {"read"}

    async def test_api_export_and_access_log_reads_are_recorded_as_the_auditor(
        self, stack: Stack, db_pool: Pool
    ) -> None:
        driven = await drive_episode(stack.episodes)

        export = await stack.http.get(
            f"/audit/episodes/{driven.episode_id}/export", headers=AUDITOR
        )
        log = await stack.http.get("/audit/access-log", headers=AUDITOR)

        assert (export.status_code, log.status_code) == (200, 200)
        rows = await self._rows(db_pool)
        assert [(r["user_id"], r["action"], r["resource"], r["episode_id"]) for r in rows] == [
            ("ada.auditor", "export", "/audit/episodes/{episode_id}/export", driven.episode_id),
            ("ada.auditor", "export", "/audit/access-log", None),
        ]
