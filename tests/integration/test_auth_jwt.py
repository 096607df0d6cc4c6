"""JWT bearer tokens (RS256) verified against a JWKS served over HTTP on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from api.auth import JwtAuthenticator, build_authenticator
from api.problems import ProblemError
from domain.actors import Role
from workers.errors import StartupError
from workers.settings import Settings

ISSUER = "https://id.carepath.test/"
AUDIENCE = "carepath-api"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


SIGNING_KEY = _key()
OTHER_KEY = _key()


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """A JWKS endpoint holding SIGNING_KEY's public half (kid "k1")."""
    jwk = json.loads(RSAAlgorithm.to_jwk(SIGNING_KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()


def _token(key: Any = SIGNING_KEY, kid: str = "k1", alg: str = "RS256", **claims: Any) -> str:
    payload = {
        "sub": "cal.clinician",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 300,
        "carepath_role": "clinician",
        "carepath_programs": ["adult-iop"],
        **claims,
    }
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def authenticator(jwks_url: str) -> JwtAuthenticator:
    return JwtAuthenticator(jwks_url, ISSUER, AUDIENCE)


class TestJwtAuthenticator:
    """A token counts only if signed by a published key, for us, by our issuer, unexpired."""

    async def test_valid_token_gives_the_user_role_and_programs(
        self, authenticator: JwtAuthenticator
    ) -> None:
        user = await authenticator.authenticate(_token())

        assert (user.user_id, user.role, user.programs) == (
            "cal.clinician",
            Role.CLINICIAN,
            ("adult-iop",),
        )

    @pytest.mark.parametrize(
        ("token_args", "why"),
        [
            ({"aud": "another-service"}, "InvalidAudience"),
            ({"iss": "https://evil.test/"}, "InvalidIssuer"),
            ({"exp": int(time.time()) - 60}, "expired"),
            ({"key": OTHER_KEY}, "InvalidSignature"),
            ({"key": OTHER_KEY, "kid": "k2"}, "signed"),
            ({"key": "a-shared-secret-of-thirty-two-bytes!", "alg": "HS256"}, "InvalidAlgorithm"),
        ],
    )
    async def test_bad_tokens_are_401_with_invalid_token(
        self, authenticator: JwtAuthenticator, token_args: dict[str, Any], why: str
    ) -> None:
        with pytest.raises(ProblemError) as refused:
            await authenticator.authenticate(_token(**token_args))

        assert refused.value.status == 401
        assert refused.value.headers == {
            "WWW-Authenticate": 'Bearer realm="carepath", error="invalid_token"'
        }
        assert why.lower() in refused.value.detail.lower()

    async def test_a_token_without_a_carepath_role_is_403(
        self, authenticator: JwtAuthenticator
    ) -> None:
        with pytest.raises(ProblemError, match="names no CarePath role") as refused:
            await authenticator.authenticate(_token(carepath_role="system"))

        assert refused.value.status == 403

    async def test_unreachable_jwks_is_503_not_401(self) -> None:
        unreachable = JwtAuthenticator("http://127.0.0.1:9/jwks.json", ISSUER, AUDIENCE)

        with pytest.raises(ProblemError, match="cannot be fetched") as refused:
            await unreachable.authenticate(_token())

        assert refused.value.status == 503


class TestSettings:
    def test_jwks_without_issuer_and_audience_is_refused_at_startup(self) -> None:
        with pytest.raises(StartupError, match="CAREPATH_JWT_ISSUER"):
            build_authenticator(Settings(jwks_url="http://127.0.0.1:1/jwks.json"))

    def test_jwks_url_selects_jwt_verification(self, jwks_url: str) -> None:
        settings = Settings(jwks_url=jwks_url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)

        assert isinstance(build_authenticator(settings), JwtAuthenticator)
