"""The baseline workflow: an Update that returns at once.

Its own module with nothing but Temporal imported, because the workflow sandbox
re-imports a workflow's module (and everything that module imports) for every run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop(value: int) -> int:
    return value


@workflow.defn(name="BareUpdate")
class BareUpdateWorkflow:
    def __init__(self) -> None:
        self._done = False
        self._count = 0

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._done)
        return self._count

    @workflow.update
    async def touch(self, value: int) -> int:
        self._count += 1
        return value

    @workflow.update
    async def touch_local(self, value: int) -> int:
        """The update waits for one local activity, as CarePath's append does."""
        return await workflow.execute_local_activity(
            noop, value, start_to_close_timeout=timedelta(seconds=10)
        )

    @workflow.update
    async def touch_activity(self, value: int) -> int:
        """The update waits for one regular activity: the alternative for the append."""
        return await workflow.execute_activity(
            noop, value, start_to_close_timeout=timedelta(seconds=10)
        )

    @workflow.signal
    def finish(self) -> None:
        self._done = True


@workflow.defn(name="BareEpisode")
class BareEpisodeWorkflow:
    """The simulation benchmark's baseline (`bench.simulation`): an episode's timers,
    updates and activities with nothing of CarePath in them.

    It sleeps to each of `timers` (seconds from its start, ascending) and runs one local
    activity when each fires, as an episode's tick appends its events; the first
    `activities` of them also run one regular activity, as a notification does. Each
    `touch_local` update runs one local activity, as a staff command's append does. It
    ends once every timer has fired and `finish` was signalled."""

    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self, timers: list[float], activities: int) -> int:
        start = workflow.now()
        for n, offset in enumerate(timers):
            ahead = start + timedelta(seconds=offset) - workflow.now()
            await workflow.sleep(max(ahead, timedelta(seconds=0.001)))
            await workflow.execute_local_activity(
                noop, n, start_to_close_timeout=timedelta(seconds=10)
            )
            if n < activities:
                await workflow.execute_activity(
                    noop, n, start_to_close_timeout=timedelta(seconds=30)
                )
        await workflow.wait_condition(lambda: self._done)
        return len(timers)

    @workflow.update
    async def touch_local(self, value: int) -> int:
        return await workflow.execute_local_activity(
            noop, value, start_to_close_timeout=timedelta(seconds=10)
        )

    @workflow.signal
    def finish(self) -> None:
        self._done = True
