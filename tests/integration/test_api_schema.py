"""schemathesis against the API's own OpenAPI document, in process, on real servers.

Cases are generated from the document (a fixed number, spread over every operation,
the same ones on every run), sent over ASGI with a clinical director's token (a role
that may reach every route's logic; the auditor's for /audit) to one real episode in the
program, and checked: no 5xx, a documented status and content type, and a body that
matches the documented schema.

The suite cannot hang: hypothesis runs in a thread of its own (it drives cases
synchronously) that hands each request to the test's event loop, where the servers'
clients and the worker keep running. Each request has a timeout, the whole run a budget
well below pytest's, and the thread is stopped and joined before the API's client closes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from typing import Any

import httpx
import pytest
import schemathesis
from api_driver import Driver
from api_users import bearer
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.integration

# Cases over all operations together; about ten per operation.
MAX_EXAMPLES = 400
# About 10 s on an idle 2-core machine; the budget leaves room for a busy one, and stays
# far below pytest's own timeout (300 s), so an overrun fails here with a message.
BUDGET_SECONDS = 150
# Longer than any API answer may take (Temporal calls end at CAREPATH_TEMPORAL_RPC_TIMEOUT).
REQUEST_TIMEOUT_SECONDS = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {k: kwargs[k] for k in ("method", "url", "headers", "params", "cookies") if kwargs.get(k)}
    if "json" in kwargs:
        out["content"] = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        out["content"] = data if isinstance(data, bytes) else str(data).encode()
    return out


def test_every_request_body_has_an_example(api_document: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path}"
        for path, operations in api_document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
        and "example" not in operation["requestBody"]["content"]["application/json"]
    ]
    assert not missing


@pytest.fixture
async def api_document(api: httpx.AsyncClient) -> dict[str, Any]:
    document: dict[str, Any] = (await api.get("/openapi.json")).json()
    return document


class OutOfTime(Exception):
    """Raised in the hypothesis thread when the run's budget is spent or it was stopped."""


async def test_api_conforms_to_its_openapi_document(
    api: httpx.AsyncClient, api_document: dict[str, Any]
) -> None:
    schema = schemathesis.openapi.from_dict(api_document)
    episode_id = await Driver(api).at("in_program")
    loop = asyncio.get_running_loop()
    seen: set[str] = set()
    stop = threading.Event()
    ends = time.monotonic() + BUDGET_SECONDS

    @given(case=schema.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        # No shrinking: its number of runs has no bound that a budget could rely on.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        if stop.is_set() or time.monotonic() > ends:
            raise OutOfTime(f"{len(seen)} operations reached within {BUDGET_SECONDS} s")
        if case.path_parameters and "episode_id" in case.path_parameters:
            # A real episode, so that commands reach the decider and reads return state.
            case.path_parameters["episode_id"] = episode_id
        user = "auditor" if case.path.startswith("/audit") else "director"
        kwargs = case.as_transport_kwargs(base_url=str(api.base_url), headers=bearer(user))
        sent = asyncio.run_coroutine_threadsafe(api.request(**_httpx_kwargs(kwargs)), loop)
        try:
            response = sent.result(timeout=REQUEST_TIMEOUT_SECONDS)
        except concurrent.futures.TimeoutError:
            sent.cancel()
            raise AssertionError(
                f"{case.method} {case.path} got no answer in {REQUEST_TIMEOUT_SECONDS} s"
            ) from None
        seen.add(f"{case.method} {case.path}")
        case.validate_response(response, checks=CHECKS)

    cases = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        await asyncio.shield(cases)
    except OutOfTime as spent:
        pytest.fail(f"the conformance run overran its budget: {spent}")
    finally:
        # Cancelled (by pytest's timeout): end the thread at its next case, and wait for
        # it, so that it never sends a request through a client that is closed.
        stop.set()
        await asyncio.wait({cases})
    operations = {
        f"{method.upper()} {path}" for path, ops in api_document["paths"].items() for method in ops
    }
    # Spread over the operations: most of them were exercised.
    assert len(seen & operations) >= 0.8 * len(operations), sorted(operations - seen)
