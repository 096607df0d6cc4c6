"""OpenTelemetry traces of the API and the worker, configured by the standard `OTEL_*` variables.

Tracing is off unless an exporter is configured: `OTEL_TRACES_EXPORTER` names one
(`otlp`, `console`, or both comma-separated), or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), with the exporter
left unset. `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` keep it off whatever
else is set. Off means nothing at all: no tracer provider, no Temporal interceptor, no
instrumentation of FastAPI or asyncpg.

On, one process traces:

- every HTTP request but the probes (FastAPI instrumentation: one server span named by
  the route template);
- every Temporal call through the client and every workflow, update, activity and local
  activity on the worker (`temporalio.contrib.opentelemetry.TracingInterceptor`, with the
  update handler's spans in the trace of the call that sent the update, see
  `CommandTracingWorkflowInterceptor`);
- every PostgreSQL statement made inside one of those (asyncpg instrumentation; the
  statement text is recorded, never its parameters; statements outside any trace, such
  as the projector's polling, are not sampled).

Spans go out through the OTLP/HTTP exporter, which reads its endpoint, headers, timeout
and compression from the `OTEL_EXPORTER_OTLP_*` variables, and/or to the console.
`OTEL_SERVICE_NAME` (default: `carepath-api`, `carepath-worker` by role),
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]` and `OTEL_BSP_*` apply as the SDK
defines them. docs/observability.md describes the whole configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import opentelemetry.context
import opentelemetry.trace
from fastapi import FastAPI
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    _get_from_env_or_default,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor
from temporalio.worker import HandleUpdateInput, WorkflowInterceptorClassInput

from workers.errors import StartupError

EXPORTERS = frozenset({"otlp", "console"})
# The service name of each role when OTEL_SERVICE_NAME does not give one.
SERVICE_NAMES = {"api": "carepath-api", "worker": "carepath-worker"}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def configured_exporters(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The span exporters the environment asks for; empty when tracing is off.

    Raises StartupError for an exporter name CarePath does not ship (for example `zipkin`).
    """
    env = os.environ if environ is None else environ
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return ()
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ("otlp",) if endpoint else ()
    chosen = tuple(dict.fromkeys(n.strip() for n in named.split(",") if n.strip()))
    if "none" in chosen:
        return ()
    unknown = [n for n in chosen if n not in EXPORTERS]
    if unknown:
        raise StartupError(
            f"OTEL_TRACES_EXPORTER={named}: {', '.join(unknown)} is not available; "
            "use otlp, console or none"
        )
    return chosen


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Imported only when used: the OTLP exporter pulls in protobuf.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


class UntracedStatements(Sampler):
    """Drops a SQL statement that would start a trace of its own, and leaves every other
    decision to `inner` (the sampler OTEL_TRACES_SAMPLER chooses).

    The worker's projector and checkpoint schedule query PostgreSQL on their own, many
    times a minute; as root spans those would bury the traces worth reading. A statement
    made while serving a request or running an activity has a parent and is kept.
    """

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: opentelemetry.context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = opentelemetry.trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and attributes and _is_statement(attributes):
            return SamplingResult(Decision.DROP)
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"UntracedStatements{{{self.inner.get_description()}}}"


def _is_statement(attributes: Mapping[str, Any]) -> bool:
    return "db.system" in attributes or "db.system.name" in attributes


def service_resource(role: str) -> Resource:
    """The process's resource: what OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME give,
    the role's service name when neither names the service, and CarePath's version."""
    named = bool(os.environ.get("OTEL_SERVICE_NAME")) or any(
        pair.split("=", 1)[0].strip() == SERVICE_NAME
        for pair in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
    )
    # The variables win over the version; the role's name stands in only for no name at all.
    resource = Resource({SERVICE_VERSION: version("carepath")}).merge(Resource.create())
    if not named:
        resource = resource.merge(
            Resource({SERVICE_NAME: SERVICE_NAMES.get(role, f"carepath-{role}")})
        )
    return resource


