"""What a request may be, and what every response says about caching and framing.

Three pure ASGI pieces, all configured by `HttpLimits` (README "Settings"):

- `RequestLimitMiddleware` refuses a body over `max_body_bytes` with 413 before anything
  parses it: at once when `Content-Length` says so, and by counting the bytes as they
  arrive for a chunked body. A JSON body nested deeper than `max_json_depth` is refused
  with 400 before the JSON parser sees it.
- `SecurityHeadersMiddleware` adds `X-Content-Type-Options: nosniff` (and no framing, no
  referrer) to every response, `Cache-Control: no-store` to every response but the API's
  own description, and to HTML (the /docs page) a Content-Security-Policy that allows
  exactly the scripts and style sheets the page names, inline scripts by their hash.
- `AuthFailureLimiter` counts failed authentications per client address: after
  `auth_failure_limit` within `auth_failure_window_seconds` the address gets 429 with
  `Retry-After` until the oldest failure leaves the window (api.auth.current_user).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from itertools import accumulate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, ProblemError

# The API's own description: cacheable, holds nothing about an episode.
DESCRIPTION_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
# Swagger UI's and ReDoc's own files, served for those pages (api.docs_routes).
DESCRIPTION_ASSETS_PREFIX = "/docs/assets/"


def is_api_description(path: str) -> bool:
    """Whether `path` is the API's description or one of its pages' files."""
    return path in DESCRIPTION_PATHS or path.startswith(DESCRIPTION_ASSETS_PREFIX)


@dataclass(frozen=True)
class HttpLimits:
    """The request limits; the defaults are the settings' defaults."""

    max_body_bytes: int = 256 * 1024
    max_json_depth: int = 32
    auth_failure_limit: int = 10
    auth_failure_window_seconds: float = 60.0


# --- request bodies ---------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


async def _refuse(send: Send, status: int, code: str, detail: str, path: str) -> None:
    """Answer with a problem document, before the app has seen the request."""
    body = json.dumps(
        {
            "type": PROBLEM_BASE + code,
            "title": code,
            "status": status,
            "detail": detail,
            "instance": path,
        }
    ).encode("utf-8")
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            # The rest of an oversized body is not read: the connection cannot be reused.
            (b"connection", b"close"),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


# A JSON string once its escapes (backslash and quote) are removed.
_JSON_STRING = re.compile(rb'"[^"]*"')
# Every opening bracket becomes +1, every closing one -1 (as signed bytes), the rest goes.
_AS_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (0 for a scalar).

    Brackets inside strings do not count. The text need not be valid JSON: the parser
    judges that later; this only has to stop a text that would nest too deeply. The
    depth is the highest running sum of +1 and -1 steps, summed and compared in C
    (`accumulate` over a memoryview): a 256 KiB body of brackets takes about 15 ms.
    """
    # Escaped backslashes first, so `\\"` still ends its string; outside strings JSON
    # has no backslash.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    steps = _JSON_STRING.sub(b"", unescaped).translate(_AS_STEPS, _NOT_BRACKETS)
    return max(0, max(accumulate(memoryview(steps).cast("b")), default=0))


class RequestLimitMiddleware:
    """413 for a body over `max_body_bytes`, 400 for JSON nested over `max_json_depth`.

    The body is read here (it is at most `max_body_bytes`), then handed to the app
    unchanged; nothing of it is parsed before both limits are checked.
    """

    def __init__(self, app: ASGIApp, limits: HttpLimits) -> None:
        self.app = app
        self.max_bytes = limits.max_body_bytes
        self.max_depth = limits.max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if length is None and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(scope, send)
            return
        try:
            body, last = await self._read(receive)
        except _BodyTooLarge:
            await self._too_large(scope, send)
            return
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        # FastAPI parses a body without a content type as JSON too.
        json_like = media in (b"", b"text/json") or media.endswith((b"/json", b"+json"))
        if json_like and json_depth(body) > self.max_depth:
            await _refuse(
                send,
                400,
                "MalformedJson",
                f"the request body nests arrays or objects deeper than {self.max_depth} "
                "levels: no CarePath request needs that many",
                scope.get("path", ""),
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return last if last["type"] == "http.disconnect" else await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> tuple[bytes, Message]:
        """The whole body; raises `_BodyTooLarge` as soon as it exceeds the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), message  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), message

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await _refuse(
            send,
            413,
            "PayloadTooLarge",
            f"the request body is larger than {self.max_bytes} bytes: no CarePath request "
            "needs that much; send less",
            scope.get("path", ""),
        )


