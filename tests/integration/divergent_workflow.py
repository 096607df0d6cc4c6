"""A workflow registered under CarePathway's name that issues different commands.

Replaying a recorded CarePathway history against it must fail: it answers the command
update without the local activity that persists events and starts a timer the history
never had. Only temporalio is imported, because the workflow sandbox re-imports this
module for every replay.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow


@workflow.defn(name="CarePathway")
class DivergentCarePathway:
    @workflow.run
    async def run(self, inp: dict[str, Any]) -> None:
        await workflow.sleep(timedelta(days=1))

    @workflow.update(name="command")
    async def command(self, request: dict[str, Any]) -> dict[str, Any]:
        return {}
