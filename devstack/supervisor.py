"""Keep `carepath up`'s children running, and stop them all in order, in bounded time.

A crashed worker must not take the API down with it, and a dead dev server must come back
without a person noticing: each child is watched on its own, restarted after a back-off
that doubles on each failure (0.5 s up to 10 s, back to 0.5 s once a run lasted a
minute), and every exit is logged with its code or signal. Stopping is the reverse of
starting, with one time budget for the whole tree: a child that ignores SIGTERM is
killed when its share runs out, so a wedged child cannot hold the terminal.

What is supervised is anything that can start, report its exit and stop (`Supervised`):
the embedded servers, and `ChildProcess` for CarePath's own roles (`carepath worker`,
`carepath api`). Which children run, and in what order, is decided by `cli.up`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from devstack.processes import describe_exit, spawn, stop_process

log = structlog.get_logger("carepath.supervisor")

# The whole tree stops within this budget plus one short grace per child (see shutdown).
STOP_BUDGET_S = 7.0
_LAST_GRACE_S = 0.2
_POLL_S = 0.1


class Supervised(Protocol):
    """A child process the supervisor can start, watch and stop."""

    @property
    def pid(self) -> int | None:
        """The process id while it runs, else None."""
        ...

    @property
    def exit_code(self) -> int | None:
        """The exit status once the process has ended by itself; None while it runs."""
        ...

    async def start(self) -> None:
        """Start (or start again) the process; raise if it cannot be started."""
        ...

    async def stop(self, timeout: float) -> None:
        """Ask the process to stop, kill it after `timeout` seconds. Safe to call twice."""
        ...


@dataclass(frozen=True)
class Backoff:
    """How long to wait before restarting a child that died."""

    first_s: float = 0.5
    max_s: float = 10.0
    # A child that ran at least this long before dying starts over at `first_s`.
    stable_s: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait before the restart that follows the `failures`-th failure in a row."""
        return min(self.first_s * 2.0 ** max(failures - 1, 0), self.max_s)


class ChildProcess:
    """A command run as a child: its own process group, the parent-death signal, our output."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    async def start(self) -> None:
        self._proc = spawn(self.argv, None, env=self.env)

    async def stop(self, timeout: float) -> None:
        if self._proc is not None:
            await stop_process(self._proc, signal.SIGTERM, timeout)


@dataclass
class _Child:
    name: str
    service: Supervised
    stop_timeout_s: float
    started_at: float = 0.0
    last_pid: int | None = None
    failures: int = 0
    restarts: int = 0


class Supervisor:
    """The children of one `carepath up`, in the order they were started."""

    def __init__(self, backoff: Backoff | None = None, stop_budget_s: float = STOP_BUDGET_S):
        self.backoff = backoff or Backoff()
        self.stop_budget_s = stop_budget_s
        self._children: list[_Child] = []
        self._watchers: list[asyncio.Task[None]] = []

    async def start(self, name: str, service: Supervised, *, stop_timeout_s: float) -> None:
        """Start `service` now and own it from here on; a failure to start propagates.

        Nothing is restarted before `watch()`: while the stack starts, a child that dies
        is a start-up error (see `exited`), not something to retry.
        """
        child = _Child(name, service, stop_timeout_s)
        # Owned before it starts: a start that fails half-way is still stopped by shutdown.
        self._children.append(child)
        await service.start()
        child.started_at = time.monotonic()
        child.last_pid = service.pid
        log.debug("child_started", child=name, pid=child.last_pid)

    def exited(self) -> list[tuple[str, int]]:
        """The children that have ended, with their exit status."""
        return [
            (child.name, code)
            for child in self._children
            if (code := child.service.exit_code) is not None
        ]

    def watch(self) -> None:
        """From now on, restart any child that dies."""
        if self._watchers:
            return
        self._watchers = [
            asyncio.create_task(self._keep_running(child), name=f"supervise-{child.name}")
            for child in self._children
        ]

    async def shutdown(self) -> None:
        """Stop every child, the last started first, and SIGKILL those that overstay.

        Each child gets its own stop timeout, cut to what is left of the budget, but never
        less than a short grace; so the whole tree is gone within the budget plus that grace
        per child, however the children behave.
        """
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []
        deadline = time.monotonic() + self.stop_budget_s
        for child in reversed(self._children):
            timeout = max(min(child.stop_timeout_s, deadline - time.monotonic()), _LAST_GRACE_S)
            began = time.monotonic()
            try:
                await child.service.stop(timeout)
            except Exception as exc:
                log.error("child_stop_failed", child=child.name, error=str(exc))
                continue
            took_s = time.monotonic() - began
            if took_s >= timeout:
                # It did not stop on its own in time and was killed: worth a line.
                log.warning("child_killed", child=child.name, after_s=round(took_s, 2))
            else:
                log.debug("child_stopped", child=child.name, seconds=round(took_s, 2))
        self._children = []

    async def _keep_running(self, child: _Child) -> None:
        while True:
            # A process exit is no asyncio event; polling `poll()` also reaps the child.
            while (code := child.service.exit_code) is None:  # noqa: ASYNC110
                await asyncio.sleep(_POLL_S)
            ran_s = time.monotonic() - child.started_at
            if ran_s >= self.backoff.stable_s:
                child.failures = 0
            child.failures += 1
            delay = self.backoff.delay(child.failures)
            log.warning(
                "child_exited",
                child=child.name,
                pid=child.last_pid,
                exit_code=code,
                reason=describe_exit(code),
                ran_s=round(ran_s, 1),
                restart_in_s=delay,
            )
            await asyncio.sleep(delay)
            await self._restart(child)

    async def _restart(self, child: _Child) -> None:
        while True:
            try:
                await child.service.start()
            except Exception as exc:
                child.failures += 1
                delay = self.backoff.delay(child.failures)
                log.error(
                    "child_restart_failed",
                    child=child.name,
                    error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    retry_in_s=delay,
                )
                # The failed attempt may have left a process behind: stop it before the next.
                with contextlib.suppress(Exception):
                    await child.service.stop(child.stop_timeout_s)
                await asyncio.sleep(delay)
                continue
            child.restarts += 1
            child.started_at = time.monotonic()
            child.last_pid = child.service.pid
            log.info(
                "child_restarted", child=child.name, pid=child.last_pid, restarts=child.restarts
            )
            return
