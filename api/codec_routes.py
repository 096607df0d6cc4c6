"""The codec server: `POST /encode` and `POST /decode` for the Temporal UI and CLI.

Payloads are encrypted (workers.payload_codec), so the Temporal UI and `temporal workflow
show` see ciphertext unless they are pointed at these endpoints, which follow Temporal's
codec server protocol: a JSON body `{"payloads": [...]}` (each payload in protobuf JSON:
base64 metadata values and data) answered with the same shape, encoded or decoded.

They answer only a bearer token of a role that may read episodes (READ_ROLES); each call
is recorded in the access log (a decode as a read: if its record cannot be written, the
caller gets 503 and no plaintext). Browsers may call them cross-origin from one origin
only, the Temporal UI's (CAREPATH_CODEC_UI_ORIGIN).

The API serves them under `/codec` (`carepath up` points the dev server's UI there);
`carepath codec-server` serves them alone, at the root, for a deployment that keeps the
API and the decoding apart.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from api.access import AccessLogMiddleware
from api.auth import READ_ROLES, Authenticator, User, require_role
from api.problems import ProblemError, install_problem_handlers
from store.access_log import AccessLog
from workers.payload_codec import PayloadDecryptionError

CODEC_PREFIX = "/codec"
# What the Temporal UI sends with each call.
CODEC_REQUEST_HEADERS = ("Authorization", "Content-Type", "X-Namespace")

Reader = Annotated[User, Depends(require_role(*READ_ROLES))]


async def _payloads(request: Request) -> list[Payload]:
    body = await request.body()
    try:
        document = json_format.Parse(body or b"{}", Payloads(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ProblemError(
            "MalformedPayloads",
            f'the body must be {{"payloads": [...]}} in protobuf JSON ({exc})',
            400,
        ) from None
    return list(document.payloads)


def _answer(payloads: list[Payload]) -> JSONResponse:
    return JSONResponse({"payloads": [json_format.MessageToDict(p) for p in payloads]})


def codec_router(codec: PayloadCodec) -> APIRouter:
    router = APIRouter(tags=["codec"])

    @router.post(
        "/encode",
        summary="Encrypt payloads (Temporal codec server protocol)",
        response_class=JSONResponse,
    )
    async def encode(request: Request, user: Reader) -> JSONResponse:
        return _answer(await codec.encode(await _payloads(request)))

    @router.post(
        "/decode",
        summary="Decrypt payloads (Temporal codec server protocol); recorded as a read",
        response_class=JSONResponse,
    )
    async def decode(request: Request, user: Reader) -> JSONResponse:
        try:
            return _answer(await codec.decode(await _payloads(request)))
        except PayloadDecryptionError as err:
            raise ProblemError("UndecryptablePayload", str(err), 422) from None

    return router


class CodecCors:
    """CORS for the codec endpoints only, and for one origin only (the Temporal UI's)."""

    def __init__(self, app: ASGIApp, origin: str, prefix: str = CODEC_PREFIX) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/") + "/"
        self.cors = CORSMiddleware(
            app,
            allow_origins=[origin],
            allow_methods=["POST"],
            allow_headers=list(CODEC_REQUEST_HEADERS),
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install_codec(app: FastAPI, codec: PayloadCodec, ui_origin: str | None) -> None:
    """Serve the codec endpoints under CODEC_PREFIX of the API (after its other middleware,
    so the CORS preflight is answered before authentication and the access log)."""
    app.include_router(codec_router(codec), prefix=CODEC_PREFIX)
    if ui_origin:
        app.add_middleware(CodecCors, origin=ui_origin, prefix=CODEC_PREFIX)


def codec_app(
    codec: PayloadCodec, authenticator: Authenticator, access_log: AccessLog, ui_origin: str | None
) -> FastAPI:
    """`carepath codec-server`: the two endpoints at the root, and nothing else."""
    app = FastAPI(
        title="CarePath codec server",
        description="Temporal codec server: decrypts CarePath's payloads for staff.",
    )
    install_problem_handlers(app)
    app.state.authenticator = authenticator
    app.add_middleware(AccessLogMiddleware, access_log=access_log)
    app.include_router(codec_router(codec))
    if ui_origin:
        app.add_middleware(CodecCors, origin=ui_origin, prefix="/")
    return app
