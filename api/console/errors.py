"""Console pages answer errors as pages, not as the API's problem documents.

Anything under the console's prefix that ends in an `application/problem+json` answer (a
refused CSRF token, PostgreSQL or Temporal unavailable, an unexpected error) is shown as
an HTML page with the same status, the problem's title and its detail, and a way back;
the API's own routes keep their problem documents.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.console.routes import PREFIX, TEMPLATES


class ConsoleErrorPages:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body: list[bytes] = []

        async def catch(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if headers.get(b"content-type", b"").startswith(b"application/problem+json"):
                    start = message
                    return
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                page = _page(start["status"], b"".join(body))
                await send(
                    {
                        "type": "http.response.start",
                        "status": start["status"],
                        "headers": [
                            (b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(page)).encode()),
                            *[
                                (k, v)
                                for k, v in start.get("headers", [])
                                if k.lower() in (b"retry-after", b"x-request-id")
                            ],
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": page, "more_body": False})
            else:
                await send(message)

        await self.app(scope, receive, catch)


def _page(status: int, raw: bytes) -> bytes:
    try:
        problem: dict[str, Any] = json.loads(raw)
    except ValueError:
        problem = {}
    html = TEMPLATES.get_template("error.html").render(
        status=status,
        title=_words(str(problem.get("title") or "Something went wrong")),
        detail=str(problem.get("detail") or ""),
        base=PREFIX,
        session=None,
    )
    return html.encode("utf-8")


def _words(name: str) -> str:
    """A problem's name as words: `TemporalUnavailable` -> "Temporal unavailable"."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).capitalize()
