"""The console's everyday flows in headless Chromium, as staff click through them.

Each test prepares its episode through the HTTP API (as the integration tier's
`api_driver` does), then signs a user in with their token and works the pages: forms are
filled by their labels and submitted with their buttons, so what is checked is what a
person at the clinic gets. Every page a test visits passes one automated accessibility
check (`accessible`): each field has a label, and the page has exactly one h1.

With CAREPATH_SCREENSHOTS set (`make screenshots`) the tests save the pictures
docs/console.md shows: caseload, Today, tasks, episode chart and the auditor's replay.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from api_driver import example
from browser_kit import Page
from live_stack import LiveApi
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from api.command_specs import spec_for
from programs import load_catalog

# The drill program's shortest session, and how long before now it is scheduled to
# start: it ended 12 s ago, past the drill's 10 s grace, so the episode's own no-show
# timer fires as soon as the session is on the schedule.
DRILL_SESSION_HOURS = 0.005  # 18 s
DRILL_SESSION_STARTED = timedelta(seconds=30)

NAVIGATION_STATUS_JS = (
    "const n = performance.getEntriesByType('navigation')[0];return n ? n.responseStatus : null;"
)


# --- preparing episodes through the API -------------------------------------------------


class Api:
    """Commands as test users, over the served API (bodies are the OpenAPI examples)."""

    def __init__(self, live: LiveApi) -> None:
        self.live = live

    def post(self, user: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.live.http(user) as http:
            answer = http.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert answer.status_code in (200, 201), f"POST {path} as {user}: {answer.text}"
        result: dict[str, Any] = answer.json()
        return result

    def get(self, user: str, path: str) -> dict[str, Any]:
        with self.live.http(user) as http:
            answer = http.get(path)
        assert answer.status_code == 200, f"GET {path} as {user}: {answer.text}"
        result: dict[str, Any] = answer.json()
        return result

    def send(
        self,
        user: str,
        episode_id: str,
        kind: str,
        body: dict[str, Any] | None = None,
        **path: str,
    ) -> None:
        """POST one command as `user`; the body and path default to the command's example."""
        spec = spec_for(kind)
        where = spec.path.format(**{**spec.path_example, **path})
        self.post(user, f"/episodes/{episode_id}{where}", example(kind) if body is None else body)

    def admitted(
        self, client_ref: str, *, program: str = "adult-iop", clinician: str = "clinician"
    ) -> str:
        """A new episode referred, screened, assessed, admitted and planned."""
        referral = {"client_ref": client_ref, "program_id": program, "referral_source": "self"}
        episode_id: str = self.post("intake", "/episodes", referral)["episode_id"]
        self.send("intake", episode_id, "record_screening")
        for kind in ("record_assessment", "admit_client", "record_treatment_plan"):
            self.send(clinician, episode_id, kind)
        return episode_id

    def session(
        self, episode_id: str, session_id: str, started: timedelta, hours: float = 3
    ) -> None:
        """A group session that started `started` ago."""
        body = {
            "session_id": session_id,
            "kind": "group_process",
            "starts_at": (datetime.now(UTC) - started).isoformat(),
            "hours": hours,
        }
        self.post("intake", f"/episodes/{episode_id}/sessions", body)

    def events(self, episode_id: str) -> list[dict[str, Any]]:
        return list(self.get("director", f"/episodes/{episode_id}/events")["events"])


# --- what every page is checked for ---------------------------------------------------------


def earlier_today(program: str) -> timedelta:
    """How long ago a session may have started and still be on the clinic's today: ten
    minutes, or less just after the clinic's midnight."""
    zone = ZoneInfo(load_catalog().get(program).timezone)
    now = datetime.now(zone)
    since_midnight = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    return min(timedelta(minutes=10), since_midnight / 2)


def accessible(page: Page) -> None:
    """One automated accessibility check: every field is labelled, and one h1 names the page."""
    assert page.unlabelled_fields() == [], page.path
    headings = page.driver.find_elements(By.TAG_NAME, "h1")
    assert len(headings) == 1, f"{page.path}: {len(headings)} h1 elements"


def sign_in(page: Page, token: str, path: str = "/console/") -> None:
    page.open(path)
    page.wait_until(lambda d: "/console/signin" in d.current_url, what="the sign-in page")
    accessible(page)
    page.fill("Your access token", token)
    page.press("Sign in")
    page.wait_until(lambda d: "/console/signin" not in d.current_url, what="signing in")


def status_of_this_page(page: Page) -> int | None:
    """The HTTP status the current document was served with."""
    status: int | None = page.driver.execute_script(NAVIGATION_STATUS_JS)
    return status


