"""Request limits, security headers and the failed-authentication limiter, without servers.

The middlewares are pure ASGI, so they are driven here by hand-made ASGI messages; the
same limits over the real app, PostgreSQL and Temporal are in
tests/integration/test_api_limits.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from api.limits import (
    AuthFailureLimiter,
    HttpLimits,
    RequestLimitMiddleware,
    SecurityHeadersMiddleware,
    content_security_policy,
    json_depth,
)
from api.problems import ProblemError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the whole body and answers with its size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


async def _call(
    app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes], path: str = "/episodes"
) -> tuple[int, dict[bytes, bytes], bytes, int]:
    """Status, headers and body of the answer, and how many body chunks were read."""
    pending = list(chunks)
    read = 0

    async def receive() -> Message:
        nonlocal read
        if not pending:
            return {"type": "http.disconnect"}
        read += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body, read


class TestBodyLimit:
    async def test_given_a_content_length_over_the_limit_then_413_before_any_byte_is_read(
        self,
    ) -> None:
        app = RequestLimitMiddleware(_echo, HttpLimits(max_body_bytes=1024))

        status, headers, body, read = await _call(
            app, [(b"content-length", b"1048576")], [b"x" * 1024] * 1024
        )

        assert status == 413
        assert headers[b"content-type"] == b"application/problem+json"
        assert json.loads(body)["title"] == "PayloadTooLarge"
        assert read == 0

    async def test_given_a_chunked_body_over_the_limit_then_413_once_the_limit_is_passed(
        self,
    ) -> None:
        app = RequestLimitMiddleware(_echo, HttpLimits(max_body_bytes=4096))

        status, _, _, read = await _call(
            app, [(b"transfer-encoding", b"chunked")], [b"x" * 1024] * 1024
        )

        assert status == 413
        assert read == 5, "reading stopped at the first chunk past the limit"

    async def test_given_a_body_within_the_limit_then_the_app_reads_it_whole(self) -> None:
        app = RequestLimitMiddleware(_echo, HttpLimits(max_body_bytes=4096))

        status, _, body, _ = await _call(app, [(b"transfer-encoding", b"chunked")], [b"[1,", b"2]"])

        assert (status, body) == (200, b"5")

    async def test_given_json_nested_too_deeply_then_400_before_it_is_parsed(self) -> None:
        app = RequestLimitMiddleware(_echo, HttpLimits(max_json_depth=8))
        deep = b"[" * 9 + b"]" * 9
        headers = [(b"content-type", b"application/json"), (b"content-length", b"18")]

        status, _, body, _ = await _call(app, headers, [deep])
        ok, _, _, _ = await _call(app, headers, [b"[" * 8 + b"]" * 8])

        assert status == 400
        assert json.loads(body)["title"] == "MalformedJson"
        assert ok == 200

    @pytest.mark.parametrize(
        ("text", "depth"),
        [
            ("1", 0),
            ('{"a": [1, {"b": 2}]}', 3),
            ('{"a": "[[[[[[[[[[", "b": "\\"[["}', 1),
            ("[[[]], [[[]]]]", 4),
            ('["\\\\", "[[", "\\\\\\"[["]', 1),
            ("[" * 500, 500),
        ],
    )
    def test_json_depth_counts_brackets_outside_strings(self, text: str, depth: int) -> None:
        assert json_depth(text.encode()) == depth


class TestSecurityHeaders:
    async def test_given_an_episode_route_then_no_store_and_nosniff(self) -> None:
        app = SecurityHeadersMiddleware(_echo)

        _, headers, _, _ = await _call(app, [], [b""], path="/episodes/e-1")

        assert headers[b"cache-control"] == b"no-store"
        assert headers[b"x-content-type-options"] == b"nosniff"
        assert b"content-security-policy" not in headers

    def test_the_policy_of_a_page_allows_what_it_names_and_inline_scripts_by_hash(self) -> None:
        page = (
            '<html><head><link type="text/css" rel="stylesheet" href="https://cdn.example/ui.css">'
            '<link rel="shortcut icon" href="https://img.example/favicon.png"></head><body>'
            '<script src="https://cdn.example/ui.js"></script><script>start()</script></body>'
        )

        policy = dict(part.split(" ", 1) for part in content_security_policy(page).split("; "))

        assert policy["default-src"] == "'none'"
        assert policy["script-src"].split() == [
            f"'sha256-{base64.b64encode(hashlib.sha256(b'start()').digest()).decode()}'",
            "https://cdn.example/ui.js",
        ]
        assert "'unsafe-inline'" not in policy["script-src"]
        assert "https://cdn.example/ui.css" in policy["style-src"]
        assert "https://img.example/favicon.png" in policy["img-src"]
        assert policy["frame-ancestors"] == "'none'"


class TestAuthFailureLimiter:
    def test_given_n_failures_in_the_window_then_429_until_the_oldest_leaves_it(self) -> None:
        clock = Clock()
        limiter = AuthFailureLimiter(3, 60, clock=clock)
        for _ in range(3):
            limiter.check("10.0.0.1")
            limiter.failed("10.0.0.1")
            clock.now += 10

        with pytest.raises(ProblemError) as refused:
            limiter.check("10.0.0.1")
        limiter.check("10.0.0.2")  # another address is not affected

        assert refused.value.status == 429
        assert refused.value.headers == {"Retry-After": "30"}
        clock.now += 30
        limiter.check("10.0.0.1")

    def test_given_a_limit_of_zero_then_nothing_is_limited(self) -> None:
        limiter = AuthFailureLimiter(0, 60)
        for _ in range(100):
            limiter.failed("10.0.0.1")

        limiter.check("10.0.0.1")

    def test_given_many_addresses_then_the_oldest_are_forgotten(self) -> None:
        limiter = AuthFailureLimiter(1, 60, max_addresses=2)
        for address in ("a", "b", "c"):
            limiter.failed(address)

        limiter.check("a")
        with pytest.raises(ProblemError):
            limiter.check("c")
