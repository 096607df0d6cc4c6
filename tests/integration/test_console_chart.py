"""The console's episode chart over HTTP: its sections, its actions as forms, and who may
see and do what, against the real dev server and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.console.routes import PREFIX
from api.console.session import CSRF_FIELD
from tests.integration.api_driver import Driver
from tests.integration.api_users import bearer
from tests.integration.test_console import _hidden, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
async def browser(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """A cookie-keeping client of the same app with no bearer token: a browser."""
    return httpx.AsyncClient(transport=api._transport, base_url="http://carepath.test")


def chart_url(episode_id: str) -> str:
    return f"{PREFIX}/episodes/{episode_id}"


def action_url(episode_id: str, kind: str) -> str:
    return f"{PREFIX}/episodes/{episode_id}/actions/{kind}"


def section(page: str, heading_id: str) -> str:
    """The text of the chart's section labelled by `heading_id`."""
    found = re.search(rf'<section aria-labelledby="{heading_id}".*?</section>', page, re.S)
    assert found, f"no section {heading_id!r} in the page"
    return found.group(0)


def consent_form(page: str, consent_id: str) -> dict[str, str | list[str]]:
    """The record-consent form as a browser submits it, the consent expiring in 30 days."""
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    return {
        CSRF_FIELD: _hidden(page, CSRF_FIELD),
        "idempotency_key": _hidden(page, "idempotency_key"),
        "consent_id": consent_id,
        "recipient_ref": "family-contact-9",
        "recipient_kind": "family",
        "scopes": ["attendance", "treatment_progress"],
        "expires_at": expires,
    }


async def consent_ids(api: httpx.AsyncClient, episode_id: str) -> list[str]:
    state = (await api.get(f"/episodes/{episode_id}", headers=bearer("director"))).json()
    return [c["consent_id"] for c in state["state"]["consents"]]


