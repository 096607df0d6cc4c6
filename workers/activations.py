"""Workflow activations run on the worker's own thread, with a watchdog in place of a pool.

By default the Temporal SDK hands every workflow activation to a thread pool and waits
for it: the pool thread can be abandoned when an activation never returns (the SDK's
deadlock detection). CarePath's workflow is pure and short (an activation takes a few
hundred microseconds: decide, fold, a fingerprint), so the hand-off costs about as much as
the work: a future, a thread wake-up and two hand-overs of the GIL each way. Measured
with ten callers on the 2-core development machine, running activations on the event
loop's thread cut the worker's CPU per staff command by about 0.4 ms (a tenth) and
replay by 7-8 % (docs/operations.md, "Sizing").

`InlineActivations` is the executor a worker (and a replayer) is given for that: it runs
each activation on the thread that submits it (the event loop's, from a callback of its
own), in a context of its own (as a pool thread would), and puts the loop that was
running back afterwards (the SDK's workflow loop clears it on the way out).

It also decides the order: what is started is finished before more is started. A staff
command passes through the worker three times (the update's activation, the append's
local activity, the activation that answers); served in arrival order, ten commands that
arrive together all wait for each other's first passes before any is answered. So an
activation that only starts new work (a command, a timer's tick, a new run) waits while
NEW_WORK_LIMIT episodes are already waiting for their append (`Admission`); the
activations that carry an append's result go first. Measured with ten callers on the
2-core development machine, a command's p50 fell by 6-9 % and its p99 by about a sixth,
the worker's CPU per command unchanged (docs/operations.md, "Sizing").

What the pool also gave: a stuck activation (a loop that never ends, in a decider with a
bug) cannot hold up anything but its own thread. Inline, it would stop the whole worker.
So one watchdog thread per process interrupts any activation that runs for longer than
`deadlock_timeout` (the SDK's own limit, 2 s), by raising `ActivationOverran` in it, as
the SDK interrupts a deadlocked pool thread. Raised inside workflow code, it fails that
workflow task, which Temporal retries (logged as `workflow_activation_overran`, with the
stack it was stopped at); the worker goes on with every other episode.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import functools
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeGuard, TypeVar

import structlog
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion

T = TypeVar("T")

log = structlog.get_logger("carepath.worker")

# How long one activation may run before it is interrupted: the SDK's deadlock timeout.
DEADLOCK_TIMEOUT_S = 2.0
# How many runs may wait for a local activity (an append) before an activation that
# starts new work waits its turn (`Admission`). Enough appends under way to keep the
# worker busy while PostgreSQL answers them: with ten callers, 2 to 4 gave about the same
# p50 and 4 the lowest p99; 1 left the worker idle during appends.
NEW_WORK_LIMIT = 4
# The longest an activation waits its turn, far below the SDK's deadlock timeout (it
# times the activation from its submission): past it, it goes in arrival order.
HOLD_MAX_S = 0.2
# A run whose local activity has not answered within this long (PostgreSQL slow or
# away, the activity retrying) no longer counts against NEW_WORK_LIMIT.
IN_FLIGHT_STALE_S = 0.1
# Activation jobs that start new work, and jobs that may come along with them.
_NEW_WORK = frozenset({"initialize_workflow", "do_update", "fire_timer", "signal_workflow"})
_ALONG = frozenset({"update_random_seed", "notify_has_patch"})
_QUERIES = frozenset({"query_workflow"})


class ActivationOverran(Exception):
    """Raised inside a workflow activation that ran for longer than its deadlock timeout.

    An `Exception`, so the SDK turns it into a failed workflow task (retried), as it does
    with its own deadlock error."""


@dataclass
class _Running:
    thread: int
    started: float
    timeout: float
    run_id: str | None
    interrupted: bool = field(default=False)


class _Watchdog:
    """The process's one watchdog thread, started by the first executor that needs it.

    Each activation is registered under its thread while it runs. The watchdog looks
    every quarter of the shortest timeout it was given and interrupts an activation past
    its timeout, once; an activation that ends takes in an interrupt that has not landed
    yet, so none can surface after it, in the worker's own code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, _Running] = {}
        self._interval: float | None = None
        self._thread: threading.Thread | None = None

    def watch(self, timeout: float) -> None:
        """Look often enough for `timeout` (a quarter of it), starting the thread once."""
        with self._lock:
            if self._interval is None or timeout / 4 < self._interval:
                self._interval = timeout / 4
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="carepath-activation-watchdog", daemon=True
                )
                self._thread.start()

    def enter(self, timeout: float, run_id: str | None) -> _Running:
        running = _Running(threading.get_ident(), time.monotonic(), timeout, run_id)
        with self._lock:
            self._running[running.thread] = running
        return running

    def leave(self, running: _Running) -> None:
        while True:
            try:
                with self._lock:
                    if self._running.get(running.thread) is running:
                        del self._running[running.thread]
                    interrupted = running.interrupted
                break
            except ActivationOverran:
                continue  # it landed here: leave again (each step can be repeated)
        if interrupted:
            _absorb_interrupt()

    def _watch(self) -> None:
        while True:
            time.sleep(self._interval or DEADLOCK_TIMEOUT_S / 4)
            if not self._running:
                continue  # nothing in hand (most looks): nothing to build a list for
            now = time.monotonic()
            with self._lock:
                overran = [
                    running
                    for running in self._running.values()
                    if not running.interrupted and now - running.started >= running.timeout
                ]
                for running in overran:
                    running.interrupted = True
            for running in overran:
                # Logged first, with the stack it is stuck in, then interrupted (unless it
                # has ended meanwhile).
                log.error(
                    "workflow_activation_overran",
                    run_id=running.run_id,
                    timeout_s=running.timeout,
                    stack=_frame_of(running.thread),
                )
                with self._lock:
                    if self._running.get(running.thread) is running:
                        _raise_in_thread(running.thread, ActivationOverran)


