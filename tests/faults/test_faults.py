"""The fault suite: real crashes and outages under load, with figures, against `carepath up`.

Each test starts its own `carepath up` (embedded PostgreSQL, Temporal dev server, worker
and API as supervised processes), puts staff load on it over HTTP, breaks one part for
real (SIGKILL, SIGSTOP), lets the stack recover, and then audits PostgreSQL against what
every client was told: every command answered 2xx has its events stored exactly once,
every stream's seqs are contiguous, no notification went out twice, the read models equal
a rebuild, and every timer that came due during the fault fired exactly once.

The figures are printed whatever the outcome (pytest's capture is bypassed for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psutil
import pytest
from fault_load import Ledger, StaffClient, StoreAudit, audit_store, future_slot

from testing.up import UpStack

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CLIENTS = 4
COMMANDS_PER_CLIENT = 20


@pytest.fixture
def stack(server_data_dir: Path) -> Iterator[UpStack]:
    # Not pytest's tmp_path: see `server_directory` in tests/conftest.py.
    up = UpStack(server_data_dir / "carepath-data")
    up.start()
    try:
        up.wait_ready()
        yield up
    finally:
        tree = up.descendants()
        up.stop()
        # Whatever was killed and restarted, stopping the stack leaves nothing behind.
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert alive == []


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Iterator[list[str]]:
    lines: list[str] = []
    yield lines
    with capsys.disabled():
        print("\n" + "\n".join(f"  [faults] {line}" for line in lines))


@contextlib.asynccontextmanager
async def staff(stack: UpStack, ledger: Ledger, count: int) -> AsyncIterator[list[StaffClient]]:
    clients = [StaffClient(stack, ledger) for _ in range(count)]
    try:
        yield clients
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def _burst(clients: list[StaffClient], episodes: list[str], per_client: int) -> None:
    async def one(client: StaffClient, episode_id: str, offset: int) -> None:
        for i in range(per_client):
            answer = await client.schedule(episode_id, f"s-{offset}-{i}", future_slot(i))
            assert answer.status == 200, answer.body

    await asyncio.gather(
        *(one(c, e, n) for n, (c, e) in enumerate(zip(clients, episodes, strict=True)))
    )


def _figures(name: str, ledger: Ledger, audit: StoreAudit, recovered_s: float | None) -> str:
    recovery = f" recovered_in={recovered_s:.1f}s" if recovered_s is not None else ""
    return f"{name}: sent={len(ledger.answers)} retries={ledger.retried} {audit.line()}{recovery}"


def _assert_clean(audit: StoreAudit) -> None:
    assert audit.lost == []
    assert audit.duplicated == []
    assert audit.gaps == []
    assert audit.notifications_duplicated == []
    assert audit.read_model_diffs == []
    assert audit.stored == audit.accepted


async def _wait_ready_after(
    stack: UpStack, since: float, role: str | None = None, old_pid: int | None = None
) -> float:
    """Seconds from `since` until the stack is ready again, with a new `role` process."""
    while role is not None:
        with contextlib.suppress(LookupError, psutil.Error):
            if stack.process(role).pid != old_pid:
                break
        await asyncio.sleep(0.1)
    await asyncio.to_thread(stack.wait_ready, 60.0)
    return time.monotonic() - since


async def _burst_through_fault(
    stack: UpStack, report: list[str], name: str, fault: Callable[[], Awaitable[float]]
) -> None:
    """Admit one episode per client, start a burst of commands, run `fault` a second in
    (it returns the seconds until the stack was ready again), finish the burst, audit."""
    ledger = Ledger()
    async with staff(stack, ledger, CLIENTS) as clients:
        episodes = await asyncio.gather(
            *(c.admitted_episode(f"MRN-{n}") for n, c in enumerate(clients))
        )
        burst = asyncio.create_task(_burst(clients, list(episodes), COMMANDS_PER_CLIENT))
        await asyncio.sleep(1.0)
        recovered = await fault()
        await burst

    audit = await audit_store(stack, ledger)
    report.append(_figures(name, ledger, audit, recovered))
    # Five commands admit each episode; every command of the burst got its answer.
    assert len(ledger.accepted) == CLIENTS * (COMMANDS_PER_CLIENT + 5)
    _assert_clean(audit)


async def test_worker_killed_during_a_burst_loses_and_duplicates_nothing(
    stack: UpStack, report: list[str]
) -> None:
    async def kill_worker() -> float:
        worker = stack.process("worker")
        killed_at = time.monotonic()
        worker.send_signal(signal.SIGKILL)
        return await _wait_ready_after(stack, killed_at, "worker", worker.pid)

    await _burst_through_fault(stack, report, "worker SIGKILL", kill_worker)


async def test_temporal_killed_with_timers_pending_fires_each_timer_once(
    stack: UpStack, report: list[str]
) -> None:
    ledger = Ledger()
    # Sessions whose no-show moment (end + the adult program's 60 min grace) comes while
    # the Temporal server is down.
    # One session in each of six episodes (a client's sessions may not overlap), so six
    # workflows have a timer pending.
    due_in = timedelta(seconds=20)
    sessions = 6
    async with staff(stack, ledger, 2) as clients:
        episodes = [await clients[0].admitted_episode(f"MRN-T{i}") for i in range(sessions)]
        episode_id = episodes[0]
        for i, episode in enumerate(episodes):
            starts = datetime.now(UTC) - timedelta(hours=2) + due_in + timedelta(seconds=i)
            answer = await clients[0].schedule(episode, f"s-due-{i}", starts)
            assert answer.status == 200, answer.body

        temporal = stack.process("temporal")
        killed_at = time.monotonic()
        temporal.send_signal(signal.SIGKILL)
        old_pid = temporal.pid
        # Staff keep working through the outage: each command is retried with its key.
        during = asyncio.gather(
            *(clients[1].schedule(episode_id, f"s-later-{i}", future_slot(i)) for i in range(5))
        )
        recovered = await _wait_ready_after(stack, killed_at, "temporal", old_pid)
        await during
        no_shows = await _wait_for_no_shows(stack, episodes, sessions, timeout=90.0)

    audit = await audit_store(stack, ledger)
    report.append(
        _figures("temporal SIGKILL", ledger, audit, recovered)
        + f" timers_due={sessions} no_shows_recorded={sum(no_shows.values())}"
    )
    assert no_shows == {f"s-due-{i}": 1 for i in range(sessions)}
    _assert_clean(audit)


async def _wait_for_no_shows(
    stack: UpStack, episodes: list[str], expected: int, timeout: float
) -> dict[str, int]:
    """session id -> how many no-show records it got, once `expected` sessions have one."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(stack.database_url)
        try:
            rows = await conn.fetch(
                "SELECT payload->>'session_id' AS session_id, count(*) AS n FROM events "
                "WHERE episode_id = ANY($1::text[]) AND event_type = 'attendance_recorded' "
                "AND payload->>'status' = 'no_show' GROUP BY 1",
                episodes,
            )
        finally:
            await conn.close()
        counts = {r["session_id"]: r["n"] for r in rows}
        if len(counts) >= expected:
            # Give a duplicate the chance to appear before judging.
            await asyncio.sleep(3)
            return counts
        await asyncio.sleep(1)
    return counts