class TestChart:
    async def test_given_an_episode_with_a_no_show_when_its_chart_opens_then_every_section_shows_it(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("with_task")
        await api.get(f"/episodes/{episode_id}/attendance")  # until the read models have it
        await sign_in(browser, "clinician")

        page = await browser.get(chart_url(episode_id))

        assert page.status_code == 200, page.text
        # The client's reference names the chart, never the bare id.
        heading = re.search(r"<h1>(.*?)</h1>", page.text, re.S)
        assert heading
        assert "MRN-7001" in heading.group(1)
        assert episode_id not in heading.group(1)
        assert "in program" in page.text
        attendance = section(page.text, "attendance-h")
        assert 'class="no-show">1 no-show<' in attendance
        assert "<td>0 of 9 h</td>" in attendance  # the adult program's minimum
        assert "open week" in attendance
        deadlines = section(page.text, "deadlines-h")
        assert "<tbody>" in deadlines
        assert "Nothing pending" not in deadlines
        timeline = section(page.text, "timeline-h")
        assert "client referred" in timeline
        assert "attendance recorded" in timeline
        assert "cal.clinician" in timeline
        plan = section(page.text, "plan-h")
        assert "Revision 1" in plan
        assert "plan revision 1 recorded" in plan

    async def test_given_a_consent_when_the_chart_opens_then_it_shows_kind_and_scopes_not_the_recipient(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("with_consent")
        await sign_in(browser, "clinician")

        page = await browser.get(chart_url(episode_id))

        consents = section(page.text, "consents-h")
        assert "c-1" in consents
        assert "family" in consents
        assert "attendance" in consents
        assert "in force" in consents
        assert "family-contact-1" not in page.text

    async def test_given_another_programs_clinician_when_the_chart_opens_then_it_is_a_not_found_page(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "teen_clinician")

        page = await browser.get(chart_url(episode_id))
        unknown = await browser.get(chart_url("00000000-0000-4000-8000-000000000000"))
        form = await browser.get(action_url(episode_id, "record_consent"))

        assert page.status_code == 404
        assert "text/html" in page.headers["content-type"]
        assert "Episode not found" in page.text
        assert "MRN-7001" not in page.text
        # Exactly what an episode that does not exist answers.
        assert (unknown.status_code, "Episode not found" in unknown.text) == (404, True)
        assert form.status_code == 404


class TestRoles:
    async def test_given_a_clinician_when_the_chart_opens_then_there_is_no_discharge_action(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "clinician")

        page = await browser.get(chart_url(episode_id))
        discharge = await browser.get(action_url(episode_id, "discharge"))

        actions = section(page.text, "actions-h")
        assert action_url(episode_id, "record_attendance") in actions
        assert action_url(episode_id, "discharge") not in actions
        assert discharge.status_code == 403

    async def test_given_a_supervisor_when_the_chart_opens_then_discharge_is_an_action(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "supervisor")

        page = await browser.get(chart_url(episode_id))

        assert action_url(episode_id, "discharge") in section(page.text, "actions-h")

    async def test_given_an_auditor_when_the_chart_opens_then_it_shows_no_actions(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "auditor")

        page = await browser.get(chart_url(episode_id))
        form = await browser.get(action_url(episode_id, "record_consent"))

        assert page.status_code == 200
        assert "/actions/" not in page.text
        assert "takes no actions" in section(page.text, "actions-h")
        assert form.status_code == 403


class TestActions:
    async def test_given_an_action_when_its_form_opens_then_every_input_has_a_label(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "clinician")

        page = await browser.get(action_url(episode_id, "record_consent"))
        again = await browser.get(action_url(episode_id, "record_consent"))

        assert page.status_code == 200
        assert f'action="{action_url(episode_id, "record_consent")}"' in page.text
        ids = re.findall(
            r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', page.text
        )
        assert ids
        for input_id in ids:
            assert f'<label for="{input_id}"' in page.text, input_id
        assert _hidden(page.text, CSRF_FIELD)
        # A fresh key per render: two renders are two submissions.
        assert _hidden(page.text, "idempotency_key") != _hidden(again.text, "idempotency_key")

    async def test_given_a_posted_action_when_it_applies_then_the_chart_shows_it(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "clinician")
        form = await browser.get(action_url(episode_id, "record_consent"))

        done = await browser.post(
            action_url(episode_id, "record_consent"), data=consent_form(form.text, "c-77")
        )

        assert done.status_code == 303, done.text
        assert done.headers["location"].startswith(chart_url(episode_id) + "?done=record_consent")
        assert "after=" in done.headers["location"]
        chart = await browser.get(done.headers["location"])
        assert 'role="status"' in chart.text
        assert "Record consent: applied" in chart.text
        consents = section(chart.text, "consents-h")
        assert "c-77" in consents
        assert "treatment progress" in consents
        assert "consent recorded" in section(chart.text, "timeline-h")

    async def test_given_a_refused_action_then_the_form_shows_the_domains_message_next_to_its_field(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("with_consent")  # consent c-1 exists
        await sign_in(browser, "clinician")
        form = await browser.get(action_url(episode_id, "record_consent"))

        refused = await browser.post(
            action_url(episode_id, "record_consent"), data=consent_form(form.text, "c-1")
        )

        assert refused.status_code == 422
        field = re.search(
            r'<div class="field[^"]*field-invalid">(?:(?!</div>).)*?name="consent_id".*?</div>',
            refused.text,
            re.S,
        ) or re.search(
            r'<div class="field[^"]*field-invalid">(?:(?!<div).)*?</div>', refused.text, re.S
        )
        assert field, refused.text
        assert "already exists" in field.group(0)
        assert 'aria-invalid="true"' in field.group(0)
        # What was typed is kept.
        assert 'value="family-contact-9"' in refused.text
        assert await consent_ids(api, episode_id) == ["c-1"]

    async def test_given_an_invalid_form_then_nothing_is_sent_and_the_field_says_why(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "clinician")
        form = await browser.get(action_url(episode_id, "record_consent"))
        data = consent_form(form.text, "c-5")
        data["expires_at"] = "not a date"

        refused = await browser.post(action_url(episode_id, "record_consent"), data=data)

        assert refused.status_code == 422
        assert "field-error" in refused.text
        assert await consent_ids(api, episode_id) == []

    async def test_given_the_same_form_posted_twice_then_it_applies_once(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "clinician")
        form = await browser.get(action_url(episode_id, "record_consent"))
        data = consent_form(form.text, "c-88")

        first = await browser.post(action_url(episode_id, "record_consent"), data=data)
        second = await browser.post(action_url(episode_id, "record_consent"), data=data)

        assert (first.status_code, second.status_code) == (303, 303)
        assert await consent_ids(api, episode_id) == ["c-88"]
        timeline = (await api.get(f"/episodes/{episode_id}/timeline")).json()["entries"]
        assert [e["type"] for e in timeline].count("consent_recorded") == 1

    async def test_given_a_form_without_its_csrf_token_when_posted_then_nothing_is_applied(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "clinician")
        form = await browser.get(action_url(episode_id, "record_consent"))
        data = consent_form(form.text, "c-9")
        del data[CSRF_FIELD]

        refused = await browser.post(action_url(episode_id, "record_consent"), data=data)

        assert refused.status_code == 403
        assert await consent_ids(api, episode_id) == []


async def post_migration(
    browser: httpx.AsyncClient, episode_id: str, to_version: str, reason: str
) -> httpx.Response:
    """The migrate-program form, opened and posted as a browser does."""
    form = await browser.get(action_url(episode_id, "migrate_program"))
    return await browser.post(
        action_url(episode_id, "migrate_program"),
        data={
            CSRF_FIELD: _hidden(form.text, CSRF_FIELD),
            "idempotency_key": _hidden(form.text, "idempotency_key"),
            "to_version": to_version,
            "reason": reason,
        },
    )


async def program_version(api: httpx.AsyncClient, episode_id: str) -> int:
    state = (await api.get(f"/episodes/{episode_id}", headers=bearer("director"))).json()
    return int(state["state"]["program_version"])


class TestProgramMigration:
    async def test_given_a_supervisor_when_the_migrate_form_is_posted_then_the_episode_moves_to_that_version(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "supervisor")

        done = await post_migration(browser, episode_id, "2", "the program's second version")

        assert done.status_code == 303, re.findall(r"<li>.*?</li>", done.text)
        assert await program_version(api, episode_id) == 2

    async def test_given_an_unrecorded_version_when_the_migrate_form_is_posted_then_the_form_says_so(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("in_program")
        await sign_in(browser, "supervisor")

        refused = await post_migration(browser, episode_id, "9", "no such version")

        assert refused.status_code == 422, refused.text
        assert "version 9" in refused.text
        assert await program_version(api, episode_id) == 1