def chart_actions(page: Page) -> list[str]:
    return [a.text for a in page.driver.find_elements(By.CSS_SELECTOR, "#actions a")]


def timeline_events(page: Page) -> list[str]:
    return [
        th.text
        for th in page.driver.find_elements(
            By.CSS_SELECTOR, "section[aria-labelledby=timeline-h] tbody th"
        )
    ]


def open_attendance_form(page: Page, episode_id: str, session_id: str, status: str) -> None:
    """The chart's record-attendance form, filled in for `session_id`."""
    page.open(f"/console/episodes/{episode_id}")
    page.link("Record attendance").click()
    page.wait_until(lambda d: d.current_url.endswith("/actions/record_attendance"), what="the form")
    accessible(page)
    Select(page.field("Session ID")).select_by_value(session_id)
    page.fill("Status", status)


def submit(page: Page) -> None:
    page.driver.find_element(By.CSS_SELECTOR, "form.command-form button[type=submit]").click()


# --- the flows -----------------------------------------------------------------------------


def test_given_a_clinician_when_they_sign_in_then_they_record_todays_attendance_for_their_caseload(
    page: Page, live: LiveApi, user_token: Callable[[str], str]
) -> None:
    api = Api(live)
    episode_id = api.admitted("MRN-4101")
    api.session(episode_id, "s-today", started=earlier_today("adult-iop"))

    sign_in(page, user_token("clinician"))

    page.wait_for_text("My caseload")
    accessible(page)
    link = page.link("MRN-4101", within=page.row("MRN-4101"))
    assert episode_id not in page.row("MRN-4101").text
    page.screenshot("caseload")
    link.click()
    page.wait_until(lambda d: d.current_url.endswith(f"/episodes/{episode_id}"), what="the chart")
    accessible(page)
    assert "MRN-4101" in page.driver.find_element(By.TAG_NAME, "h1").text
    page.link("Today").click()
    page.wait_for_text("My sessions today")
    accessible(page)
    row = page.row("MRN-4101")
    page.fill("attended", True, within=row)
    page.screenshot("today")
    page.press("Record attendance")

    page.wait_for_text("Attendance recorded for 1 session.")
    accessible(page)
    assert page.row("MRN-4101").find_element(By.CSS_SELECTOR, ".attendance").text == "attended"
    page.link("MRN-4101").click()
    page.wait_until(lambda d: d.current_url.endswith(f"/episodes/{episode_id}"), what="the chart")
    accessible(page)
    assert "attendance recorded" in timeline_events(page)
    attendance = page.driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby=attendance-h]")
    assert "3 of 9 h" in attendance.text
    page.screenshot("chart")
    recorded = [e for e in api.events(episode_id) if e["type"] == "attendance_recorded"]
    assert [(e["payload"]["session_id"], e["payload"]["status"]) for e in recorded] == [
        ("s-today", "attended")
    ]


def test_given_a_drill_session_nobody_recorded_when_its_timer_fires_then_a_supervisor_resolves_the_task(
    page: Page, live: LiveApi, user_token: Callable[[str], str]
) -> None:
    api = Api(live)
    episode_id = api.admitted("DRILL-0042", program="drill", clinician="supervisor")
    api.session(episode_id, "drill-1", started=DRILL_SESSION_STARTED, hours=DRILL_SESSION_HOURS)
    sign_in(page, user_token("supervisor"), "/console/tasks")

    def listed(_: object) -> bool:
        page.driver.refresh()
        return "DRILL-0042" in page.text

    page.wait_until(listed, timeout=30, what="the no-show's task")
    accessible(page)
    row = page.row("DRILL-0042")
    assert "outreach" in row.text
    assert "level 1" in row.text
    page.screenshot("tasks")
    page.fill("Outcome for DRILL-0042, outreach", "reached by phone, attending next group", row)
    page.press("Resolve", row)

    page.wait_for_text("resolved.")
    accessible(page)
    assert "DRILL-0042" not in page.text
    events = api.events(episode_id)
    (no_show,) = [e for e in events if e["type"] == "attendance_recorded"]
    assert no_show["payload"]["status"] == "no_show"
    assert no_show["actor_id"] != "sue.supervisor"  # the episode's own timer recorded it
    assert [e["payload"]["outcome"] for e in events if e["type"] == "task_resolved"] == [
        "reached by phone, attending next group"
    ]


