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
