"""The console's Today page and intake board over HTTP, against the real servers.

Today lists the sessions on the clinic's local day and records everyone's attendance in
one post; the intake board lists referrals by stage with what each is waiting for. Both
are limited to the signed-in user's programs.
"""

from __future__ import annotations

import re
from datetime import datetime

import httpx
import pytest

from api.console.routes import PREFIX
from api.console.session import CSRF_FIELD
from store.db import Pool
from store.projections import wait_for_position
from tests.integration.api_driver import Driver, example, minutes_into_today, now_iso
from tests.integration.test_console import _hidden, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
async def browser(api: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=api._transport, base_url="http://carepath.test")


async def _settled(db_pool: Pool) -> None:
    """Until the read models include every event stored so far."""
    position = await db_pool.fetchval("SELECT max(position) FROM events")
    await wait_for_position(db_pool, position)


async def _in_program(
    driver: Driver, client_ref: str, clinician: str = "cal.clinician", **referral: str
) -> str:
    """A new episode in the program whose plan names `clinician` as primary."""
    episode_id = await driver.refer(client_ref=client_ref, **referral)
    await driver.ok("intake", episode_id, "record_screening")
    await driver.ok("director", episode_id, "record_assessment")
    await driver.ok("director", episode_id, "admit_client")
    body = example("record_treatment_plan")
    team = [{"user_id": clinician, "discipline": "therapist"}]
    body["plan"] = {**body["plan"], "care_team": team, "primary_clinician": clinician}
    await driver.ok("director", episode_id, "record_treatment_plan", body)
    return episode_id


async def _session_today(driver: Driver, episode_id: str, session_id: str) -> str:
    """A group session that started a moment ago; its local (UTC) start time."""
    minutes = minutes_into_today(most=5)
    starts_at = now_iso(-minutes)
    body = {"session_id": session_id, "kind": "group_process", "starts_at": starts_at, "hours": 3}
    await driver.ok("intake", episode_id, "schedule_session", body)
    return datetime.fromisoformat(starts_at).strftime("%H:%M")


def _row_index(page: str, episode_id: str, session_id: str) -> str:
    found = re.search(rf'name="s(\d+)_ref" value="{episode_id}/{session_id}"', page)
    assert found, f"no attendance choice for {session_id} of {episode_id}"
    return found.group(1)