# --- response headers -------------------------------------------------------------------


class _PageSources(HTMLParser):
    """The scripts, style sheets and images an HTML page loads, and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.images: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False
        self._script = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v or "" for k, v in attrs}
        if tag == "script":
            if named.get("src"):
                self.scripts.append(named["src"])
            else:
                self._in_script, self._script = True, ""
        elif tag == "link" and named.get("href"):
            rel = named.get("rel", "").lower()
            (self.styles if "stylesheet" in rel else self.images).append(named["href"])
        elif tag == "img" and named.get("src"):
            self.images.append(named["src"])

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self._script += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script:
            self._in_script = False
            self.inline_scripts.append(self._script)


def _source(url: str) -> str | None:
    """A CSP source for a URL a page names: itself if absolute, 'self' if relative."""
    if url.startswith(("https://", "http://")):
        return url.replace(";", "%3B").replace(",", "%2C").replace(" ", "%20")
    if url.startswith("data:"):
        return "data:"
    return "'self'"


# What `_PageSources` looks at: script elements (with their inline text), link and img
# tags. Comments are left out first, as the parser would.
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SOURCE_TAGS = re.compile(
    r"<script\b[^>]*>.*?</script\s*>|<(?:link|img)\b[^>]*>", re.DOTALL | re.IGNORECASE
)


def _source_tags(html: str) -> str:
    """Only the tags of `html` that name a source, for the parser: a long page (a list of
    hundreds of rows) is scanned by one regular expression instead of parsed tag by tag."""
    return "".join(m.group(0) for m in _SOURCE_TAGS.finditer(_COMMENT.sub("", html)))


def content_security_policy(html: str, *, console: bool = False) -> str:
    """A strict policy for this page: nothing but what it names, inline scripts by hash.

    A console page (`api.console`) sets no style from script and posts its forms to this
    origin; the API's description pages (Swagger UI, ReDoc) post nothing."""
    page = _PageSources()
    page.feed(_source_tags(html))
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode() + "'"
        for s in page.inline_scripts
    ]

    def sources(urls: list[str], *extra: str) -> str:
        found = dict.fromkeys([*extra, *filter(None, map(_source, urls))])
        return " ".join(found) or "'none'"

    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {sources(page.scripts, *hashes)}",
            # Swagger UI and ReDoc set some styles from their scripts; console pages none.
            "style-src "
            + (sources(page.styles) if console else sources(page.styles, "'unsafe-inline'")),
            f"img-src {sources(page.images, 'self', 'data:')}",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'" if console else "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeadersMiddleware:
    """nosniff, no framing and no referrer everywhere; no-store on everything but the API's
    description; a page-exact Content-Security-Policy on HTML."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        store = not is_api_description(scope.get("path", ""))
        start: Message | None = None
        html: list[bytes] = []

        async def secured(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not (store and k.lower() == b"cache-control")
                ]
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if store:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    start = message  # held until the page is known
                    return
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                html.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                page = b"".join(html)
                policy = content_security_policy(
                    page.decode("utf-8", errors="replace"), console=store
                )
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers += [
                    (b"content-security-policy", policy.encode()),
                    (b"content-length", str(len(page)).encode()),
                ]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": page, "more_body": False})
            else:
                await send(message)

        await self.app(scope, receive, secured)


# --- failed authentication --------------------------------------------------------------


class AuthFailureLimiter:
    """Failed authentications per client address in a sliding window; bounded memory."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        horizon = self._clock() - self._window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def check(self, address: str) -> None:
        """Raise a 429 problem if `address` failed too often within the window."""
        if self._limit <= 0:
            return
        failures = self._recent(address)
        if failures is None or len(failures) < self._limit:
            return
        # Until enough failures have left the window to fall below the limit.
        wait = failures[len(failures) - self._limit] + self._window - self._clock()
        seconds = max(1, math.ceil(wait))
        raise ProblemError(
            "TooManyFailedAuthentications",
            f"{len(failures)} failed authentications from this address in the last "
            f"{self._window:g} s: wait {seconds} s, then send a valid token",
            429,
            headers={"Retry-After": str(seconds)},
        )

    def failed(self, address: str) -> None:
        """Count one failed authentication from `address`."""
        if self._limit <= 0:
            return
        failures = self._recent(address) or deque()
        failures.append(self._clock())
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(failures) > self._limit:
            failures.popleft()  # the oldest beyond the limit no longer matter
        while len(self._failures) > self._max_addresses:
            self._failures.popitem(last=False)