@pytest.mark.timeout(480)
async def test_postgres_down_for_thirty_seconds_under_load_loses_nothing(
    stack: UpStack, report: list[str]
) -> None:
    async def freeze_then_kill_postgres() -> float:
        frozen = stack.postgres_processes()
        down_at = time.monotonic()
        for process in frozen:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGSTOP)
        await asyncio.sleep(30)
        # Then the server dies for good and the supervisor must start it again.
        for process in frozen:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGKILL)
                process.send_signal(signal.SIGCONT)
        return await _wait_ready_after(stack, down_at)

    await _burst_through_fault(
        stack, report, "postgres stopped 30 s, then killed", freeze_then_kill_postgres
    )


async def test_fifty_concurrent_conflicting_commands_apply_exactly_one(
    stack: UpStack, report: list[str]
) -> None:
    ledger = Ledger()
    async with staff(stack, ledger, 10) as clients:
        episode_id = await clients[0].admitted_episode("MRN-C1")
        slot = future_slot(0)
        started = time.monotonic()
        # 50 different requests (keys) for one session id: one may win, the rest conflict.
        answers = await asyncio.gather(
            *(
                clients[i % len(clients)].schedule(
                    episode_id, "s-contested", slot + timedelta(minutes=i)
                )
                for i in range(50)
            )
        )
        elapsed = time.monotonic() - started

    audit = await audit_store(stack, ledger)
    statuses = sorted({a.status for a in answers})
    winners = [a for a in answers if a.status == 200]
    report.append(
        _figures("50 conflicting commands", ledger, audit, None)
        + f" winners={len(winners)} statuses={statuses} elapsed={elapsed:.1f}s"
    )
    assert len(winners) == 1
    assert all(a.status in (409, 422) for a in answers if a.status != 200)
    _assert_clean(audit)