_WATCHDOG = _Watchdog()


def _raise_in_thread(thread: int, exc: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), ctypes.py_object(exc))


def _absorb_interrupt() -> None:
    """Let an interrupt raised in this thread that has not landed yet land here, where it
    is expected, rather than in whatever the thread runs next.

    The interpreter delivers it at the next jump back in a loop, so the loop below takes
    it on its first turn. (Cancelling it instead, with `PyThreadState_SetAsyncExc(thread,
    NULL)`, would leave the interpreter checking for it after every call from then on.)"""
    try:
        for _ in range(8):
            pass
    except ActivationOverran:
        pass


def _frame_of(thread: int) -> str:
    frame = sys._current_frames().get(thread)
    return "".join(traceback.format_stack(frame, limit=8)) if frame is not None else ""


def _job_kinds(activation: WorkflowActivation) -> set[str | None]:
    return {job.WhichOneof("variant") for job in activation.jobs}


def starts_new_work(activation: object) -> TypeGuard[WorkflowActivation]:
    """Whether an activation only starts new work: a command, a signal, a timer that
    fired, a new run. One that resolves anything (an activity, a child workflow) or
    answers a query carries on work already under way."""
    if not isinstance(activation, WorkflowActivation):
        return False
    kinds = _job_kinds(activation)
    return bool(kinds & _NEW_WORK) and kinds <= _NEW_WORK | _ALONG


def only_answers_queries(activation: object) -> bool:
    """Whether an activation only answers queries: it leaves its run where it was."""
    return isinstance(activation, WorkflowActivation) and _job_kinds(activation) <= _QUERIES


def awaits_local_activity(completion: object) -> bool:
    """Whether a completion leaves its run waiting for a local activity it scheduled."""
    return isinstance(completion, WorkflowActivationCompletion) and any(
        command.HasField("schedule_local_activity") for command in completion.successful.commands
    )


