"""What is started is finished before more is started: an activation that only starts new
work waits while enough runs wait for their local activity (`workers.activations`)."""

from __future__ import annotations

import asyncio
import functools

import pytest
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion

from workers.activations import (
    NEW_WORK_LIMIT,
    Admission,
    InlineActivations,
    awaits_local_activity,
    only_answers_queries,
    starts_new_work,
)


def _activation(run_id: str, *kinds: str) -> WorkflowActivation:
    activation = WorkflowActivation(run_id=run_id)
    for kind in kinds:
        getattr(activation.jobs.add(), kind).SetInParent()
    return activation


def _completion(run_id: str, *commands: str) -> WorkflowActivationCompletion:
    completion = WorkflowActivationCompletion(run_id=run_id)
    completion.successful.SetInParent()
    for command in commands:
        getattr(completion.successful.commands.add(), command).SetInParent()
    return completion


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (("do_update",), True),
        (("fire_timer",), True),
        (("initialize_workflow", "do_update"), True),
        (("update_random_seed", "signal_workflow"), True),
        (("resolve_activity",), False),
        (("resolve_activity", "do_update"), False),
        (("query_workflow",), False),
        (("update_random_seed",), False),
    ],
)
def test_given_an_activation_when_classified_then_only_one_that_only_starts_new_work_is_new_work(
    kinds: tuple[str, ...], expected: bool
) -> None:
    assert starts_new_work(_activation("r", *kinds)) is expected


def test_given_anything_but_an_activation_when_classified_then_it_is_not_new_work() -> None:
    assert not starts_new_work(object())


def test_given_activations_when_classified_then_only_one_of_queries_alone_only_answers_queries() -> (
    None
):
    assert only_answers_queries(_activation("r", "query_workflow", "query_workflow"))
    assert not only_answers_queries(_activation("r", "query_workflow", "resolve_activity"))
    assert not only_answers_queries(_activation("r", "do_update"))
    assert not only_answers_queries(object())


async def test_given_a_run_awaiting_its_activity_when_a_query_of_it_is_answered_then_it_still_counts() -> (
    None
):
    executor = InlineActivations(new_work_limit=1)

    def activate(activation: WorkflowActivation) -> WorkflowActivationCompletion:
        if activation.jobs[0].HasField("do_update"):
            return _completion(activation.run_id, "schedule_local_activity")
        return _completion(activation.run_id)

    await asyncio.wrap_future(executor.submit(activate, _activation("a", "do_update")))
    await asyncio.wrap_future(executor.submit(activate, _activation("a", "query_workflow")))
    held = executor.submit(activate, _activation("b", "do_update"))
    await _turns()

    assert not held.done()  # a still awaits its local activity: b waits its turn
    await asyncio.wrap_future(executor.submit(activate, _activation("a", "resolve_activity")))
    await asyncio.wait_for(asyncio.wrap_future(held), 5)


def test_given_completions_when_read_then_only_one_scheduling_a_local_activity_awaits_one() -> None:
    assert awaits_local_activity(_completion("r", "schedule_local_activity"))
    assert not awaits_local_activity(_completion("r", "update_response"))
    assert not awaits_local_activity(_completion("r"))
    assert not awaits_local_activity(None)


async def _turns() -> None:
    """Let every callback scheduled so far run."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_given_the_limit_reached_when_new_work_comes_then_it_waits_until_a_run_is_answered() -> (
    None
):
    loop = asyncio.get_running_loop()
    admission = Admission(2, hold_max=60, stale=60)
    started: list[str] = []
    for run in ("a", "b", "c"):
        admission.admit(run, functools.partial(started.append, run), loop)
    await _turns()
    assert started == ["a", "b"]
    assert admission.held == 1

    admission.finished("a", True, loop)  # a scheduled its local activity: still counts
    await _turns()
    assert started == ["a", "b"]

    admission.finished("a", False, loop)  # a answered
    await _turns()
    assert started == ["a", "b", "c"]
    assert admission.held == 0
    assert admission.counts("c")


async def test_given_held_new_work_when_it_has_waited_hold_max_then_it_starts_anyway() -> None:
    loop = asyncio.get_running_loop()
    admission = Admission(1, hold_max=0.05, stale=60)
    started: list[str] = []
    admission.admit("a", lambda: started.append("a"), loop)
    admission.admit("b", lambda: started.append("b"), loop)
    await _turns()
    assert started == ["a"]

    await asyncio.sleep(0.2)

    assert started == ["a", "b"]


async def test_given_a_run_whose_activity_has_not_answered_when_it_goes_stale_then_it_stops_counting() -> (
    None
):
    loop = asyncio.get_running_loop()
    admission = Admission(1, hold_max=60, stale=0.05)
    started: list[str] = []
    admission.admit("a", lambda: started.append("a"), loop)
    await _turns()
    admission.finished("a", True, loop)
    admission.admit("b", lambda: started.append("b"), loop)
    await _turns()
    assert started == ["a"]

    await asyncio.sleep(0.2)

    assert started == ["a", "b"]
    assert not admission.counts("a")


def test_given_a_limit_below_one_when_admission_is_made_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Admission(0)


async def test_given_new_work_held_when_a_started_run_is_answered_then_the_answer_runs_first() -> (
    None
):
    executor = InlineActivations(new_work_limit=1)
    ran: list[str] = []

    def activate(activation: WorkflowActivation) -> WorkflowActivationCompletion:
        ran.append(f"{activation.run_id}:{activation.jobs[0].WhichOneof('variant')}")
        if activation.jobs[0].HasField("do_update"):
            return _completion(activation.run_id, "schedule_local_activity")
        return _completion(activation.run_id, "update_response")

    first = executor.submit(activate, _activation("a", "do_update"))
    later = [executor.submit(activate, _activation(run, "do_update")) for run in ("b", "c")]
    await asyncio.wrap_future(first)
    await _turns()
    assert ran == ["a:do_update"]  # b and c wait: a awaits its local activity

    answer = executor.submit(activate, _activation("a", "resolve_activity"))
    await asyncio.wrap_future(answer)
    await asyncio.wait_for(asyncio.gather(*map(asyncio.wrap_future, later)), 5)

    assert ran[:2] == ["a:do_update", "a:resolve_activity"]
    assert sorted(ran[2:]) == ["b:do_update", "c:do_update"]


async def test_given_no_limit_when_new_work_comes_then_it_runs_in_arrival_order() -> None:
    executor = InlineActivations(new_work_limit=0)
    ran: list[str] = []

    def activate(activation: WorkflowActivation) -> WorkflowActivationCompletion:
        ran.append(activation.run_id)
        return _completion(activation.run_id, "schedule_local_activity")

    futures = [executor.submit(activate, _activation(run, "do_update")) for run in "abc"]
    await asyncio.gather(*map(asyncio.wrap_future, futures))

    assert ran == ["a", "b", "c"]


def test_given_no_setting_when_the_worker_reads_its_settings_then_the_limit_is_the_executors_default() -> (
    None
):
    from workers.settings import Settings

    assert Settings().worker_new_work_limit == NEW_WORK_LIMIT
