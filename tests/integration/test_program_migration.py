"""`POST /episodes/{id}/program/migrate` over HTTP: a supervisor moves a running episode
to another recorded version of its program; the move is in the hash-chained store, the
timeline and the access log; lower roles and versions that cannot carry the episode on
are refused with nothing stored."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from api_driver import Driver
from api_users import bearer

from domain.programs import program_digest
from programs import load_catalog
from store.db import Pool
from testing.program_versions import adult_two_no_shows

pytestmark = pytest.mark.integration


async def _event_count(pool: Pool, episode_id: str) -> int:
    count = await pool.fetchval("SELECT count(*) FROM events WHERE episode_id = $1", episode_id)
    assert isinstance(count, int)
    return count


async def _access_rows(pool: Pool, episode_id: str, path_end: str) -> list[dict[str, object]]:
    """The access-log rows of requests to the episode's path ending in `path_end`; the log
    is written just after the answer, so wait for it a moment."""
    for _ in range(50):
        rows = await pool.fetch(
            "SELECT user_id, role, action, outcome, status, command_id FROM access_log "
            "WHERE episode_id = $1 AND path LIKE $2 ORDER BY id",
            episode_id,
            f"%{path_end}",
        )
        if rows:
            return [dict(row) for row in rows]
        await asyncio.sleep(0.1)
    return []


async def test_given_a_running_episode_when_a_supervisor_migrates_it_then_the_move_is_stored_chained_timelined_and_logged(
    api: httpx.AsyncClient, db_pool: Pool
) -> None:
    driver = Driver(api)
    episode_id = await driver.at("in_program")
    episode = (await api.get(f"/episodes/{episode_id}")).json()
    v1 = load_catalog().get("adult-iop")
    assert episode["state"]["program_version"] == 1
    assert episode["state"]["program_digest"] == program_digest(v1)

    response = await api.post(
        f"/episodes/{episode_id}/program/migrate",
        json={"to_version": 2, "reason": "clinic adopted the 2-no-show escalation"},
        headers={"Idempotency-Key": "migrate-1", **bearer("supervisor")},
    )

    assert response.status_code == 200, response.text
    [event] = response.json()["events"]
    assert event["type"] == "program_migrated"
    assert (event["from_version"], event["to_version"]) == (1, 2)
    assert (event["from_digest"], event["to_digest"]) == (
        program_digest(v1),
        program_digest(adult_two_no_shows()),
    )
    assert event["actor"]["role"] == "supervisor"
    stored = await db_pool.fetchrow(
        "SELECT payload, prev_hash, hash FROM events WHERE episode_id = $1 AND seq = $2",
        episode_id,
        event["seq"],
    )
    assert stored is not None
    assert stored["prev_hash"] != stored["hash"]
    timeline = (await api.get(f"/episodes/{episode_id}/timeline")).json()
    assert "program_migrated" in [entry["type"] for entry in timeline["entries"]]
    verified = await api.get(f"/audit/episodes/{episode_id}/verify", headers=bearer("auditor"))
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"]
    assert verified.json()["head_seq"] == event["seq"]
    assert (await api.get(f"/episodes/{episode_id}")).json()["state"]["program_version"] == 2
    rows = await _access_rows(db_pool, episode_id, "/program/migrate")
    assert [(r["role"], r["action"], r["outcome"], r["command_id"]) for r in rows] == [
        ("supervisor", "update", "success", "migrate-1")
    ]


async def test_given_a_clinician_when_migrating_then_403_and_nothing_is_stored(
    api: httpx.AsyncClient, db_pool: Pool
) -> None:
    driver = Driver(api)
    episode_id = await driver.at("in_program")
    before = await _event_count(db_pool, episode_id)

    refused = await driver.send("clinician", episode_id, "migrate_program", {"to_version": 2})

    assert refused.status_code == 403, refused.text
    assert refused.json()["title"] == "CommandNotAllowed"
    assert await _event_count(db_pool, episode_id) == before
    rows = await _access_rows(db_pool, episode_id, "/program/migrate")
    assert [(r["role"], r["outcome"]) for r in rows] == [("clinician", "denied")]


@pytest.mark.parametrize(
    ("to_version", "status", "title"),
    [(9, 422, "UnknownProgramVersion"), (1, 409, "ProgramVersionUnchanged")],
)
async def test_given_a_version_the_episode_cannot_move_to_then_it_is_refused_and_nothing_is_stored(
    api: httpx.AsyncClient, db_pool: Pool, to_version: int, status: int, title: str
) -> None:
    driver = Driver(api)
    episode_id = await driver.at("in_program")
    before = await _event_count(db_pool, episode_id)

    refused = await driver.send(
        "supervisor", episode_id, "migrate_program", {"to_version": to_version}
    )

    assert refused.status_code == status, refused.text
    assert refused.json()["title"] == title
    assert await _event_count(db_pool, episode_id) == before
