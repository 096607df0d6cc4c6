"""One staff command's trace, end to end, through the real servers.

Which command, and why its notification is in its trace. A staff command is one Temporal
update on an episode's workflow that has run since the referral. Temporal's own tracing
interceptor runs an update handler in the workflow's context (the referral's trace) and
only links the caller; CarePath's (`workers.tracing.CommandTracingWorkflowInterceptor`)
parents the handler on the update's caller instead, so the HTTP request, the update, the
workflow's handling of it, the append local activity and its SQL share one trace.

The notification activity is started later, from the workflow's main loop, after the
update has answered: started there, it would join the referral's trace. It is caused by
this command alone (its events open the task that notifies), so the workflow keeps the
context in which the events were adopted and starts the activity in it
(`workflows.trace_context`). The test therefore uses a command that notifies: a no-show
recorded for a session, which opens a level-1 task for the primary clinician. A referral
(update-with-start) would have put the workflow's run in the request's trace too, but it
notifies nobody, so it could not show the notification activity.

The API and the worker share this test's process, and so one tracer provider, exporting
to memory; the Temporal dev server and PostgreSQL are the session's real ones.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
import structlog
from api_driver import Driver
from api_users import bearer, users_authenticator
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from structlog.testing import capture_logs
from temporalio.client import Client

from api.health_routes import PROBE_PATHS
from store.db import Pool
from store.event_store import EventStore
from testing.keys import CHAIN_KEY
from testing.stack import api_app
from tests.integration.conftest import wait_until_polling
from workers.tracing import Tracing, new_tracing
from workers.worker import build_worker
from workflows.messages import APPEND_EVENTS_ACTIVITY, SEND_NOTIFICATIONS_ACTIVITY, workflow_id_for

pytestmark = pytest.mark.integration


@dataclass
class TracedStack:
    http: httpx.AsyncClient
    exporter: InMemorySpanExporter

    def spans(self, where: Callable[[ReadableSpan], bool] = lambda _: True) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if where(s)]

    async def wait_for(self, where: Callable[[ReadableSpan], bool]) -> ReadableSpan:
        async with asyncio.timeout(15):
            while not (found := self.spans(where)):  # noqa: ASYNC110 - nothing to await on
                await asyncio.sleep(0.05)
        return found[0]


@pytest.fixture(params=[False, True], ids=["unsandboxed", "sandboxed"])
async def traced(
    temporal_client: Client, db_pool: Pool, request: pytest.FixtureRequest
) -> AsyncIterator[TracedStack]:
    """The API and a worker as `carepath api` and `carepath worker` wire them with tracing
    on: the Temporal client carries the interceptor, the app is instrumented, and asyncpg
    is traced while the stack runs. The worker runs its workflows without the sandbox (as
    by default) and in it (CAREPATH_WORKFLOW_SANDBOX): the trace context crosses both."""
    exporter = InMemorySpanExporter()
    tracing: Tracing = new_tracing("test", [SimpleSpanProcessor(exporter)])
    client = Client(**{**temporal_client.config(), "interceptors": [tracing.interceptor()]})
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    app = api_app(client, store, task_queue, users_authenticator())
    tracing.instrument_app(app, untraced=PROBE_PATHS)
    with tracing.statements():
        async with build_worker(client, store, task_queue, sandboxed=request.param):
            await wait_until_polling(client, task_queue)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://carepath.test",
                headers=bearer("director"),
            ) as http:
                yield TracedStack(http, exporter)
    tracing.shutdown()


def _named(prefix: str, workflow_id: str | None = None) -> Callable[[ReadableSpan], bool]:
    def match(span: ReadableSpan) -> bool:
        attributes = span.attributes or {}
        return span.name.startswith(prefix) and (
            workflow_id is None or attributes.get("temporalWorkflowID") == workflow_id
        )

    return match


def _is_statement(span: ReadableSpan) -> bool:
    return "db.system" in (span.attributes or {}) or "db.system.name" in (span.attributes or {})


async def test_given_tracing_on_when_a_no_show_is_recorded_then_the_request_update_workflow_append_notification_and_sql_share_one_trace(
    traced: TracedStack,
) -> None:
    driver = Driver(traced.http)
    episode_id = await driver.at("in_program")
    await driver.past_session(episode_id, "s-traced")
    workflow_id = workflow_id_for(episode_id)

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        response = await driver.send(
            "clinician",
            episode_id,
            "record_attendance",
            {"status": "no_show"},
            session_id="s-traced",
        )
    assert response.status_code == 200, response.text

    # The HTTP server span of the command, named by its route template.
    (request,) = traced.spans(
        lambda s: (
            s.kind is SpanKind.SERVER
            and (s.attributes or {}).get("http.route", "").endswith("/attendance")
        )
    )
    trace_id = request.context.trace_id
    # The notification activity runs after the update answered: wait for its span.
    notified = await traced.wait_for(_named(f"RunActivity:{SEND_NOTIFICATIONS_ACTIVITY}"))
    in_trace = traced.spans(lambda s: s.context.trace_id == trace_id)
    names = {s.name for s in in_trace}

    # The update, sent by the API's client and handled by the episode's workflow.
    assert any(n.startswith("StartWorkflowUpdate:") for n in names), names
    assert traced.spans(
        lambda s: s.context.trace_id == trace_id and _named("HandleUpdate:", workflow_id)(s)
    )
    # The workflow's append (a local activity): started by the handler, run by the worker.
    assert traced.spans(
        lambda s: (
            s.context.trace_id == trace_id
            and _named(f"StartActivity:{APPEND_EVENTS_ACTIVITY}", workflow_id)(s)
        )
    )
    # A workflow task that timed out on a busy machine is run again, and its local
    # activity with it: the append may have run more than once, always in this trace.
    appends = [s for s in in_trace if s.name == f"RunActivity:{APPEND_EVENTS_ACTIVITY}"]
    assert appends, names
    # The notification: started by the workflow's main loop in the command's context.
    assert notified.context.trace_id == trace_id
    assert f"StartActivity:{SEND_NOTIFICATIONS_ACTIVITY}" in names
    # SQL: the API's own (access log, episode gate), the append's and the notification's.
    statements = [s for s in in_trace if _is_statement(s)]
    parents = {s.parent.span_id for s in statements if s.parent is not None}
    assert request.context.span_id in parents
    assert any(a.context.span_id in parents for a in appends)
    assert notified.context.span_id in parents
    assert all((s.attributes or {}).get("db.statement.parameters") is None for s in statements), (
        "statement parameters are never recorded"
    )

    # The workflow's handling links to the episode's own trace: the referral's run.
    handled = next(s for s in in_trace if _named("HandleUpdate:", workflow_id)(s))
    # The run's span is recorded again when its first workflow task is retried (a timeout
    # on a busy machine), but always in the referral's one trace.
    runs = traced.spans(_named("RunWorkflow:", workflow_id))
    (run_trace,) = {r.context.trace_id for r in runs}
    assert run_trace != trace_id
    assert [link.context.trace_id for link in handled.links] == [run_trace]

    # The request's log line carries the same trace id, and its request id is the answer's.
    (line,) = [e for e in logs if e["event"] == "request"]
    assert line["trace_id"] == format(trace_id, "032x")
    assert line["request_id"] == response.headers["X-Request-ID"]


async def test_given_tracing_on_when_a_probe_is_called_then_no_span_is_made(
    traced: TracedStack,
) -> None:
    response = await traced.http.get("/livez")
    assert response.status_code == 200
    assert not traced.spans(lambda s: s.kind is SpanKind.SERVER)
