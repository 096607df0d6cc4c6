"""Workflow activations run at once on the submitting thread, and one that overruns its
deadlock timeout is interrupted (`workers.activations`)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest
from structlog.testing import capture_logs

from workers.activations import ActivationOverran, InlineActivations

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="unset")


def _spin(seconds: float) -> int:
    """Python code that runs for `seconds` (an activation stuck in a loop, bounded so a
    failing test ends)."""
    turns = 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        turns += 1
    return turns


def test_given_an_activation_when_submitted_then_it_has_run_on_the_submitting_thread_when_submit_returns() -> (
    None
):
    future = InlineActivations().submit(threading.get_ident)

    assert future.done()
    assert future.result() == threading.get_ident()


def test_given_an_activation_when_it_runs_then_it_has_a_context_of_its_own() -> None:
    MARK.set("caller")

    def activation() -> str:
        seen = MARK.get()
        MARK.set("activation")
        return seen

    assert InlineActivations().submit(activation).result() == "unset"
    assert MARK.get() == "caller"


async def test_given_a_running_loop_when_an_activation_is_submitted_then_it_runs_soon_from_a_callback_of_its_own() -> (
    None
):
    seen: list[object] = []

    def activation() -> int:
        seen.append(asyncio.current_task())
        return threading.get_ident()

    future = InlineActivations().submit(activation)

    assert not future.done()  # not inside the task that submitted it
    assert await asyncio.wrap_future(future) == threading.get_ident()
    assert seen == [None]


async def test_given_an_activation_that_clears_the_running_loop_when_it_returns_then_the_loop_runs_again() -> (
    None
):
    loop = asyncio.get_running_loop()

    def activation() -> None:
        # The SDK's workflow loop registers itself while it runs and clears it on exit.
        asyncio._set_running_loop(None)

    await asyncio.wrap_future(InlineActivations().submit(activation))

    assert asyncio.get_running_loop() is loop


def test_given_an_activation_that_raises_when_submitted_then_its_future_holds_the_error() -> None:
    def activation() -> None:
        raise ValueError("broken")

    future = InlineActivations().submit(activation)

    with pytest.raises(ValueError, match="broken"):
        future.result()


def test_given_an_activation_stuck_in_a_loop_when_it_overruns_its_timeout_then_it_is_interrupted() -> (
    None
):
    started = time.monotonic()
    with capture_logs() as logs:
        future = InlineActivations(deadlock_timeout=0.2).submit(_spin, 30.0)

    assert time.monotonic() - started < 5.0
    with pytest.raises(ActivationOverran):
        future.result()
    [overran] = [e for e in logs if e["event"] == "workflow_activation_overran"]
    assert overran["log_level"] == "error"
    assert overran["timeout_s"] == 0.2
    assert "_spin" in overran["stack"]


def test_given_an_interrupted_activation_when_the_thread_goes_on_then_nothing_is_raised_in_it_later() -> (
    None
):
    executor = InlineActivations(deadlock_timeout=0.2)
    with pytest.raises(ActivationOverran):
        executor.submit(_spin, 30.0).result()

    # Well past the watchdog's next looks: no second interrupt lands outside an activation.
    assert _spin(0.5) > 0
    assert executor.submit(_spin, 0.05).result() > 0


def test_given_activations_within_their_timeout_when_they_run_then_none_is_interrupted() -> None:
    executor = InlineActivations(deadlock_timeout=0.2)

    results = [executor.submit(_spin, 0.05).result() for _ in range(8)]

    assert all(turns > 0 for turns in results)


def test_given_a_timeout_that_is_not_positive_when_the_executor_is_made_then_it_is_refused() -> (
    None
):
    with pytest.raises(ValueError, match="positive"):
        InlineActivations(deadlock_timeout=0)
