"""Tracing's configuration from the OTEL_* variables, and the request log of a server error.

Neither needs a server: the configuration is read from a mapping, and the error path runs
on a bare app with CarePath's problem handlers and request log."""

from __future__ import annotations

import httpx
import pytest
import structlog
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from structlog.testing import capture_logs

from api.problems import install_problem_handlers
from api.request_log import RequestLogMiddleware, valid_request_id
from workers.errors import StartupError
from workers.tracing import (
    UntracedStatements,
    configured_exporters,
    new_tracing,
    service_resource,
    tracing_from_environment,
)


class TestTracingIsOffUnlessConfigured:
    @pytest.mark.parametrize(
        "environ",
        [
            {},
            {"OTEL_SERVICE_NAME": "carepath-api"},
            {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector"},
            {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
            {"OTEL_TRACES_EXPORTER": "  "},
        ],
        ids=["nothing", "service-name-only", "exporter-none", "sdk-disabled", "blank"],
    )
    def test_given_no_exporter_configured_when_read_then_tracing_is_off(
        self, environ: dict[str, str]
    ) -> None:
        assert configured_exporters(environ) == ()

    @pytest.mark.parametrize(
        ("environ", "expected"),
        [
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
            ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ("otlp",)),
            ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
            ({"OTEL_TRACES_EXPORTER": "OTLP, console,otlp"}, ("otlp", "console")),
        ],
        ids=["endpoint", "traces-endpoint", "console", "both"],
    )
    def test_given_an_exporter_or_an_endpoint_when_read_then_tracing_is_on(
        self, environ: dict[str, str], expected: tuple[str, ...]
    ) -> None:
        assert configured_exporters(environ) == expected

    def test_given_an_exporter_carepath_does_not_ship_when_read_then_startup_names_it(
        self,
    ) -> None:
        with pytest.raises(StartupError, match="zipkin is not available"):
            configured_exporters({"OTEL_TRACES_EXPORTER": "zipkin"})

    def test_given_nothing_configured_when_a_role_starts_then_there_is_no_tracing(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)

        assert tracing_from_environment("api") is None


class TestServiceName:
    @pytest.mark.parametrize(
        ("role", "name"), [("api", "carepath-api"), ("worker", "carepath-worker")]
    )
    def test_given_no_service_name_when_a_role_traces_then_it_is_named_by_role(
        self, monkeypatch: pytest.MonkeyPatch, role: str, name: str
    ) -> None:
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")

        attributes = service_resource(role).attributes

        assert attributes["service.name"] == name
        assert attributes["deployment.environment"] == "staging"
        assert attributes["service.version"]

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("OTEL_SERVICE_NAME", "clinic-a-api"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=clinic-a-api,team=ops"),
        ],
    )
    def test_given_a_service_name_in_the_environment_when_a_role_traces_then_it_wins(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
        monkeypatch.setenv(variable, value)

        assert service_resource("api").attributes["service.name"] == "clinic-a-api"


class TestStatementsOutsideATrace:
    def test_given_a_statement_without_a_parent_when_sampled_then_it_is_dropped(self) -> None:
        exporter = InMemorySpanExporter()
        tracing = new_tracing("worker", [SimpleSpanProcessor(exporter)])
        tracer = tracing.provider.get_tracer("test")

        with tracer.start_as_current_span("SELECT", attributes={"db.system": "postgresql"}):
            pass
        with (
            tracer.start_as_current_span("RunActivity:append_events"),
            tracer.start_as_current_span("INSERT", attributes={"db.system": "postgresql"}),
        ):
            pass
        tracing.shutdown()

        assert sorted(s.name for s in exporter.get_finished_spans()) == [
            "INSERT",
            "RunActivity:append_events",
        ]

    def test_given_any_other_span_when_sampled_then_the_inner_sampler_decides(self) -> None:
        sampler = UntracedStatements(ALWAYS_ON)

        assert sampler.should_sample(None, 1, "GET /episodes").decision.is_sampled()
        assert "AlwaysOnSampler" in sampler.get_description()


class TestRequestIds:
    @pytest.mark.parametrize("raw", [b"a", b"A-z_0.9:x", b"x" * 128])
    def test_given_a_safe_token_then_it_is_kept(self, raw: bytes) -> None:
        assert valid_request_id(raw) == raw.decode()

    @pytest.mark.parametrize("raw", [None, b"", b"x" * 129, b"a b", b"a\nb", b'a"b', "é".encode()])
    def test_given_anything_else_then_it_is_refused(self, raw: bytes | None) -> None:
        assert valid_request_id(raw) is None


async def test_given_an_unexpected_error_when_the_500_is_sent_then_it_carries_the_request_id_and_both_lines_do() -> (
    None
):
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestLogMiddleware)

    @app.get("/boom/{thing}")
    async def boom(thing: str) -> None:
        raise RuntimeError(thing)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/boom/x", headers={"X-Request-ID": "req-500"})

    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-500"
    (error,) = [line for line in logs if line["event"] == "unexpected_error"]
    (line,) = [line for line in logs if line["event"] == "request"]
    assert error["request_id"] == line["request_id"] == "req-500"
    assert line["status"] == 500
    assert line["route"] == "/boom/{thing}"
    assert line["log_level"] == "error"


async def test_given_tracing_on_when_a_request_has_a_query_then_its_span_is_named_by_template_without_the_query() -> (
    None
):
    exporter = InMemorySpanExporter()
    tracing = new_tracing("api", [SimpleSpanProcessor(exporter)])
    app = FastAPI()
    app.add_middleware(RequestLogMiddleware)

    @app.get("/things/{thing}")
    async def thing(thing: str) -> dict[str, str]:
        return {}

    tracing.instrument_app(app, untraced={"/livez"})
    transport = httpx.ASGITransport(app=app)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/things/t-1?name=Jane%20Doe")).status_code == 200
            await http.get("/livez")
    tracing.shutdown()

    (span,) = exporter.get_finished_spans()
    assert span.name == "GET /things/{thing}"
    assert "Jane" not in str(dict(span.attributes or {}))
    (line, _probe) = [line for line in logs if line["event"] == "request"]
    assert line["trace_id"] == format(span.context.trace_id, "032x")
