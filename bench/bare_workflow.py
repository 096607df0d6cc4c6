"""The baseline workflow: an Update that returns at once.

Its own module with nothing but Temporal imported, because the workflow sandbox
re-imports a workflow's module (and everything that module imports) for every run.
"""

from __future__ import annotations

from temporalio import workflow


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

    @workflow.signal
    def finish(self) -> None:
        self._done = True
