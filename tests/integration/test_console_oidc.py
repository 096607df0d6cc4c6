"""The console's sign-in through an OpenID Connect provider (api/console/oidc.py).

The provider is a small one written for these tests (tests/integration/oidc_provider.py)
on a local port: it is an external identity provider. The console's app runs against the
real Temporal dev server and PostgreSQL, as the other console tests do.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from temporalio.client import Client

from api.app import ApiResources, create_app
from api.console.oidc import FLOW_COOKIE, OidcConfig
from api.console.routes import PREFIX
from api.console.session import COOKIE
from programs import load_catalog
from store.db import Pool
from store.event_store import EventStore
from testing.keys import CHAIN_KEY
from tests.integration.api_users import users_authenticator
from tests.integration.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider

pytestmark = pytest.mark.integration

CALLBACK = "http://carepath.test/console/oidc/callback"
CLINICIAN_CLAIMS = {
    "sub": "olga.oidc",
    "carepath_role": "clinician",
    "carepath_programs": ["adult-iop"],
}


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider(CLINICIAN_CLAIMS) as running:
        yield running


@pytest.fixture
async def browser(
    temporal_client: Client, db_pool: Pool, provider: Provider
) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client of a console configured with the provider."""
    app = create_app(
        ApiResources(
            temporal=temporal_client,
            store=EventStore(db_pool, chain_key=CHAIN_KEY),
            programs=load_catalog(),
            task_queue=f"tq-{uuid.uuid4().hex[:12]}",
            authenticator=users_authenticator(),
            oidc=OidcConfig(
                issuer=provider.issuer,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                redirect_url=CALLBACK,
                name="Test IdP",
            ),
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://carepath.test"
    ) as http:
        yield http


async def at_provider(browser: httpx.AsyncClient, next_path: str = "") -> str:
    """Start the sign-in and follow it to the provider: the authorization URL."""
    query = f"?{urlencode({'next': next_path})}" if next_path else ""
    login = await browser.get(f"{PREFIX}/oidc/login{query}")
    assert login.status_code == 303
    return login.headers["location"]


async def back_from_provider(authorize_url: str) -> str:
    """What the provider sends the browser back to: the callback's path and query."""
    async with httpx.AsyncClient() as outside:
        answer = await outside.get(authorize_url)
    assert answer.status_code == 302
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return f"{back.path}?{back.query}"


class TestOidcSignIn:
    async def test_given_a_configured_provider_when_the_sign_in_page_opens_then_it_offers_the_provider(
        self, browser: httpx.AsyncClient
    ) -> None:
        page = await browser.get(f"{PREFIX}/signin")

        assert page.status_code == 200
        assert "Sign in with Test IdP" in page.text
        assert f'href="{PREFIX}/oidc/login?next=' in page.text

    async def test_given_the_provider_signs_a_clinician_in_when_the_callback_returns_then_a_session_opens_the_caseload(
        self, browser: httpx.AsyncClient, provider: Provider, db_pool: Pool
    ) -> None:
        login = await browser.get(f"{PREFIX}/oidc/login", params={"next": f"{PREFIX}/"})
        authorize_url = login.headers["location"]
        sent = parse_qs(urlsplit(authorize_url).query)
        flow_cookie = login.headers["set-cookie"]

        answer = await browser.get(await back_from_provider(authorize_url))
        caseload = await browser.get(f"{PREFIX}/")

        assert sent["code_challenge_method"] == ["S256"]
        assert sent["client_id"] == [CLIENT_ID]
        assert {"state", "nonce", "code_challenge"} <= sent.keys()
        assert flow_cookie.startswith(FLOW_COOKIE)
        assert "httponly" in flow_cookie.lower()
        assert "samesite=lax" in flow_cookie.lower()
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{PREFIX}/"
        session_cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE)
        )
        assert "samesite=strict" in session_cookie.lower()
        assert caseload.status_code == 200
        assert "My caseload" in caseload.text
        assert "olga.oidc" in caseload.text
        assert provider.refusals == []
        recorded = await db_pool.fetchrow(
            "SELECT user_id, role, status FROM access_log WHERE path = $1",
            f"{PREFIX}/oidc/callback",
        )
        assert recorded is not None
        assert (recorded["user_id"], recorded["role"], recorded["status"]) == (
            "olga.oidc",
            "clinician",
            303,
        )

    async def test_given_a_callback_with_another_state_then_no_session_begins(
        self, browser: httpx.AsyncClient, provider: Provider
    ) -> None:
        callback = await back_from_provider(await at_provider(browser))
        path, _, query = callback.partition("?")
        params = {k: v[0] for k, v in parse_qs(query).items()}
        forged = f"{path}?{urlencode({**params, 'state': 'another-state'})}"

        answer = await browser.get(forged)

        assert answer.status_code == 400
        assert "has expired or did not start here" in answer.text
        assert "Traceback" not in answer.text
        assert COOKIE not in answer.cookies
        assert (await browser.get(f"{PREFIX}/")).status_code == 303
        # The code was never exchanged.
        assert len(provider.grants) == 1

    @pytest.mark.parametrize(
        ("change", "why"),
        [
            ({"nonce": "a-nonce-of-another-sign-in"}, "belongs to another sign-in"),
            ({"aud": "another-application"}, "issued for another application"),
        ],
    )
    async def test_given_an_id_token_with_another_nonce_or_audience_then_it_is_refused(
        self,
        browser: httpx.AsyncClient,
        provider: Provider,
        change: dict[str, str],
        why: str,
    ) -> None:
        provider.id_token_changes = change

        answer = await browser.get(await back_from_provider(await at_provider(browser)))

        assert answer.status_code == 401
        assert why in answer.text
        assert COOKIE not in answer.cookies
        assert (await browser.get(f"{PREFIX}/")).status_code == 303

    async def test_given_a_code_issued_for_another_pkce_challenge_then_the_token_endpoint_refuses_it(
        self, browser: httpx.AsyncClient, provider: Provider
    ) -> None:
        authorize_url = await at_provider(browser)
        parts = urlsplit(authorize_url)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        # A code obtained for another verifier (an intercepted one): the console's own
        # verifier does not match its challenge.
        params["code_challenge"] = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        tampered = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(params)}"

        answer = await browser.get(await back_from_provider(tampered))

        assert provider.refusals == ["invalid_grant"]
        assert answer.status_code == 401
        assert "refused to complete the sign-in (invalid_grant)" in answer.text
        assert COOKIE not in answer.cookies

    async def test_given_the_user_denies_consent_then_the_sign_in_page_says_so(
        self, browser: httpx.AsyncClient, provider: Provider
    ) -> None:
        provider.deny = True

        answer = await browser.get(await back_from_provider(await at_provider(browser)))

        assert answer.status_code == 401
        assert "Test IdP did not sign you in (access_denied)" in answer.text
        assert 'id="token"' in answer.text
        assert COOKIE not in answer.cookies
