"""Poison input through the real API: refused with 422 before it reaches the decider.

Each value here once got past the boundary and wedged its episode: a session in year
9999 overflowed the read model's arithmetic, one in year 1 the next timer, and a NUL
made PostgreSQL refuse the append, retried forever. Now each is refused with a problem
document, nothing is stored, and the episode takes the next valid command at once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from api_driver import Driver, command_url, example, new_id, now_iso
from api_users import bearer

from domain.vocabulary import MAX_ITEMS
from store.db import Pool

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def _session(**changes: Any) -> dict[str, Any]:
    return example(
        "schedule_session", **{"session_id": new_id("s"), "starts_at": now_iso(60), **changes}
    )


def _plan(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = example("record_treatment_plan")["plan"]
    return {"plan": {**plan, **changes}}


# (command, body, path fields): each must be refused with 422.
POISON: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "far-future date": ("schedule_session", _session(starts_at="9999-12-31T00:00:00Z"), {}),
    "far-past date": ("schedule_session", _session(starts_at="0001-01-01T00:00:00Z"), {}),
    "date years ahead": (
        "schedule_session",
        _session(starts_at=(NOW + timedelta(days=5 * 365)).isoformat()),
        {},
    ),
    "date years back": (
        "schedule_session",
        _session(starts_at=(NOW - timedelta(days=3 * 365)).isoformat()),
        {},
    ),
    "consent for decades": (
        "record_consent",
        example(
            "record_consent",
            consent_id=new_id("c"),
            expires_at=(NOW + timedelta(days=30 * 365)).isoformat(),
        ),
        {},
    ),
    "NUL in free text": (
        "complete_plan_review",
        {"outcome": "continue", "notes": "all groups\u0000attended"},
        {},
    ),
    "NUL in an id": ("schedule_session", _session(session_id="s-\u0000"), {}),
    # Percent-encoded, as a client must send it; the server decodes it into the id.
    "NUL in a path id": ("cancel_session", {}, {"session_id": "s%00"}),
    "escape sequence": (
        "record_relapse_prevention_plan",
        {"plan": {"triggers": ["payday\u001b[2J"], "coping_strategies": ["call sponsor"]}},
        {},
    ),
    "carriage return": ("complete_plan_review", {"outcome": "continue", "notes": "a\rb"}, {}),
    "lone surrogate": ("complete_plan_review", {"outcome": "continue", "notes": "\ud800"}, {}),
    "huge text": ("complete_plan_review", {"outcome": "continue", "notes": "x" * 100_000}, {}),
    "huge list": (
        "record_treatment_plan",
        _plan(modalities=["cbt"] * 10_000),
        {},
    ),
    "list one too long": (
        "record_relapse_prevention_plan",
        {
            "plan": {
                "triggers": [f"trigger {i}" for i in range(MAX_ITEMS + 1)],
                "coping_strategies": ["call sponsor"],
            }
        },
        {},
    ),
}


async def _event_count(pool: Pool, episode_id: str) -> int:
    count = await pool.fetchval("SELECT count(*) FROM events WHERE episode_id = $1", episode_id)
    assert isinstance(count, int)
    return count


@pytest.mark.parametrize("case", sorted(POISON))
async def test_poison_is_refused_and_the_episode_takes_the_next_command(
    api: httpx.AsyncClient, db_pool: Pool, case: str
) -> None:
    command, body, path = POISON[case]
    driver = Driver(api)
    episode_id = await driver.at("in_program")
    before = await _event_count(db_pool, episode_id)

    refused = await api.post(
        command_url(episode_id, command, **path),
        # json.dumps escapes every non-ASCII character, lone surrogates included.
        content=json.dumps(body).encode(),
        headers={**bearer("director"), "content-type": "application/json"},
    )

    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] in {"ValidationFailed", "InvalidCommand"}
    assert await _event_count(db_pool, episode_id) == before
    accepted = await driver.ok("intake", episode_id, "schedule_session", _session())
    assert [e["type"] for e in accepted["events"]] == ["session_scheduled"]


@pytest.mark.parametrize(
    "changes",
    [{"client_ref": "MRN-\u0000"}, {"reason": "x" * 5000}, {"program_id": "adult-iop\n"}],
    ids=["NUL", "huge text", "line feed"],
)
async def test_a_poisoned_referral_is_refused_and_opens_nothing(
    api: httpx.AsyncClient, db_pool: Pool, changes: dict[str, str]
) -> None:
    body = {"client_ref": "MRN-7001", "program_id": "adult-iop", "referral_source": "self"}

    response = await api.post("/episodes", json={**body, **changes}, headers=bearer("intake"))

    assert response.status_code == 422, response.text
    assert await db_pool.fetchval("SELECT count(*) FROM events") == 0
