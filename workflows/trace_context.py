"""Which trace a workflow's later work joins: that of the command that caused it.

The workflow sends notifications from its main loop, after the command whose events call
for them has been answered. Started there, the activity would join the trace of the
episode's workflow (its referral), not the command's. The workflow therefore keeps the
trace context current when the events were adopted (`current`) and starts the activity
in it (`started`). With tracing off the context holds nothing, and neither call has any
effect on what the workflow does or records: trace context travels in headers, which
replay does not compare.

The context is current only while the activity is started, which is synchronous (its
headers are written then), never across an await: a workflow evicted while it waits
would otherwise close the coroutine in another context and fail to detach it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import opentelemetry.context
from opentelemetry.context import Context

__all__ = ["Context", "current", "started"]

T = TypeVar("T")

# OpenTelemetry picks its context implementation lazily, reading entry points with
# open(), which the workflow sandbox refuses at run time: load it now, at import.
opentelemetry.context.get_current()


def current() -> Context:
    """The trace context of the running handler or loop (empty when tracing is off)."""
    return opentelemetry.context.get_current()


def started(context: Context | None, start: Callable[[], T]) -> T:
    """Call `start` (which starts an activity and returns its handle) with `context`
    current, if given."""
    if context is None:
        return start()
    token = opentelemetry.context.attach(context)
    try:
        return start()
    finally:
        opentelemetry.context.detach(token)
