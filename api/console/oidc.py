"""Console sign-in through an OpenID Connect identity provider (CAREPATH_OIDC_*).

The authorization code flow with PKCE (S256), `state` and `nonce`:

1. `GET /console/oidc/login` draws a state, a nonce and a PKCE verifier, keeps them in a
   short-lived cookie MAC'd under the console's secret (HttpOnly, SameSite=Lax: the
   provider's redirect back is a cross-site navigation, which a Strict cookie would not
   follow), and redirects to the provider's authorization endpoint.
2. `GET /console/oidc/callback` checks that the returned `state` is the cookie's, exchanges
   the code with the verifier at the token endpoint, and validates the ID token: RS256
   signature against the provider's JWKS, issuer, audience (the client id), nonce and
   expiry. Its claims map to a user exactly as the API's JWTs do (`api.auth`'s role and
   programs claims), and the console session starts as with a token.

The provider's endpoints come from its discovery document
(`<issuer>/.well-known/openid-configuration`), fetched on first use and kept. Anything
that goes wrong shows the sign-in page with a message; nothing about the flow is logged
beyond its outcome.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import structlog
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from httpx._client import UseClientDefault

from api.auth import User, user_from_claims
from api.console.routes import (
    PREFIX,
    Console,
    _safe_next,
    _secure,
    _set_session,
    signin_page,
)
from api.problems import ProblemError
from workers.errors import StartupError
from workers.settings import Settings

log = structlog.get_logger("carepath.console")

# The flow's cookie: state, nonce, PKCE verifier and where to go after, for this long.
FLOW_COOKIE = "carepath_oidc"
FLOW_PATH = f"{PREFIX}/oidc"
FLOW_SECONDS = 600
# How long the provider's keys are kept before they are fetched again (a key id not
# among them is fetched again at once, for a provider that rotated its keys).
JWKS_SECONDS = 300
# Clock skew allowed between the provider and us when checking `exp` and `iat`.
LEEWAY_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class OidcConfig:
    """An identity provider the console signs staff in through."""

    issuer: str
    client_id: str
    redirect_url: str
    client_secret: str | None = None
    scopes: str = "openid profile email"
    # The provider as the sign-in page names it ("Sign in with <name>").
    name: str = "your identity provider"
    role_claim: str = "carepath_role"
    programs_claim: str = "carepath_programs"


def oidc_config(settings: Settings) -> OidcConfig | None:
    """The identity provider the settings name, or None; `StartupError` if half set."""
    if not settings.oidc_issuer:
        return None
    client_id, redirect_url = settings.oidc_client_id, settings.oidc_redirect_url
    missing = [
        name
        for name, value in (
            ("CAREPATH_OIDC_CLIENT_ID", client_id),
            ("CAREPATH_OIDC_REDIRECT_URL", redirect_url),
        )
        if not value
    ]
    if not client_id or not redirect_url:
        raise StartupError(
            f"CAREPATH_OIDC_ISSUER is set but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not: set them too, or unset the issuer"
        )
    if "openid" not in settings.oidc_scopes.split():
        raise StartupError("CAREPATH_OIDC_SCOPES must include 'openid'")
    secret = settings.oidc_client_secret
    return OidcConfig(
        issuer=settings.oidc_issuer.rstrip("/"),
        client_id=client_id,
        redirect_url=redirect_url,
        client_secret=secret.get_secret_value() if secret is not None else None,
        scopes=settings.oidc_scopes,
        name=settings.oidc_provider_name or urlsplit(settings.oidc_issuer).hostname or "",
        role_claim=settings.jwt_role_claim,
        programs_claim=settings.jwt_programs_claim,
    )


class SignInFailed(Exception):
    """Why a sign-in through the provider ends without a session, in the staff's words."""

    def __init__(self, message: str, status: int = 401, reason: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Flow:
    """One sign-in in progress, as its cookie holds it."""

    state: str
    nonce: str
    verifier: str
    next: str
    began: float


class OidcLogin:
    """The provider's client: discovery, the authorization URL, the code exchange and the
    ID token's validation."""

    def __init__(self, config: OidcConfig, secret: bytes) -> None:
        self.config = config
        self._secret = secret
        self._discovery: dict[str, Any] | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._keys_at = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    # --- the flow's cookie ---------------------------------------------------------------

    def new_flow(self, next_path: str) -> Flow:
        return Flow(
            state=generate_token(43),
            nonce=generate_token(43),
            # RFC 7636: 43 to 128 characters of [A-Za-z0-9-._~].
            verifier=generate_token(64),
            next=next_path,
            began=time.time(),
        )

    def encode_flow(self, flow: Flow) -> str:
        body = json.dumps(
            {"s": flow.state, "n": flow.nonce, "v": flow.verifier, "x": flow.next, "b": flow.began},
            separators=(",", ":"),
        ).encode()
        payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
        return f"{payload}.{self._mac(payload)}"

    def decode_flow(self, cookie: str | None) -> Flow | None:
        """The cookie's flow if it is genuine and recent; None otherwise."""
        if not cookie or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            raw = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            flow = Flow(
                state=str(raw["s"]),
                nonce=str(raw["n"]),
                verifier=str(raw["v"]),
                next=str(raw["x"]),
                began=float(raw["b"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if time.time() - flow.began > FLOW_SECONDS:
            return None
        return flow

    def _mac(self, payload: str) -> str:
        digest = hmac.new(
            self._secret, b"carepath console oidc flow\x00" + payload.encode(), hashlib.sha256
        )
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    # --- the provider ----------------------------------------------------------------------

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = f"{self.config.issuer}/.well-known/openid-configuration"
            document = await self._get_json(url)
            if document.get("issuer", "").rstrip("/") != self.config.issuer:
                raise SignInFailed(
                    "The identity provider's discovery document names another issuer: "
                    "ask the administrator to check CAREPATH_OIDC_ISSUER.",
                    502,
                    "discovery",
                )
            for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(endpoint), str):
                    raise SignInFailed(
                        f"The identity provider's discovery document has no {endpoint}.",
                        502,
                        "discovery",
                    )
            self._discovery = document
        return self._discovery

    async def authorization_url(self, flow: Flow) -> str:
        document = await self.discovery()
        url: str = prepare_grant_uri(
            document["authorization_endpoint"],
            self.config.client_id,
            "code",
            redirect_uri=self.config.redirect_url,
            scope=self.config.scopes,
            state=flow.state,
            nonce=flow.nonce,
            code_challenge=create_s256_code_challenge(flow.verifier),
            code_challenge_method="S256",
        )
        return url

    async def user_for(self, code: str, flow: Flow) -> User:
        """Exchange the code with the flow's verifier; the ID token's user."""
        document = await self.discovery()
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self.config.redirect_url,
            code_verifier=flow.verifier,
            client_id=self.config.client_id,
        )
        # client_secret_basic; a public client identifies itself by `client_id` alone.
        auth: httpx.Auth | UseClientDefault = httpx.USE_CLIENT_DEFAULT
        if self.config.client_secret is not None:
            auth = httpx.BasicAuth(self.config.client_id, self.config.client_secret)
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as http:
                answer = await http.post(
                    document["token_endpoint"],
                    content=body,
                    auth=auth,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                )
        except httpx.HTTPError:
            raise _unreachable() from None
        if answer.status_code != 200:
            error = _json_or_empty(answer).get("error", f"HTTP {answer.status_code}")
            log.info("console_oidc_token_refused", error=str(error)[:80])
            raise SignInFailed(
                f"The identity provider refused to complete the sign-in ({str(error)[:80]}): "
                "sign in again."
            )
        id_token = _json_or_empty(answer).get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("The identity provider sent no ID token: sign in again.")
        claims = await self._validated(id_token, flow.nonce)
        try:
            return user_from_claims(claims, self.config.role_claim, self.config.programs_claim)
        except ProblemError as err:
            raise SignInFailed(err.detail, err.status, "claims") from None

    async def _validated(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
        except jwt.PyJWTError:
            raise _invalid("it is not a JWT") from None
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=["RS256"],
                issuer=self.config.issuer,
                audience=self.config.client_id,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("it has expired") from None
        except jwt.InvalidAudienceError:
            raise _invalid("it was issued for another application") from None
        except jwt.InvalidIssuerError:
            raise _invalid("it was issued by another provider") from None
        except jwt.PyJWTError:
            raise _invalid("its signature or claims do not verify") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise _invalid("it was issued for another application")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
            raise _invalid("it belongs to another sign-in")
        return claims

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        for fresh in (False, True):
            keys = await self._jwks(fresh)
            found = [k for k in keys.keys if kid is None or k.key_id == kid]
            if found:
                return found[0]
        raise _invalid("it is signed by a key the provider does not publish")

    async def _jwks(self, fresh: bool) -> jwt.PyJWKSet:
        stale = time.monotonic() - self._keys_at > JWKS_SECONDS
        if self._keys is None or fresh or stale:
            document = await self.discovery()
            raw = await self._get_json(document["jwks_uri"])
            try:
                self._keys = jwt.PyJWKSet.from_dict(raw)
            except jwt.PyJWTError:
                raise SignInFailed(
                    "The identity provider's keys cannot be read.", 502, "jwks"
                ) from None
            self._keys_at = time.monotonic()
        return self._keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as http:
                answer = await http.get(url, headers={"Accept": "application/json"})
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError):
            raise _unreachable() from None
        if not isinstance(document, dict):
            raise _unreachable()
        return document


def _json_or_empty(answer: httpx.Response) -> dict[str, Any]:
    try:
        document = answer.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _unreachable() -> SignInFailed:
    return SignInFailed(
        "The identity provider cannot be reached right now: try again shortly.", 502, "unreachable"
    )


def _invalid(why: str) -> SignInFailed:
    return SignInFailed(
        f"The identity provider's answer was refused: {why}. Sign in again.", 401, "id_token"
    )


# --- the routes -------------------------------------------------------------------------------


def signin_failed_page(
    request: Request, console: Console, message: str, status: int, next_path: str
) -> HTMLResponse:
    """The sign-in page with `message`, its token form ready (as `/signin` serves it)."""
    response = signin_page(request, console, next_path, error=message, status=status)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


def oidc_router(console: Console, login: OidcLogin) -> APIRouter:
    router = APIRouter(prefix=FLOW_PATH, include_in_schema=False)

    @router.get("/login")
    async def begin(request: Request, next: str | None = None) -> Response:
        target = _safe_next(next)
        flow = login.new_flow(target)
        try:
            url = await login.authorization_url(flow)
        except SignInFailed as failed:
            log.info("console_oidc_refused", reason=failed.reason)
            return signin_failed_page(request, console, failed.message, failed.status, target)
        moved = RedirectResponse(url, status_code=303)
        moved.set_cookie(
            FLOW_COOKIE,
            login.encode_flow(flow),
            max_age=FLOW_SECONDS,
            httponly=True,
            samesite="lax",
            secure=_secure(request),
            path=FLOW_PATH,
        )
        return moved

    @router.get("/callback", response_class=HTMLResponse)
    async def callback(
        request: Request,
        code: str | None = None,
        state: str | None = None,
        error: str | None = None,
    ) -> Response:
        flow = login.decode_flow(request.cookies.get(FLOW_COOKIE))
        target = flow.next if flow is not None else f"{PREFIX}/"
        try:
            if flow is None or state is None or not hmac.compare_digest(state, flow.state):
                raise SignInFailed(
                    "This sign-in has expired or did not start here: sign in again.",
                    400,
                    "state",
                )
            if error is not None:
                raise SignInFailed(
                    f"{login.name} did not sign you in ({error[:80]}): sign in again, or "
                    "use another account.",
                    401,
                    "provider_error",
                )
            if not code:
                raise SignInFailed(
                    f"{login.name} sent no authorization code: sign in again.", 400, "no_code"
                )
            user = await login.user_for(code, flow)
        except SignInFailed as failed:
            log.info("console_signin_refused", via="oidc", reason=failed.reason)
            return signin_failed_page(request, console, failed.message, failed.status, target)
        request.state.user = user
        session = console.sessions.begin(user)
        log.info("console_signed_in", user_id=user.user_id, role=user.role.value, via="oidc")
        moved = RedirectResponse(_safe_next(target), status_code=303)
        _set_session(request, moved, console, session)
        moved.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        return moved

    return router