def test_given_a_clinician_when_the_chart_opens_then_there_is_no_discharge_action(
    page: Page, live: LiveApi, user_token: Callable[[str], str]
) -> None:
    episode_id = Api(live).admitted("MRN-4102")
    sign_in(page, user_token("clinician"), f"/console/episodes/{episode_id}")

    page.wait_for_text("MRN-4102")
    accessible(page)
    actions = chart_actions(page)
    assert "Record attendance" in actions
    assert not [a for a in actions if "discharge" in a.lower()]
    page.open(f"/console/episodes/{episode_id}/actions/discharge")
    assert status_of_this_page(page) == 403
    accessible(page)


def test_given_an_attendance_form_when_it_is_submitted_twice_then_it_applies_once(
    page: Page, live: LiveApi, user_token: Callable[[str], str]
) -> None:
    api = Api(live)
    episode_id = api.admitted("MRN-4103")
    api.session(episode_id, "s-twice", started=timedelta(minutes=10))
    sign_in(page, user_token("clinician"), f"/console/episodes/{episode_id}")
    open_attendance_form(page, episode_id, "s-twice", "Attended")
    rendered = page.driver.find_element(By.NAME, "idempotency_key").get_attribute("value")

    submit(page)
    page.wait_for_text("Record attendance: applied.")
    page.driver.back()
    page.wait_until(lambda d: d.current_url.endswith("/actions/record_attendance"), what="back")
    if page.driver.find_element(By.NAME, "idempotency_key").get_attribute("value") != rendered:
        # Reloaded rather than restored: put the first render's key back, as a
        # browser restoring the page from its cache would have it.
        page.driver.execute_script(
            "document.querySelector('form.command-form [name=idempotency_key]').value = arguments[0]",
            rendered,
        )
    Select(page.field("Session ID")).select_by_value("s-twice")
    page.fill("Status", "Attended")
    submit(page)

    page.wait_for_text("Record attendance: applied.")
    assert timeline_events(page).count("attendance recorded") == 1
    recorded = [e for e in api.events(episode_id) if e["type"] == "attendance_recorded"]
    assert len(recorded) == 1


def test_given_a_form_without_its_csrf_token_when_submitted_then_it_is_refused_and_nothing_applies(
    page: Page, live: LiveApi, user_token: Callable[[str], str]
) -> None:
    api = Api(live)
    episode_id = api.admitted("MRN-4104")
    api.session(episode_id, "s-csrf", started=timedelta(minutes=10))
    sign_in(page, user_token("clinician"), f"/console/episodes/{episode_id}")
    open_attendance_form(page, episode_id, "s-csrf", "Attended")
    page.driver.execute_script(
        "document.querySelector('form.command-form [name=csrf_token]').remove()"
    )

    submit(page)

    page.wait_for_text("CSRF")
    assert status_of_this_page(page) == 403
    assert [e for e in api.events(episode_id) if e["type"] == "attendance_recorded"] == []
    page.open(f"/console/episodes/{episode_id}")
    assert "attendance recorded" not in timeline_events(page)


def test_given_an_attendance_recorded_after_a_moment_when_an_auditor_replays_as_of_it_then_the_change_is_marked(
    page: Page, live: LiveApi, user_token: Callable[[str], str]
) -> None:
    api = Api(live)
    episode_id = api.admitted("MRN-4105")
    api.session(episode_id, "s-audit", started=timedelta(minutes=10))
    # The replay form takes whole seconds: keep a clear second either side of the moment.
    time.sleep(1.1)
    moment = datetime.now(UTC)
    time.sleep(1.1)
    api.send(
        "clinician", episode_id, "record_attendance", {"status": "attended"}, session_id="s-audit"
    )
    zone = ZoneInfo(load_catalog().get("adult-iop").timezone)

    sign_in(page, user_token("auditor"), "/console/")
    page.wait_until(lambda d: d.current_url.endswith("/console/audit"), what="the audit home")
    accessible(page)
    page.open("/console/audit/replay")
    accessible(page)
    page.fill("Episode id", episode_id)
    page.press("Replay")
    page.wait_for_text("The record's current state")
    page.fill(f"As of ({zone.key})", moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S"))
    page.press("Replay")

    page.wait_for_text("MRN-4105: as of")
    accessible(page)
    changed = {
        row.find_element(By.TAG_NAME, "th").text: row.text
        for row in page.driver.find_elements(By.CSS_SELECTOR, "table.replay tr.changed")
    }
    assert "Attendance (changed)" in changed, changed
    assert "none" in changed["Attendance (changed)"]
    assert "1 attended" in changed["Attendance (changed)"]
    assert "Stage" not in changed  # in program then and now
    attendance = page.row("Attendance (changed)")
    assert attendance.find_element(By.TAG_NAME, "del").text == "none"
    assert attendance.find_element(By.TAG_NAME, "ins").text == "1 attended"
    assert "attendance recorded" in page.text
    page.screenshot("audit-replay")
