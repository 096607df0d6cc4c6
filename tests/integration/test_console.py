"""The staff console over HTTP: sign-in, sessions, CSRF, the caseload and the tasks pages.

Served by the same app as the API (its users, roles and access log), against the real dev
server and PostgreSQL. The pages in a real browser: tests/browser.
"""

from __future__ import annotations

import re

import httpx
import pytest

from api.console.routes import PREFIX
from api.console.session import COOKIE, CSRF_FIELD
from tests.integration.api_driver import Driver
from tests.integration.api_users import bearer, token

pytestmark = pytest.mark.integration


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden input {name!r} in the page"
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, user: str, next_path: str = "") -> httpx.Response:
    form = await http.get(f"{PREFIX}/signin")
    assert form.status_code == 200
    data = {"nonce": _hidden(form.text, "nonce"), "next": next_path, "token": token(user)}
    return await http.post(f"{PREFIX}/signin", data=data)


@pytest.fixture
async def browser(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """A cookie-keeping client of the same app with no bearer token: a browser."""
    return httpx.AsyncClient(transport=api._transport, base_url="http://carepath.test")


class TestSignIn:
    async def test_given_no_session_when_a_page_is_opened_then_it_leads_to_sign_in(
        self, browser: httpx.AsyncClient
    ) -> None:
        home = await browser.get("/")
        page = await browser.get(f"{PREFIX}/tasks")

        assert (home.status_code, home.headers["location"]) == (303, f"{PREFIX}/")
        assert page.status_code == 303
        assert page.headers["location"] == f"{PREFIX}/signin?next=%2Fconsole%2Ftasks"

    async def test_given_a_valid_token_when_signing_in_then_a_strict_httponly_session_begins(
        self, browser: httpx.AsyncClient
    ) -> None:
        answer = await sign_in(browser, "clinician", next_path=f"{PREFIX}/tasks")

        assert answer.status_code == 303
        assert answer.headers["location"] == f"{PREFIX}/tasks"
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE))
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        tasks = await browser.get(f"{PREFIX}/tasks")
        assert tasks.status_code == 200
        assert "cal.clinician" in tasks.text

    async def test_given_a_wrong_token_when_signing_in_then_no_session_begins(
        self, browser: httpx.AsyncClient
    ) -> None:
        form = await browser.get(f"{PREFIX}/signin")
        data = {"nonce": _hidden(form.text, "nonce"), "next": "", "token": "not-a-token"}

        answer = await browser.post(f"{PREFIX}/signin", data=data)

        assert answer.status_code == 401
        assert "not valid" in answer.text
        assert COOKIE not in answer.cookies

    async def test_given_another_origin_as_next_when_signing_in_then_it_stays_on_the_console(
        self, browser: httpx.AsyncClient
    ) -> None:
        answer = await sign_in(browser, "clinician", next_path="https://evil.example/x")

        assert answer.headers["location"] == f"{PREFIX}/"

    async def test_given_a_sign_in_post_without_the_forms_nonce_then_it_is_refused(
        self, browser: httpx.AsyncClient
    ) -> None:
        answer = await browser.post(
            f"{PREFIX}/signin", data={"nonce": "forged", "token": token("clinician")}
        )

        assert answer.status_code == 403

    async def test_given_a_session_when_signing_out_then_pages_need_sign_in_again(
        self, browser: httpx.AsyncClient
    ) -> None:
        await sign_in(browser, "supervisor")
        page = await browser.get(f"{PREFIX}/tasks")

        out = await browser.post(
            f"{PREFIX}/signout", data={CSRF_FIELD: _hidden(page.text, CSRF_FIELD)}
        )

        assert out.status_code == 303
        assert (await browser.get(f"{PREFIX}/tasks")).status_code == 303


class TestPages:
    async def test_given_a_clinicians_episode_when_the_caseload_opens_then_it_shows_the_client_reference(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        # The API client waits for the read models to include its own commands.
        await api.get("/caseload", headers=bearer("clinician"))
        await sign_in(browser, "clinician")

        page = await browser.get(f"{PREFIX}/")

        assert page.status_code == 200
        assert "My caseload" in page.text
        # The client's reference labels the row; the id is only in the link.
        assert f'href="{PREFIX}/episodes/{episode_id}">MRN-' in page.text
        assert "in program" in page.text

    async def test_given_a_console_page_then_its_policy_allows_forms_to_this_origin_only(
        self, browser: httpx.AsyncClient
    ) -> None:
        page = await browser.get(f"{PREFIX}/signin")
        policy = page.headers["content-security-policy"]

        assert "form-action 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "script-src 'none'" in policy

    async def test_given_an_open_task_when_a_supervisor_resolves_it_then_it_leaves_the_list(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("with_task")
        (task_id,) = await Driver(api).open_task_ids(episode_id)
        await api.get("/tasks")  # until the read models include it
        await sign_in(browser, "supervisor")
        tasks = await browser.get(f"{PREFIX}/tasks")
        assert f"/tasks/{episode_id}/{task_id}/resolution" in tasks.text

        done = await browser.post(
            f"{PREFIX}/tasks/{episode_id}/{task_id}/resolution",
            data={
                CSRF_FIELD: _hidden(tasks.text, CSRF_FIELD),
                "idempotency_key": f"console-{task_id}",
                "outcome": "reached by phone",
            },
        )

        assert done.status_code == 303
        assert task_id not in await Driver(api).open_task_ids(episode_id)
        # The page it leads to waits for the read models: the task is gone from it.
        after = await browser.get(done.headers["location"])
        assert f"Task {task_id} resolved" in after.text
        assert f"/tasks/{episode_id}/{task_id}/resolution" not in after.text

    async def test_given_a_form_without_its_csrf_token_when_posted_then_nothing_is_applied(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("with_task")
        (task_id,) = await Driver(api).open_task_ids(episode_id)
        await sign_in(browser, "supervisor")

        refused = await browser.post(
            f"{PREFIX}/tasks/{episode_id}/{task_id}/resolution",
            data={"outcome": "reached by phone", "idempotency_key": "k-1"},
        )

        assert refused.status_code == 403
        # A page, not the API's problem document, with the page's policy.
        assert refused.headers["content-type"].startswith("text/html")
        assert "Csrf rejected" in refused.text
        assert "form-action 'self'" in refused.headers["content-security-policy"]
        assert await Driver(api).open_task_ids(episode_id) == [task_id]

    async def test_given_a_resolution_refused_by_the_episode_then_the_page_says_why(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("with_task")
        await sign_in(browser, "supervisor")
        tasks = await browser.get(f"{PREFIX}/tasks")

        answer = await browser.post(
            f"{PREFIX}/tasks/{episode_id}/no-such-task/resolution",
            data={CSRF_FIELD: _hidden(tasks.text, CSRF_FIELD), "outcome": "x"},
        )

        assert answer.status_code == 422
        assert 'role="alert"' in answer.text
        assert "no-such-task" in answer.text

    async def test_given_a_page_view_then_it_is_in_the_access_log_under_the_signed_in_user(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        await sign_in(browser, "clinician")
        await browser.get(f"{PREFIX}/tasks")

        log = await api.get(
            "/audit/access-log", params={"user_id": "cal.clinician"}, headers=bearer("auditor")
        )

        assert log.status_code == 200, log.text
        paths = [entry["path"] for entry in log.json()["entries"]]
        assert f"{PREFIX}/tasks" in paths
