"""The API's request limits, failed-authentication limit and security headers, over the
real app with a live worker, Temporal dev server and PostgreSQL (the `api` fixture)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from api_users import bearer

from store.db import Pool

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
REFERRAL = {"client_ref": "MRN-LIMIT", "program_id": "adult-iop", "referral_source": "self"}


async def _episodes(db_pool: Pool) -> int:
    return int(await db_pool.fetchval("SELECT count(DISTINCT episode_id) FROM events"))


class TestRequestLimits:
    async def test_given_a_1_mib_body_when_posted_then_413_problem_and_nothing_started(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        body = json.dumps({**REFERRAL, "reason": "x" * MIB})

        answer = await api.post(
            "/episodes", content=body, headers={"Content-Type": "application/json"}
        )

        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["title"] == "PayloadTooLarge"
        assert await _episodes(db_pool) == 0

    async def test_given_a_1_mib_chunked_body_without_length_then_413(
        self, api: httpx.AsyncClient
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b" " * (16 * 1024)

        answer = await api.post(
            "/episodes", content=chunks(), headers={"Content-Type": "application/json"}
        )

        assert answer.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in answer.request.headers
        assert answer.status_code == 413

    async def test_given_json_nested_100_deep_then_400_problem(
        self, api: httpx.AsyncClient
    ) -> None:
        deep = '{"client_ref": ' + "[" * 100 + "]" * 100 + "}"

        answer = await api.post(
            "/episodes", content=deep, headers={"Content-Type": "application/json"}
        )

        assert answer.status_code == 400
        assert answer.headers["content-type"] == "application/problem+json"
        assert "deeper than 32" in answer.json()["detail"]

    async def test_a_referral_within_the_limits_is_still_accepted(
        self, api: httpx.AsyncClient
    ) -> None:
        answer = await api.post("/episodes", json=REFERRAL, headers=bearer("intake"))

        assert answer.status_code == 201, answer.text


class TestFailedAuthentication:
    async def test_given_repeated_bad_tokens_then_429_with_retry_after_even_for_a_good_one(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        bad = {"Authorization": "Bearer guessed-token"}
        statuses = [(await api.get("/episodes", headers=bad)).status_code for _ in range(10)]

        limited = await api.get("/episodes", headers=bad)
        good = await api.get("/episodes", headers=bearer("director"))

        assert statuses == [401] * 10
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert good.status_code == 429, "the address is limited, whatever token it sends"
        recorded = await db_pool.fetch(
            "SELECT status FROM access_log WHERE path = '/episodes' ORDER BY id"
        )
        assert [r["status"] for r in recorded] == [401] * 10 + [429, 429]

    async def test_a_missing_token_is_not_counted_as_a_guess(self, api: httpx.AsyncClient) -> None:
        for _ in range(12):
            assert (await api.get("/episodes", headers={"Authorization": ""})).status_code == 401

        assert (await api.get("/episodes")).status_code == 200


class TestSecurityHeaders:
    @pytest.mark.parametrize(
        ("path", "user", "status"),
        [
            ("/episodes", "director", 200),
            ("/tasks", "supervisor", 200),
            ("/audit/access-log", "auditor", 200),
            ("/audit/verify", "auditor", 200),
            ("/episodes/nope/timeline", "director", 404),
        ],
    )
    async def test_phi_routes_are_not_stored_nor_sniffed(
        self, api: httpx.AsyncClient, path: str, user: str, status: int
    ) -> None:
        answer = await api.get(path, headers=bearer(user))

        assert answer.status_code == status, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"

    async def test_the_docs_page_carries_a_strict_policy(self, api: httpx.AsyncClient) -> None:
        answer = await api.get("/docs")

        policy = dict(
            part.split(" ", 1) for part in answer.headers["content-security-policy"].split("; ")
        )
        assert answer.status_code == 200
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert policy["default-src"] == "'none'"
        assert "'sha256-" in policy["script-src"]
        assert "'unsafe-inline'" not in policy["script-src"]
        assert policy["frame-ancestors"] == "'none'"
        assert int(answer.headers["content-length"]) == len(answer.content)
