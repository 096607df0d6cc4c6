"""schemathesis against the API's own OpenAPI document, in process, on real servers.

Cases are generated from the document (a bounded number, spread over every operation),
sent over ASGI with a clinical director's token (a role that may reach every route's
logic; the auditor's for /audit) to one real episode in the program, and checked: no 5xx, a documented status and content type, and a body that
matches the documented schema.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import schemathesis
from api_driver import Driver
from api_users import bearer
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.integration

# Cases over all operations together; about ten per operation.
MAX_EXAMPLES = 400
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


async def test_api_conforms_to_its_openapi_document(
    api: httpx.AsyncClient, api_document: dict[str, Any]
) -> None:
    schema = schemathesis.openapi.from_dict(api_document)
    episode_id = await Driver(api).at("in_program")
    # Hypothesis drives cases synchronously, so it runs in a thread and hands each request
    # to this loop, which keeps running the servers' clients and the worker meanwhile.
    loop = asyncio.get_running_loop()
    seen: set[str] = set()

    @given(case=schema.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        if case.path_parameters and "episode_id" in case.path_parameters:
            # A real episode, so that commands reach the decider and reads return state.
            case.path_parameters["episode_id"] = episode_id
        user = "auditor" if case.path.startswith("/audit") else "director"
        kwargs = case.as_transport_kwargs(base_url=str(api.base_url), headers=bearer(user))
        request = api.request(**_httpx_kwargs(kwargs))
        response = asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)
        seen.add(f"{case.method} {case.path}")
        case.validate_response(response, checks=CHECKS)

    await asyncio.to_thread(run)
    operations = {
        f"{method.upper()} {path}" for path, ops in api_document["paths"].items() for method in ops
    }
    # Spread over the operations: most of them were exercised.
    assert len(seen & operations) >= 0.8 * len(operations), sorted(operations - seen)
