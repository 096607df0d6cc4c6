"""Load and bookkeeping for the fault suite: staff clients that retry safely, and the audit.

A `StaffClient` sends commands over real HTTP with an Idempotency-Key and, as the API
promises is safe, re-sends the same key after a 503, a timeout or a refused connection
until it gets a definite answer. `Ledger` records every definite answer, and
`audit_store` then compares it with what PostgreSQL holds: every accepted command's events
stored exactly once, contiguous streams, no notification sent twice, read models equal to
a rebuild.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from api.command_specs import spec_for
from domain.actors import Role
from store.db import create_pool
from store.projections import READ_MODELS, Projector, rebuild_projections
from testing.up import UpStack

# A 503 or a dropped connection is retried with the same key for this long at most.
RETRY_FOR_S = 180.0
RETRYABLE = {502, 503, 504}


@dataclass
class Answer:
    command_id: str
    episode_id: str
    kind: str
    status: int
    attempts: int
    body: dict[str, Any]


@dataclass
class Ledger:
    answers: list[Answer] = field(default_factory=list)

    @property
    def accepted(self) -> list[Answer]:
        return [a for a in self.answers if 200 <= a.status < 300]

    @property
    def retried(self) -> int:
        return sum(a.attempts - 1 for a in self.answers)


class StaffClient:
    """One member of staff with their own HTTP connection pool."""

    def __init__(self, stack: UpStack, ledger: Ledger, timeout: float = 30.0) -> None:
        self.stack = stack
        self.ledger = ledger
        self.http = httpx.AsyncClient(base_url=stack.url, timeout=timeout)

    async def close(self) -> None:
        await self.http.aclose()

    async def post(
        self,
        role: Role,
        url: str,
        body: dict[str, Any],
        *,
        kind: str,
        episode_id: str,
        key: str | None = None,
    ) -> Answer:
        """POST until a definite answer (anything but 502/503/504 or a transport error)."""
        key = key or f"{kind}-{uuid.uuid4().hex[:12]}"
        headers = {**self.stack.headers(role), "Idempotency-Key": key}
        deadline = time.monotonic() + RETRY_FOR_S
        attempts = 0
        last = "no answer"
        while True:
            attempts += 1
            try:
                response = await self.http.post(url, json=body, headers=headers)
                last = f"{response.status_code} {response.text[:300]}"
                if response.status_code not in RETRYABLE:
                    answer = Answer(
                        key, episode_id, kind, response.status_code, attempts, response.json()
                    )
                    self.ledger.answers.append(answer)
                    return answer
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{kind} {key}: no definite answer in {RETRY_FOR_S:.0f} s "
                    f"({attempts} attempts; last: {last})\nthe stack's last lines:\n"
                    + self.stack.tail(60)
                )
            await asyncio.sleep(min(0.25 * attempts, 2.0))

    async def command(
        self,
        role: Role,
        episode_id: str,
        kind: str,
        body: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        **path: str,
    ) -> Answer:
        spec = spec_for(kind)
        if body is None:
            body, path = spec.body_example, {**spec.path_example, **path}
        url = f"/episodes/{episode_id}" + spec.path.format(**path)
        return await self.post(role, url, body, kind=kind, episode_id=episode_id, key=key)

    async def admitted_episode(self, client_ref: str) -> str:
        """Refer a client and bring the episode into the program with a treatment plan."""
        referral = await self.post(
            Role.INTAKE_COORDINATOR,
            "/episodes",
            {"client_ref": client_ref, "program_id": "adult-iop", "referral_source": "self"},
            kind="refer_client",
            episode_id="",
        )
        assert referral.status == 201, referral.body
        episode_id: str = referral.body["episode_id"]
        for role, kind in (
            (Role.INTAKE_COORDINATOR, "record_screening"),
            (Role.CLINICIAN, "record_assessment"),
            (Role.CLINICIAN, "admit_client"),
            (Role.CLINICIAN, "record_treatment_plan"),
        ):
            answer = await self.command(role, episode_id, kind)
            assert answer.status == 200, (kind, answer.body)
        return episode_id

    async def schedule(
        self, episode_id: str, session_id: str, starts_at: datetime, hours: float = 1
    ) -> Answer:
        body = {
            "session_id": session_id,
            "kind": "group_process",
            "starts_at": starts_at.isoformat(),
            "hours": hours,
        }
        return await self.command(Role.INTAKE_COORDINATOR, episode_id, "schedule_session", body)


def future_slot(index: int) -> datetime:
    """Distinct, non-overlapping session start times from tomorrow on."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    return base + timedelta(hours=2 * index)


@dataclass
class StoreAudit:
    streams: int
    events: int
    accepted: int
    stored: int
    lost: list[str]
    duplicated: list[str]
    gaps: list[str]
    notifications: int
    notifications_duplicated: list[str]
    read_model_diffs: list[str]

    def line(self) -> str:
        return (
            f"accepted={self.accepted} stored={self.stored} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)} gaps={len(self.gaps)} "
            f"notifications={self.notifications} "
            f"notifications_duplicated={len(self.notifications_duplicated)} "
            f"read_model_diffs={len(self.read_model_diffs)} "
            f"(streams={self.streams}, events={self.events})"
        )

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.gaps
            or self.notifications_duplicated
            or self.read_model_diffs
        )


async def _read_models(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    tables = {k: v for k, v in READ_MODELS.items() if not k.startswith("projection_")}
    return {
        table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")]
        for table, order in tables.items()
    }


async def audit_store(stack: UpStack, ledger: Ledger) -> StoreAudit:
    """Compare the ledger of accepted commands with the event store and the read models."""
    pool = await create_pool(stack.database_url, max_size=2)
    try:
        # The read models as the stack's projector left them, once it has caught up.
        await Projector(pool).catch_up()
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT episode_id, seq, command_id FROM events ORDER BY 1, 2")
            before = await _read_models(conn)
        await rebuild_projections(pool)
        async with pool.acquire() as conn:
            after = await _read_models(conn)
    finally:
        await pool.close()

    by_stream: dict[str, list[int]] = {}
    batches: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        by_stream.setdefault(row["episode_id"], []).append(row["seq"])
        batches.setdefault((row["episode_id"], row["command_id"]), []).append(row["seq"])
    gaps = [episode for episode, seqs in by_stream.items() if seqs != list(range(1, len(seqs) + 1))]
    lost, duplicated, stored = [], [], 0
    for answer in ledger.accepted:
        episode = answer.episode_id or answer.body.get("episode_id", "")
        seqs = batches.get((episode, answer.command_id), [])
        # A command's events are one contiguous run of seqs; two runs mean it was applied twice.
        runs = sum(1 for i, s in enumerate(seqs) if i == 0 or s != seqs[i - 1] + 1)
        if not seqs and answer.body.get("events"):
            lost.append(answer.command_id)
        elif runs > 1:
            duplicated.append(answer.command_id)
        stored += 1 if seqs else 0
    sent = Counter(
        line.get("key")
        for line in stack.log_lines()
        if line.get("event") == "notification" and line.get("key")
    )
    diffs = [table for table in before if before[table] != after[table]]
    return StoreAudit(
        streams=len(by_stream),
        events=len(rows),
        accepted=len(ledger.accepted),
        stored=stored,
        lost=lost,
        duplicated=duplicated,
        gaps=gaps,
        notifications=sum(sent.values()),
        notifications_duplicated=[k for k, n in sent.items() if n > 1],
        read_model_diffs=diffs,
    )