class TestToday:
    async def test_given_two_clients_with_a_session_today_when_the_clinician_records_both_in_one_post_then_both_are_recorded(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        driver = Driver(api)
        first = await _in_program(driver, "MRN-1001")
        second = await _in_program(driver, "MRN-1002")
        clock = await _session_today(driver, first, "s-today")
        await _session_today(driver, second, "s-today")
        await _settled(db_pool)
        await sign_in(browser, "clinician")

        page = await browser.get(f"{PREFIX}/today")

        assert page.status_code == 200, page.text
        assert "My sessions today" in page.text
        assert "MRN-1001" in page.text
        assert "MRN-1002" in page.text
        assert f">{clock}</time>" in page.text
        assert "group process" in page.text
        assert 'type="radio"' in page.text
        assert ">no-show</label>" in page.text
        a, b = _row_index(page.text, first, "s-today"), _row_index(page.text, second, "s-today")
        form = {
            CSRF_FIELD: _hidden(page.text, CSRF_FIELD),
            "idempotency_key": _hidden(page.text, "idempotency_key"),
            "rows": _hidden(page.text, "rows"),
            f"s{a}_ref": f"{first}/s-today",
            f"s{a}_status": "attended",
            f"s{b}_ref": f"{second}/s-today",
            f"s{b}_status": "no_show",
        }

        done = await browser.post(f"{PREFIX}/today/attendance", data=form)

        assert done.status_code == 303, done.text
        assert re.search(r"recorded=2&after=\d+$", done.headers["location"])
        after = await browser.get(done.headers["location"])
        assert "Attendance recorded for 2 sessions" in after.text
        assert 'class="attendance attendance-attended">attended' in after.text
        assert 'class="attendance attendance-no_show">no show' in after.text
        assert f'value="{first}/s-today"' not in after.text
        # Nothing is left to record today: no button offers to.
        assert "Record attendance</button>" not in after.text
        # The same form posted again applies nothing twice: each key was used once.
        again = await browser.post(f"{PREFIX}/today/attendance", data=form)
        assert again.status_code == 303, again.text
        tasks = await api.get("/tasks")
        assert [t["episode_id"] for t in tasks.json()["tasks"]].count(second) == 1

    async def test_given_a_refused_choice_when_posted_then_its_row_says_why_and_the_others_apply(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        driver = Driver(api)
        first = await _in_program(driver, "MRN-1101")
        second = await _in_program(driver, "MRN-1102")
        await _session_today(driver, first, "s-today")
        await _session_today(driver, second, "s-today")
        await _settled(db_pool)
        await sign_in(browser, "supervisor")
        page = await browser.get(f"{PREFIX}/today")
        a, b = _row_index(page.text, first, "s-today"), _row_index(page.text, second, "s-today")

        answer = await browser.post(
            f"{PREFIX}/today/attendance",
            data={
                CSRF_FIELD: _hidden(page.text, CSRF_FIELD),
                "idempotency_key": _hidden(page.text, "idempotency_key"),
                "rows": _hidden(page.text, "rows"),
                f"s{a}_ref": f"{first}/s-today",
                f"s{a}_status": "partial",  # partial without its hours: refused
                f"s{b}_ref": f"{second}/s-today",
                f"s{b}_status": "excused",
            },
        )

        assert answer.status_code == 422
        assert 'role="alert"' in answer.text
        assert "partial attendance needs the hours attended" in answer.text
        assert 'class="attendance attendance-excused">excused' in answer.text
        # The refused row keeps its choice for another try.
        assert re.search(r'value="partial" checked', answer.text)

    async def test_given_a_form_without_its_csrf_token_then_no_attendance_is_recorded(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        driver = Driver(api)
        episode_id = await _in_program(driver, "MRN-1201")
        await _session_today(driver, episode_id, "s-today")
        await sign_in(browser, "clinician")

        refused = await browser.post(
            f"{PREFIX}/today/attendance",
            data={"rows": "1", "s0_ref": f"{episode_id}/s-today", "s0_status": "attended"},
        )

        assert refused.status_code == 403
        await _settled(db_pool)
        page = await browser.get(f"{PREFIX}/today")
        assert f'value="{episode_id}/s-today"' in page.text

    async def test_given_sessions_in_two_programs_then_each_clinician_sees_only_their_programs(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        driver = Driver(api)
        adult = await _in_program(driver, "MRN-1301")
        teen = await _in_program(
            driver, "MRN-1302", clinician="tess.teen", program_id="adolescent-iop"
        )
        other = await _in_program(driver, "MRN-1303", clinician="tess.teen")
        await _session_today(driver, adult, "s-today")
        await _session_today(driver, teen, "s-today")
        await _session_today(driver, other, "s-today")
        await _settled(db_pool)

        await sign_in(browser, "teen_clinician")
        teen_page = await browser.get(f"{PREFIX}/today")
        await sign_in(browser, "clinician")
        clinician_page = await browser.get(f"{PREFIX}/today")
        await sign_in(browser, "supervisor")
        supervisor_page = await browser.get(f"{PREFIX}/today")

        # tess.teen works in the adolescent program only: an adult client on her caseload
        # stays out of her page, and so does an adult client of another clinician.
        assert "MRN-1302" in teen_page.text
        assert "MRN-1301" not in teen_page.text
        assert "MRN-1303" not in teen_page.text
        assert "MRN-1301" in clinician_page.text
        assert "MRN-1303" not in clinician_page.text
        assert all(ref in supervisor_page.text for ref in ("MRN-1301", "MRN-1302", "MRN-1303"))


class TestIntake:
    async def test_given_referrals_at_several_stages_then_the_board_says_what_each_waits_for(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        driver = Driver(api)
        await driver.refer(client_ref="MRN-2001")
        screened = await driver.refer(client_ref="MRN-2002")
        await driver.ok("intake", screened, "record_screening")
        assessed = await driver.refer(client_ref="MRN-2003")
        await driver.ok("intake", assessed, "record_screening")
        await driver.ok("clinician", assessed, "record_assessment")
        await _in_program(driver, "MRN-2004")  # in the program: not on the board
        await _settled(db_pool)
        await sign_in(browser, "intake")

        page = await browser.get(f"{PREFIX}/intake")

        assert page.status_code == 200, page.text
        text = re.sub(r"\s+", " ", page.text)
        assert re.search(r"MRN-2001</a></th> <td>adult-iop</td> <td>screening to start</td>", text)
        assert re.search(r"MRN-2002</a></th> <td>adult-iop</td> <td>assessment</td>", text)
        assert re.search(r"MRN-2003</a></th> <td>adult-iop</td> <td>admission decision</td>", text)
        assert "MRN-2004" not in text
        assert "under a minute" in text or " min</td>" in text
        referred, assessment = (
            text.index('id="stage-referred"'),
            text.index('id="stage-assessment"'),
        )
        assert referred < text.index("MRN-2001") < assessment < text.index("MRN-2002")

    async def test_given_referrals_in_two_programs_then_a_clinician_sees_only_their_programs(
        self, api: httpx.AsyncClient, browser: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        driver = Driver(api)
        await driver.refer(client_ref="MRN-2101")
        await driver.refer(client_ref="MRN-2102", program_id="adolescent-iop")
        await _settled(db_pool)
        await sign_in(browser, "teen_clinician")

        page = await browser.get(f"{PREFIX}/intake")

        assert "MRN-2102" in page.text
        assert "MRN-2101" not in page.text
