"""Real local servers for notification tests: an HTTP receiver and an SMTP sink on 127.0.0.1.

Both record what they receive; neither is a mock of a library, they speak the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Answers POSTs with the next status of `statuses` (then 200) and records each one."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            receiver.requests.append(Received(dict(self.headers.items()), self.rfile.read(length)))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/carepath"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SmtpSink:
    """Accepts every message (a minimal SMTP server) and keeps it with its envelope."""

    port: int = 0
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sender, rcpts = "", []

        def reply(line: str) -> None:
            writer.write(f"{line}\r\n".encode())

        reply("220 sink ESMTP")
        while line := (await reader.readline()).decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                reply("250-sink")
                reply("250 8BITMIME")
            elif verb == "HELO" or verb in {"NOOP", "RSET"}:
                reply("250 ok")
            elif verb == "MAIL":
                sender, rcpts = line.split(":", 1)[1].strip(" <>").split(">")[0], []
                reply("250 ok")
            elif verb == "RCPT":
                rcpts.append(line.split(":", 1)[1].strip(" <>"))
                reply("250 ok")
            elif verb == "DATA":
                reply("354 end with .")
                await writer.drain()
                data = bytearray()
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                sink.messages.append((sender, rcpts, message_from_bytes(bytes(data))))
                reply("250 queued")
            elif verb == "QUIT":
                reply("221 bye")
                await writer.drain()
                break
            else:
                reply("502 not implemented")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()