@dataclass(frozen=True)
class Tracing:
    """A process's tracing: its provider, and the instrumentation that feeds it."""

    provider: TracerProvider

    @property
    def service_name(self) -> str:
        return str(self.provider.resource.attributes.get(SERVICE_NAME, ""))

    def interceptor(self) -> TracingInterceptor:
        """The Temporal interceptor for a client (a worker built on it traces as well)."""
        return CommandTracingInterceptor(self.provider.get_tracer("carepath.temporal"))

    def instrument_app(self, app: FastAPI, untraced: Iterable[str] = ()) -> None:
        """One server span per HTTP request, named by its route template, except for the
        `untraced` paths (the probes: called every few seconds, nothing to follow).
        OTEL_PYTHON_FASTAPI_EXCLUDED_URLS, if set, replaces them."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        excluded = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or ",".join(
            f"{re.escape(path)}$" for path in sorted(untraced)
        )
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=excluded or None,
            # The ASGI receive and send steps as spans of their own say nothing here.
            exclude_spans=["receive", "send"],
            server_request_hook=_without_query,
        )

    @contextmanager
    def statements(self) -> Iterator[None]:
        """Trace asyncpg's statements (process-wide) while the block runs."""
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
        instrumentor.instrument(tracer_provider=self.provider)
        try:
            yield
        finally:
            instrumentor.uninstrument()

    def shutdown(self) -> None:
        """Export what is buffered, then stop."""
        self.provider.shutdown()


# The request attributes that may hold the query string; a query's values never reach a span.
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full")


def _without_query(span: opentelemetry.trace.Span, scope: Mapping[str, Any]) -> None:
    """Cut the query string off the request's URL attributes."""
    attributes = getattr(span, "attributes", None)
    if not scope.get("query_string") or not span.is_recording() or attributes is None:
        return
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(key, value.split("?", 1)[0])
    if "url.query" in attributes:
        span.set_attribute("url.query", "")


def new_tracing(role: str, processors: Sequence[SpanProcessor]) -> Tracing:
    """A tracer provider for `role` that hands its spans to `processors`."""
    provider = TracerProvider(
        resource=service_resource(role),
        sampler=UntracedStatements(_get_from_env_or_default()),
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return Tracing(provider)


def tracing_from_environment(role: str) -> Tracing | None:
    """The process's tracing as the `OTEL_*` variables configure it, or None (off).

    On, the provider is also made the global one, for any library that traces through
    the OpenTelemetry API.
    """
    exporters = configured_exporters()
    if not exporters:
        return None
    tracing = new_tracing(role, [BatchSpanProcessor(_exporter(name)) for name in exporters])
    opentelemetry.trace.set_tracer_provider(tracing.provider)
    return tracing


# --- the workflow side -----------------------------------------------------------------


class CommandTracingInterceptor(TracingInterceptor):
    """Temporal's tracing interceptor, with update handlers traced in their caller's trace."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)
        return CommandTracingWorkflowInterceptor


class CommandTracingWorkflowInterceptor(TracingWorkflowInboundInterceptor):
    """Runs an update's validator and handler in the trace of the call that sent it.

    The SDK's interceptor runs them in the workflow's own context (the trace of the call
    that started the episode, months ago for a staff command) and only links the update's
    caller. A staff command is one update, so CarePath parents its spans on the caller:
    the HTTP request, the update, the append local activity and its SQL share one trace
    id. An update sent without trace context (a caller that does not trace) keeps the
    SDK's behaviour. Signals, queries and the main loop are unchanged.
    """

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        with self._in_caller_context(input) as traced:
            if not traced:
                super().handle_update_validator(input)
                return
            self._completed_span(
                f"ValidateUpdate:{input.update}",
                link_context_carrier=self._load_workflow_context_carrier(),
                kind=SpanKind.SERVER,
            )
            self.next.handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        with self._in_caller_context(input) as traced:
            if not traced:
                return await super().handle_update_handler(input)
            self._completed_span(
                f"HandleUpdate:{input.update}",
                link_context_carrier=self._load_workflow_context_carrier(),
                kind=SpanKind.SERVER,
            )
            return await self.next.handle_update_handler(input)

    @contextmanager
    def _in_caller_context(self, input: HandleUpdateInput) -> Iterator[bool]:
        """Attach the update caller's context, if it sent one; yields whether it did."""
        header = input.headers.get(self.header_key)
        carrier = self.payload_converter.from_payloads([header])[0] if header else None
        if not carrier:
            yield False
            return
        context = self._set_on_context(self.text_map_propagator.extract(carrier))
        token = opentelemetry.context.attach(context)
        try:
            yield True
        finally:
            opentelemetry.context.detach(token)
