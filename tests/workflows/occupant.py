"""A workflow that only holds its workflow id until it is terminated.

It stands in for whatever may keep a readmission's new episode id busy for a while.
A worker must run it: the time-skipping test server stops skipping time for good when a
workflow whose task nobody picks up is terminated. Only temporalio is imported, because
the workflow sandbox re-imports this module.
"""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="Occupant")
class Occupant:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)
