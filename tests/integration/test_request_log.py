"""Request logs: one line per API request, and its request id on the answer and on every
line logged while it was served (api.request_log)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from api_driver import REFERRAL, Driver
from api_users import USERS, bearer
from structlog.testing import capture_logs

pytestmark = pytest.mark.integration

GENERATED = re.compile(r"[0-9a-f]{32}")
FIELDS = {"method", "route", "status", "duration_ms", "request_id"}


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every line logged, with the context variables merged as workers.logging merges them."""
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        yield captured


def request_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == "request"]


class TestRequestId:
    async def test_given_no_request_id_when_a_request_is_answered_then_a_new_id_is_returned(
        self, api: httpx.AsyncClient
    ) -> None:
        first = await api.get("/livez")
        second = await api.get("/livez")

        assert GENERATED.fullmatch(first.headers["X-Request-ID"])
        assert GENERATED.fullmatch(second.headers["X-Request-ID"])
        assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]

    async def test_given_a_safe_request_id_when_a_request_is_answered_then_it_is_echoed(
        self, api: httpx.AsyncClient, logs: list[dict[str, Any]]
    ) -> None:
        response = await api.get("/episodes", headers={"X-Request-ID": "lb-7f3a.2:9_x"})

        assert response.headers["X-Request-ID"] == "lb-7f3a.2:9_x"
        (line,) = request_lines(logs)
        assert line["request_id"] == "lb-7f3a.2:9_x"

    @pytest.mark.parametrize(
        "sent",
        ["x" * 129, "two words", "<script>", "a/b", "é", ""],
        ids=["too-long", "space", "markup", "slash", "non-ascii", "empty"],
    )
    async def test_given_an_unsafe_request_id_when_a_request_is_answered_then_a_new_one_replaces_it(
        self, api: httpx.AsyncClient, logs: list[dict[str, Any]], sent: str
    ) -> None:
        response = await api.get("/episodes", headers={"X-Request-ID": sent.encode()})

        returned = response.headers["X-Request-ID"]
        assert GENERATED.fullmatch(returned)
        (line,) = request_lines(logs)
        assert line["request_id"] == returned


class TestOneLinePerRequest:
    async def test_given_a_read_when_it_succeeds_then_one_line_names_route_status_user_and_role(
        self, api: httpx.AsyncClient, logs: list[dict[str, Any]]
    ) -> None:
        episode_id = await Driver(api).refer()
        logs.clear()

        response = await api.get(f"/episodes/{episode_id}", headers=bearer("clinician"))

        assert response.status_code == 200
        (line,) = request_lines(logs)
        user_id, role, _ = USERS["clinician"]
        assert FIELDS | {"user_id", "role"} <= line.keys()
        assert line["method"] == "GET"
        assert line["route"] == "/episodes/{episode_id}"
        assert line["status"] == 200
        assert line["user_id"] == user_id
        assert line["role"] == role
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] >= 0
        assert line["request_id"] == response.headers["X-Request-ID"]
        assert line["log_level"] == "info"
        # Tracing is off: no trace id.
        assert "trace_id" not in line
        # The path itself (with the episode id) is not in the line; the template is.
        assert episode_id not in str(line)

    async def test_given_a_refused_referral_when_it_is_answered_422_then_it_is_logged_without_its_body(
        self, api: httpx.AsyncClient, logs: list[dict[str, Any]]
    ) -> None:
        body = {**REFERRAL, "client_ref": "MRN-SECRET-4711", "program_id": "no-such-program"}

        response = await api.post("/episodes?note=QUERY-SECRET", json=body)

        assert response.status_code == 422, response.text
        (line,) = request_lines(logs)
        assert line["method"] == "POST"
        assert line["route"] == "/episodes"
        assert line["status"] == 422
        assert line["role"] == "clinical_director"
        # Nothing the caller sent reaches any line: neither the body nor the query.
        assert "MRN-SECRET-4711" not in str(logs)
        assert "QUERY-SECRET" not in str(logs)

    async def test_given_an_unknown_episode_when_it_is_read_then_the_404_is_logged_with_its_template(
        self, api: httpx.AsyncClient, logs: list[dict[str, Any]]
    ) -> None:
        response = await api.get("/episodes/no-such-episode/timeline")

        assert response.status_code == 404
        (line,) = request_lines(logs)
        assert line["route"] == "/episodes/{episode_id}/timeline"
        assert line["status"] == 404
        assert "no-such-episode" not in str(line)

    async def test_given_no_token_when_a_request_is_refused_401_then_it_is_logged_without_a_user(
        self, api: httpx.AsyncClient, logs: list[dict[str, Any]]
    ) -> None:
        response = await api.get("/episodes", headers={"Authorization": ""})

        assert response.status_code == 401
        (line,) = request_lines(logs)
        assert line["status"] == 401
        assert "user_id" not in line
        assert "role" not in line

    async def test_given_a_path_no_route_matches_when_it_is_answered_404_then_the_path_is_not_logged(
        self, api: httpx.AsyncClient, logs: list[dict[str, Any]]
    ) -> None:
        response = await api.get("/MRN-1234/whatever")

        assert response.status_code == 404
        (line,) = request_lines(logs)
        assert line["route"] is None
        assert "MRN-1234" not in str(logs)


class TestLinesWithinARequest:
    async def test_given_a_referral_when_the_handler_logs_then_its_line_carries_the_request_id(
        self, api: httpx.AsyncClient, logs: list[dict[str, Any]]
    ) -> None:
        response = await api.post("/episodes", json=REFERRAL, headers={"X-Request-ID": "ref-1"})

        assert response.status_code == 201
        (referred,) = [line for line in logs if line["event"] == "episode_referred"]
        assert referred["request_id"] == "ref-1"
        (line,) = request_lines(logs)
        assert line["request_id"] == "ref-1"
        # Nothing stays bound once the request is done.
        assert structlog.contextvars.get_contextvars() == {}
