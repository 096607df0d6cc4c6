"""The OpenAPI document reads well: operations grouped by tags in the order a user meets
them, each tag described, every error answer shown with an example problem document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

# `codec` is there when the API encrypts payloads (as the test stack does).
TAG_ORDER = [
    "episodes",
    "commands",
    "worklists",
    "measures",
    "audit",
    "access log",
    "fhir",
    "codec",
    "health",
]


@pytest.fixture
async def document(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def test_given_the_document_then_its_tags_come_in_the_order_a_user_meets_them(
    document: dict[str, Any],
) -> None:
    assert [tag["name"] for tag in document["tags"]] == TAG_ORDER
    assert all(tag["description"].strip() for tag in document["tags"])


def test_given_the_document_then_every_operation_has_one_described_tag(
    document: dict[str, Any],
) -> None:
    described = {tag["name"] for tag in document["tags"] if tag.get("description")}

    untagged = [
        f"{method} {path}"
        for method, path, operation in _operations(document)
        if not operation.get("tags") or not set(operation["tags"]) <= described
    ]

    assert untagged == []


def test_given_the_document_then_the_episode_operations_come_first_refer_list_show(
    document: dict[str, Any],
) -> None:
    first = [(m, p) for m, p, _ in _operations(document)][:3]

    assert first == [
        ("POST", "/episodes"),
        ("GET", "/episodes"),
        ("GET", "/episodes/{episode_id}"),
    ]
    tags = [operation["tags"][0] for _, _, operation in _operations(document)]
    assert sorted(tags, key=TAG_ORDER.index) == tags


def test_given_the_document_then_every_error_answer_has_a_problem_example(
    document: dict[str, Any],
) -> None:
    missing = []
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status[0] not in "45":
                continue
            content = response.get("content", {})
            # /healthz answers 503 with its own health document, /fhir an OperationOutcome;
            # every other error is a problem document.
            media = (
                content.get("application/problem+json")
                or content.get("application/json")
                or content.get("application/fhir+json")
            )
            if not media or "example" not in media:
                missing.append(f"{method} {path} {status}")
                continue
            if "application/problem+json" in content:
                example = media["example"]
                assert example["status"] == int(status), (method, path, status)
                assert set(example) >= {"type", "title", "status", "detail"}
            if "application/fhir+json" in content:
                assert media["example"]["resourceType"] == "OperationOutcome", (method, path)

    assert missing == []


def test_given_the_lists_then_each_takes_a_cursor_and_answers_a_next_link(
    document: dict[str, Any],
) -> None:
    lists = ["/episodes", "/caseload", "/tasks", "/deadlines", "/worklists/below-intensity"]
    lists.append("/audit/access-log")

    for path in lists:
        operation = document["paths"][path]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"cursor", "limit"} <= names, path
        assert "422" in operation["responses"], path
