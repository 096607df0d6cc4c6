"""A refused command's problem document over HTTP: every broken rule, the right status.

The treatment plan of two program days of two hours breaks two of the adult program's
intensity bounds at once; the clinician learns both from one refusal, with the numbers,
and the refusal is a 422 (the command is invalid in itself), as the README documents.
"""

from __future__ import annotations

import httpx
import pytest
from api_driver import Driver, example

from store.db import Pool

pytestmark = pytest.mark.integration


async def _event_count(pool: Pool, episode_id: str) -> int:
    count = await pool.fetchval("SELECT count(*) FROM events WHERE episode_id = $1", episode_id)
    assert isinstance(count, int)
    return count


async def test_given_a_plan_of_two_two_hour_days_when_recorded_then_422_lists_every_broken_rule(
    api: httpx.AsyncClient, db_pool: Pool
) -> None:
    driver = Driver(api)
    episode_id = await driver.at("assessed")
    await driver.ok("clinician", episode_id, "admit_client")
    plan = example("record_treatment_plan")["plan"]
    plan["weekly_schedule"] = [
        {"weekday": 0, "hours": 2, "kinds": ["group_process"]},
        {"weekday": 2, "hours": 2, "kinds": ["group_process"]},
    ]
    before = await _event_count(db_pool, episode_id)

    refused = await driver.send("clinician", episode_id, "record_treatment_plan", {"plan": plan})

    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["title"] == "ScheduleOutsideIntensityBounds"
    assert problem["type"].endswith("/ScheduleOutsideIntensityBounds")
    assert "breaks 2 rules" in problem["detail"]
    assert "2 program days" in problem["detail"]
    assert "totals 4 h" in problem["detail"]
    assert "9-19 h a week" in problem["detail"]
    assert [(e["rule"], e["actual"], e["min"], e["max"]) for e in problem["errors"]] == [
        ("sessions_per_week", 2, 3, 5),
        ("weekly_hours", 4, 9, 19),
    ]
    assert await _event_count(db_pool, episode_id) == before


async def test_given_a_session_when_another_overlaps_it_then_409_names_it(
    api: httpx.AsyncClient,
) -> None:
    driver = Driver(api)
    episode_id = await driver.at("in_program")
    first = example("schedule_session", session_id="s-a")
    await driver.ok("intake", episode_id, "schedule_session", first)

    refused = await driver.send(
        "intake", episode_id, "schedule_session", {**first, "session_id": "s-b"}
    )

    assert refused.status_code == 409, refused.text
    assert refused.json()["title"] == "SessionOverlap"
    assert "overlap session 's-a'" in refused.json()["detail"]
    assert "errors" not in refused.json()
