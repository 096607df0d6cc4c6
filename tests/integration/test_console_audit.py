"""The auditor's console pages over HTTP: verify (one episode, the whole store in the
background), replay as of a moment next to now, the access log, exports, and the role rule.

Against the real dev server and PostgreSQL; tampering is done as the schema's owner with
the append-only triggers off, as in tests/integration/test_verification.py.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from api.console.routes import PREFIX
from api.console.session import CSRF_FIELD
from programs import load_catalog
from store.db import Pool
from tests.integration.api_driver import Driver
from tests.integration.test_console import _hidden, sign_in

pytestmark = pytest.mark.integration

AUDIT = f"{PREFIX}/audit"


async def tamper(pool: Pool, episode_id: str, seq: int) -> None:
    """Change one stored payload as the owner, with the append-only triggers off."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        await conn.execute(
            "UPDATE events SET payload = jsonb_set(payload, '{command_id}', '\"forged\"') "
            "WHERE episode_id = $1 AND seq = $2",
            episode_id,
            seq,
        )
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


def _client(api: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=api._transport, base_url="http://carepath.test")


@pytest.fixture
async def auditor(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """A browser signed in as the auditor."""
    browser = _client(api)
    assert (await sign_in(browser, "auditor")).status_code == 303
    return browser


class TestVerify:
    async def test_given_an_intact_and_a_tampered_episode_when_the_auditor_verifies_each_then_one_is_intact_and_the_other_names_its_bad_seq(
        self, api: httpx.AsyncClient, auditor: httpx.AsyncClient, owner_pool: Pool
    ) -> None:
        intact = await Driver(api).at("in_program")
        tampered = await Driver(api).at("in_program")
        await tamper(owner_pool, tampered, 3)

        good = await auditor.get(f"{AUDIT}/verify", params={"episode_id": intact})
        bad = await auditor.get(f"{AUDIT}/verify", params={"episode_id": tampered})

        assert good.status_code == 200, good.text
        assert "Intact" in good.text
        assert bad.status_code == 200
        assert "Tampered" in bad.text
        assert "seq 3" in bad.text
        assert "hash mismatch" in bad.text

    async def test_given_a_tampered_stream_when_the_whole_store_is_verified_then_the_progress_page_ends_naming_it(
        self, api: httpx.AsyncClient, auditor: httpx.AsyncClient, owner_pool: Pool
    ) -> None:
        intact = await Driver(api).at("referred")
        tampered = await Driver(api).at("assessment")
        await tamper(owner_pool, tampered, 2)
        home = await auditor.get(AUDIT)

        started = await auditor.post(
            f"{AUDIT}/verify/all", data={CSRF_FIELD: _hidden(home.text, CSRF_FIELD)}
        )
        assert started.status_code == 303
        run = started.headers["location"]
        for _ in range(100):
            page = await auditor.get(run)
            if "http-equiv" not in page.text:
                break
            assert "streams checked" in page.text
            await asyncio.sleep(0.1)

        assert page.status_code == 200
        assert "http-equiv" not in page.text  # done: it no longer reloads itself
        assert "1 of 2 streams failed" in page.text
        assert f">{tampered}</a>" in page.text
        assert "hash mismatch" in page.text
        assert f">{intact}</a>" not in page.text

    async def test_given_no_csrf_token_when_the_whole_store_verification_is_posted_then_it_is_refused(
        self, auditor: httpx.AsyncClient
    ) -> None:
        refused = await auditor.post(f"{AUDIT}/verify/all", data={})

        assert refused.status_code == 403


class TestReplay:
    async def test_given_a_command_after_a_moment_when_replayed_as_of_that_moment_then_the_difference_from_now_is_marked(
        self, api: httpx.AsyncClient, auditor: httpx.AsyncClient
    ) -> None:
        driver = Driver(api)
        episode_id = await driver.at("in_program")
        moment = datetime.now(UTC)
        await driver.ok("clinician", episode_id, "place_on_hold")
        # The form's datetime-local: the clinic's clock, no offset.
        zone = ZoneInfo(load_catalog().get("adult-iop").timezone)
        local = moment.astimezone(zone).replace(tzinfo=None).isoformat()

        page = await auditor.get(f"{AUDIT}/replay", params={"episode_id": episode_id, "at": local})

        assert page.status_code == 200, page.text
        stage = re.search(r'<tr class="changed">\s*<th scope="row">Stage.*?</tr>', page.text, re.S)
        assert stage, "the stage is not marked as changed"
        assert "<del>in program</del>" in stage.group(0)
        assert "<ins>on hold</ins>" in stage.group(0)
        assert "episode put on hold" in page.text  # recorded since then

    async def test_given_a_time_that_is_not_one_when_replaying_then_the_page_says_so(
        self, api: httpx.AsyncClient, auditor: httpx.AsyncClient
    ) -> None:
        episode_id = await Driver(api).at("referred")

        page = await auditor.get(
            f"{AUDIT}/replay", params={"episode_id": episode_id, "at": "last tuesday"}
        )

        assert page.status_code == 422
        assert 'role="alert"' in page.text


class TestAccessLog:
    async def test_given_two_users_views_when_filtered_by_one_user_then_only_their_records_show(
        self, api: httpx.AsyncClient, auditor: httpx.AsyncClient
    ) -> None:
        clinician = _client(api)
        await sign_in(clinician, "clinician")
        await clinician.get(f"{PREFIX}/tasks")
        await auditor.get(AUDIT)

        page = await auditor.get(f"{AUDIT}/access-log", params={"user_id": "cal.clinician"})
        everyone = await auditor.get(f"{AUDIT}/access-log")

        assert page.status_code == 200, page.text
        assert "<td>cal.clinician " in page.text
        assert f"GET {PREFIX}/tasks" in page.text
        assert "<td>ada.auditor " not in page.text
        assert "<td>ada.auditor " in everyone.text
        # Newest first: the auditor's own view of the home page precedes the clinician's.
        assert everyone.text.index(f"GET {AUDIT}<") < everyone.text.index(f"GET {PREFIX}/tasks")


class TestExports:
    @pytest.mark.parametrize(
        ("export_format", "media"),
        [("jsonl", "application/x-ndjson"), ("csv", "text/csv"), ("fhir", "application/fhir+json")],
    )
    async def test_given_an_episode_when_the_auditor_downloads_an_export_then_it_has_the_formats_content_type(
        self, api: httpx.AsyncClient, auditor: httpx.AsyncClient, export_format: str, media: str
    ) -> None:
        episode_id = await Driver(api).at("referred")

        chosen = await auditor.get(
            f"{AUDIT}/export", params={"episode_id": episode_id, "format": export_format}
        )
        download = await auditor.get(chosen.headers["location"])

        assert chosen.status_code == 303
        assert download.status_code == 200, download.text
        assert download.headers["content-type"].startswith(media)
        assert "attachment" in download.headers["content-disposition"]
        assert episode_id in download.text


class TestRoles:
    @pytest.mark.parametrize(
        "path",
        [
            "",
            "/verify?episode_id=ep-1",
            "/replay?episode_id=ep-1",
            "/access-log",
            "/episodes/ep-1/export?format=csv",
        ],
    )
    async def test_given_a_clinician_when_an_audit_page_is_opened_then_it_is_forbidden(
        self, api: httpx.AsyncClient, path: str
    ) -> None:
        clinician = _client(api)
        await sign_in(clinician, "clinician")

        page = await clinician.get(f"{AUDIT}{path}")

        assert page.status_code == 403
        assert "Auditors only" in page.text