class Admission:
    """When an activation that starts new work may run: at once while fewer than `limit`
    runs wait for a local activity, else once one of them is answered, in arrival order,
    and never later than `hold_max` seconds after it came.

    Each run counts from the moment its new work is admitted until an activation of it
    completes without scheduling a local activity; one whose local activity has not
    answered within `stale` seconds stops counting. Activations of a run that counts
    (the one carrying its activity's result among them) are never held."""

    def __init__(
        self,
        limit: int = NEW_WORK_LIMIT,
        *,
        hold_max: float = HOLD_MAX_S,
        stale: float = IN_FLIGHT_STALE_S,
    ) -> None:
        if limit < 1:
            raise ValueError("the limit of runs awaiting a local activity must be at least 1")
        self._limit = limit
        self._hold_max = hold_max
        self._stale = stale
        # run id -> when it started to count.
        self._waiting: dict[str, float] = {}
        self._held: deque[tuple[float, str, Callable[[], None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def held(self) -> int:
        """How many activations wait their turn."""
        return len(self._held)

    def counts(self, run_id: str) -> bool:
        """Whether the run counts against the limit (its activations are never held)."""
        return run_id in self._waiting

    def admit(
        self, run_id: str, start: Callable[[], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Start `start` (new work of `run_id`) on `loop` now or once its turn comes."""
        self._held.append((time.monotonic(), run_id, start))
        self._release(loop)

    def finished(self, run_id: str, awaits_activity: bool, loop: asyncio.AbstractEventLoop) -> None:
        """An activation of `run_id` completed; `awaits_activity`: it scheduled a local
        activity, whose result the run now waits for."""
        if awaits_activity:
            self._waiting[run_id] = time.monotonic()
        else:
            self._waiting.pop(run_id, None)
        if self._held:
            self._release(loop)

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        for run_id in [r for r, since in self._waiting.items() if now - since >= self._stale]:
            del self._waiting[run_id]
        while self._held and (
            len(self._waiting) < self._limit or now - self._held[0][0] >= self._hold_max
        ):
            _, run_id, start = self._held.popleft()
            # It counts from now: the activations started in one turn of the loop stay
            # within the limit.
            self._waiting[run_id] = now
            loop.call_soon(start)
        if self._held and self._timer is None:
            # Look again when the first held one has waited long enough, or the oldest
            # run that counts stops counting.
            wake = min(
                self._held[0][0] + self._hold_max,
                *(since + self._stale for since in self._waiting.values()),
            )
            self._timer = loop.call_later(max(wake - now, 0.0), self._wake, loop)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._release(loop)


class InlineActivations(ThreadPoolExecutor):
    """A workflow task executor that runs each activation on the submitting thread (see
    the module's docstring). It never starts a thread of its own: it is a
    `ThreadPoolExecutor` only because the SDK's `workflow_task_executor` asks for one."""

    def __init__(
        self, deadlock_timeout: float = DEADLOCK_TIMEOUT_S, new_work_limit: int = NEW_WORK_LIMIT
    ) -> None:
        """`new_work_limit`: see `Admission`; 0 runs every activation in arrival order
        (a replayer's case: its local activities answer from history at once)."""
        super().__init__(max_workers=1, thread_name_prefix="carepath-unused")
        if deadlock_timeout <= 0:
            raise ValueError("the deadlock timeout must be positive")
        self._deadlock_timeout = deadlock_timeout
        self._admission = Admission(new_work_limit) if new_work_limit else None
        _WATCHDOG.watch(deadlock_timeout)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run `fn(*args, **kwargs)` on this thread: with an event loop running here, from a
        callback of its own, soon (not inside the task that submitted it, which is in the
        middle of a step: from Python 3.14 asyncio refuses to step the workflow's own tasks
        meanwhile), or once its turn comes if it starts new work (`Admission`); with
        none, at once."""
        future: Future[T] = Future()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._run(future, None, fn, args, kwargs)
            return future
        activation = args[0] if args else None
        admission = self._admission
        if (
            admission is not None
            and starts_new_work(activation)
            and not admission.counts(activation.run_id)
        ):
            admission.admit(
                activation.run_id,
                functools.partial(self._run, future, loop, fn, args, kwargs),
                loop,
            )
        else:
            loop.call_soon(self._run, future, loop, fn, args, kwargs)
        return future

    def _run(
        self,
        future: Future[T],
        loop: asyncio.AbstractEventLoop | None,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        run_id = getattr(args[0], "run_id", None) if args else None
        running = _WATCHDOG.enter(self._deadlock_timeout, run_id)
        result: Any = None
        try:
            try:
                result = contextvars.Context().run(fn, *args, **kwargs)
            finally:
                _WATCHDOG.leave(running)
        except Exception as exc:  # an overrun that landed outside the workflow's code too
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            # The SDK's workflow loop registers itself as the running loop while it runs,
            # and clears it on the way out.
            asyncio._set_running_loop(loop)
            if (
                self._admission is not None
                and loop is not None
                and isinstance(run_id, str)
                and not only_answers_queries(args[0])
            ):
                self._admission.finished(run_id, awaits_local_activity(result), loop)
