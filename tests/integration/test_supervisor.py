"""The supervisor over real child processes: restarts with back-off, ordered bounded stop.

The children are small Python programs that exit, crash, ignore SIGTERM or note when they
were stopped, so each behaviour is observed on real processes and signals; no server is
needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from structlog.testing import capture_logs

from devstack.supervisor import Backoff, ChildProcess, Supervisor

pytestmark = pytest.mark.integration

FAST = Backoff(first_s=0.05, max_s=0.2, stable_s=60.0)


def _python(code: str) -> ChildProcess:
    return ChildProcess([sys.executable, "-c", code])


def _sleeper() -> ChildProcess:
    return _python("import time; time.sleep(60)")


def _events(logs: list[dict[str, Any]], event: str, child: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event and e.get("child") == child]


async def _until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        # What is awaited are processes and log lines: nothing signals them, so ask.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _supervising(
    backoff: Backoff = FAST, stop_budget_s: float = 7.0
) -> AsyncIterator[Supervisor]:
    """A supervisor whose children are stopped however the test ends (twice is harmless)."""
    sup = Supervisor(backoff, stop_budget_s)
    try:
        yield sup
    finally:
        await sup.shutdown()


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    async with _supervising() as sup:
        yield sup


class TestRestarts:
    async def test_a_child_that_dies_is_restarted_and_why_is_logged(
        self, supervisor: Supervisor, tmp_path: Path
    ) -> None:
        marker = tmp_path / "ran-once"
        # Exits 3 on its first run, then stays up.
        child = _python(
            f"import pathlib, sys, time\n"
            f"m = pathlib.Path({str(marker)!r})\n"
            f"if not m.exists():\n    m.touch(); sys.exit(3)\n"
            f"time.sleep(60)\n"
        )
        with capture_logs() as logs:
            await supervisor.start("flaky", child, stop_timeout_s=1.0)
            supervisor.watch()
            await _until(lambda: _events(logs, "child_restarted", "flaky"))

        [exited] = _events(logs, "child_exited", "flaky")
        assert exited["exit_code"] == 3
        assert exited["reason"] == "exit code 3"
        assert exited["restart_in_s"] == FAST.first_s
        [restarted] = _events(logs, "child_restarted", "flaky")
        assert restarted["pid"] == child.pid is not None
        assert restarted["pid"] != exited["pid"]

    async def test_a_child_that_keeps_failing_waits_longer_each_time_up_to_the_cap(
        self, supervisor: Supervisor
    ) -> None:
        with capture_logs() as logs:
            await supervisor.start("crasher", _python("raise SystemExit(1)"), stop_timeout_s=1.0)
            supervisor.watch()
            await _until(lambda: len(_events(logs, "child_exited", "crasher")) >= 5)

        delays = [e["restart_in_s"] for e in _events(logs, "child_exited", "crasher")][:5]
        assert delays == [0.05, 0.1, 0.2, 0.2, 0.2]

    async def test_a_child_that_ran_long_enough_starts_over_at_the_first_delay(self) -> None:
        backoff = Backoff(first_s=0.05, max_s=1.0, stable_s=0.2)
        async with _supervising(backoff) as sup:
            with capture_logs() as logs:
                await sup.start(
                    "steady", _python("import time; time.sleep(0.3)"), stop_timeout_s=1.0
                )
                sup.watch()
                await _until(lambda: len(_events(logs, "child_exited", "steady")) >= 3)

        delays = [e["restart_in_s"] for e in _events(logs, "child_exited", "steady")]
        assert delays[:3] == [0.05, 0.05, 0.05]

    async def test_a_death_before_watching_is_reported_not_restarted(
        self, supervisor: Supervisor
    ) -> None:
        await supervisor.start("early", _python("raise SystemExit(2)"), stop_timeout_s=1.0)
        await supervisor.start("fine", _sleeper(), stop_timeout_s=1.0)

        await _until(lambda: supervisor.exited())
        await asyncio.sleep(0.2)

        assert supervisor.exited() == [("early", 2)]

    def test_backoff_doubles_from_half_a_second_to_ten(self) -> None:
        assert [Backoff().delay(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


class TestShutdown:
    async def test_children_are_stopped_last_started_first(
        self, supervisor: Supervisor, tmp_path: Path
    ) -> None:
        order = tmp_path / "order"
        sup = supervisor
        for name in ("postgres", "temporal", "worker", "api"):
            # Notes its name when SIGTERM arrives, then exits.
            code = (
                "import signal, sys, time\n"
                "def stop(*_):\n"
                f"    open({str(order)!r}, 'a').write({name!r} + '\\n'); sys.exit(0)\n"
                "signal.signal(signal.SIGTERM, stop)\n"
                "time.sleep(60)\n"
            )
            await sup.start(name, _python(code), stop_timeout_s=2.0)
        await asyncio.sleep(0.5)  # let every child install its handler
        sup.watch()

        await sup.shutdown()

        assert order.read_text().split() == ["api", "worker", "temporal", "postgres"]

    async def test_a_child_that_ignores_sigterm_is_killed_when_its_time_is_up(
        self, supervisor: Supervisor
    ) -> None:
        sup = supervisor
        stubborn = _python(
            "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"
        )
        await sup.start("stubborn", stubborn, stop_timeout_s=0.5)
        await sup.start("polite", _sleeper(), stop_timeout_s=2.0)
        await asyncio.sleep(0.5)
        pid = stubborn.pid
        assert pid is not None

        with capture_logs() as logs:
            began = time.monotonic()
            await sup.shutdown()
            took_s = time.monotonic() - began

        assert took_s < 1.5
        assert [e["child"] for e in logs if e["event"] == "child_killed"] == ["stubborn"]
        assert not _alive(pid)

    async def test_the_budget_bounds_the_whole_stop_however_many_children_hang(self) -> None:
        async with _supervising(stop_budget_s=1.0) as sup:
            for n in range(3):
                hung = _python(
                    "import signal, time\n"
                    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                    "time.sleep(60)\n"
                )
                await sup.start(f"hung-{n}", hung, stop_timeout_s=5.0)
            await asyncio.sleep(0.5)

            began = time.monotonic()
            await sup.shutdown()
            took_s = time.monotonic() - began

        # 1 s of budget, then the short grace for each child after the first.
        assert took_s < 1.0 + 3 * 0.2 + 0.5


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
