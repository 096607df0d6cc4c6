"""The whole role x command matrix through the HTTP API, on real Temporal and PostgreSQL.

For every staff command: each role the domain's matrix allows succeeds (on an episode
brought to where the command applies), each other role gets 403 and the episode's stored
events stay as they were, and a clinician of another program gets 404 (the episode is
invisible to them) and changes nothing either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from api_driver import Driver, command_url, example, new_id, now_iso
from api_users import USERS, bearer

from api.command_specs import command_specs, spec_for
from domain.actors import Role
from domain.roles import allowed_roles
from store.db import Pool

pytestmark = pytest.mark.integration

ROLE_USERS = {Role(role): name for name, (_, role, _) in USERS.items() if name != "teen_clinician"}

Body = tuple[dict[str, Any] | None, dict[str, str]]
Prep = Callable[[Driver, str], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    """Where a command applies, and the body the i-th allowed role sends."""

    stage: str
    # True: the allowed roles take turns on one episode; False: one fresh episode each.
    shared: bool
    body: Callable[[int], Body] = field(default=lambda i: (None, {}))
    prep: Prep | None = None
    # Reads what the body needs from the episode (e.g. an open task's id).
    lookup: Callable[[Driver, str, int], Awaitable[Body]] | None = None

    async def request(self, driver: Driver, episode_id: str, i: int) -> Body:
        if self.lookup is not None:
            return await self.lookup(driver, episode_id, i)
        return self.body(i)


async def _open_task(driver: Driver, episode_id: str, i: int) -> Body:
    (task_id,) = await driver.open_task_ids(episode_id)
    return {"outcome": "reached by phone"}, {"task_id": task_id}


async def _sessions(driver: Driver, episode_id: str, past: bool) -> None:
    if past:
        # Half-hour sessions a minute apart (a client's sessions may not overlap), one per
        # role that records attendance; none is past its no-show grace yet.
        for i in range(len(allowed_roles("record_attendance"))):
            await driver.past_session(episode_id, f"s-{i}", minutes_ago=10 + 31 * i, hours=0.5)
        return
    for i in range(len(ROLE_USERS)):
        starts_at = now_iso(60 * 24 + 240 * i)  # apart: sessions may not overlap
        body = example("schedule_session", session_id=f"s-{i}", starts_at=starts_at)
        await driver.ok("intake", episode_id, "schedule_session", body)


async def _future_sessions(driver: Driver, episode_id: str) -> None:
    await _sessions(driver, episode_id, past=False)


async def _past_sessions(driver: Driver, episode_id: str) -> None:
    await _sessions(driver, episode_id, past=True)


async def _consents(driver: Driver, episode_id: str) -> None:
    for i in range(len(ROLE_USERS)):
        await driver.ok(
            "intake",
            episode_id,
            "record_consent",
            example("record_consent", consent_id=f"c-{i}"),
        )


def _example(command: str, **changes: Any) -> dict[str, Any]:
    spec = spec_for(command)
    return {k: v for k, v in example(command, **changes).items() if k not in spec.path_params}


CASES: dict[str, Case] = {
    "start_screening": Case("referred", shared=False),
    "record_screening": Case("referred", shared=False),
    "refer_out": Case("referred", shared=False),
    "record_assessment": Case("assessment", shared=True),
    "override_level_of_care": Case("assessed_php", shared=False),
    "admit_client": Case("assessed", shared=False),
    "record_treatment_plan": Case("in_program", shared=True),
    "advance_phase": Case("in_program", shared=False),
    "complete_plan_review": Case("in_program", shared=True),
    "place_on_hold": Case("in_program", shared=False),
    "resume_from_hold": Case("on_hold", shared=False),
    "step_up": Case("in_program", shared=False),
    "record_relapse_prevention_plan": Case("in_program", shared=True),
    "record_aftercare_plan": Case("in_program", shared=True),
    "step_down": Case("plans_ready", shared=False),
    "discharge": Case("in_program", shared=False),
    "schedule_session": Case(
        "in_program",
        shared=True,
        body=lambda i: (
            # Four hours apart: a client's sessions may not overlap.
            _example("schedule_session", session_id=f"new-{i}", starts_at=now_iso(60 + 240 * i)),
            {},
        ),
    ),
    "reschedule_session": Case(
        "in_program",
        shared=True,
        body=lambda i: (
            _example("reschedule_session", starts_at=now_iso(120 + i)),
            {"session_id": "s-0"},
        ),
        prep=_future_sessions,
    ),
    "cancel_session": Case(
        "in_program",
        shared=True,
        body=lambda i: ({}, {"session_id": f"s-{i}"}),
        prep=_future_sessions,
    ),
    "record_attendance": Case(
        "in_program",
        shared=True,
        body=lambda i: ({"status": "attended"}, {"session_id": f"s-{i}"}),
        prep=_past_sessions,
    ),
    "correct_attendance": Case(
        "attended",
        shared=True,
        body=lambda i: (
            {"status": "excused" if i % 2 == 0 else "attended", "reason": "recorded wrongly"},
            {"session_id": "s-past"},
        ),
    ),
    "resolve_task": Case("with_task", shared=False, lookup=_open_task),
    # Later check-ins are not due yet: recorded early, with the reason.
    "record_check_in": Case(
        "aftercare",
        shared=True,
        body=lambda i: ({"check_in": i + 1, "reason": "seen early at a clinic visit"}, {}),
    ),
    "report_relapse": Case("aftercare", shared=True),
    "readmit_client": Case(
        "reassessed",
        shared=False,
        body=lambda i: (_example("readmit_client", new_episode_id=new_id("readmit")), {}),
    ),
    "record_consent": Case(
        "in_program",
        shared=True,
        body=lambda i: (_example("record_consent", consent_id=f"k-{i}"), {}),
    ),
    "revoke_consent": Case(
        "in_program", shared=True, body=lambda i: ({}, {"consent_id": f"c-{i}"}), prep=_consents
    ),
    "notify_party": Case("with_consent", shared=True),
    "migrate_program": Case("in_program", shared=False),
    "record_authorization": Case(
        "in_program",
        shared=True,
        body=lambda i: (_example("record_authorization", authorization_id=f"a-{i}"), {}),
    ),
}


async def _event_count(pool: Pool, episode_id: str) -> int:
    count = await pool.fetchval("SELECT count(*) FROM events WHERE episode_id = $1", episode_id)
    assert isinstance(count, int)
    return count


def test_every_staff_command_has_a_matrix_case() -> None:
    assert {spec.kind for spec in command_specs()} == set(CASES)


@pytest.mark.parametrize("command", sorted(CASES))
async def test_allowed_roles_succeed_and_others_get_403_changing_nothing(
    api: httpx.AsyncClient, db_pool: Pool, command: str
) -> None:
    case = CASES[command]
    driver = Driver(api)
    allowed = [ROLE_USERS[r] for r in sorted(allowed_roles(command)) if r in ROLE_USERS]
    denied = [name for role, name in ROLE_USERS.items() if role not in allowed_roles(command)]
    fresh = 1 if case.shared else len(allowed)
    episodes = list(await asyncio.gather(*(driver.at(case.stage) for _ in range(fresh))))
    for episode_id in episodes:
        if case.prep:
            await case.prep(driver, episode_id)

    # Denials first, on an episode where the command would apply: 403, nothing stored.
    target = episodes[0]
    before = await _event_count(db_pool, target)
    body, path = await case.request(driver, target, 0)
    for user in denied:
        response = await driver.send(user, target, command, body, **path)
        assert response.status_code == 403, f"{command} as {user}: {response.text}"
        assert response.json()["title"] == "CommandNotAllowed"
    # A clinician of another program does not see the episode at all.
    if Role.CLINICIAN in allowed_roles(command):
        hidden = await driver.send("teen_clinician", target, command, body, **path)
        assert hidden.status_code == 404, hidden.text
    assert await _event_count(db_pool, target) == before

    for i, user in enumerate(allowed):
        episode_id = episodes[0] if case.shared else episodes[i]
        body, path = await case.request(driver, episode_id, i)
        result = await driver.ok(user, episode_id, command, body, **path)
        assert result["events"], f"{command} as {user} recorded nothing"
        assert all(e["actor"]["user_id"] == USERS[user][0] for e in result["events"][:1])


BAD_BODIES = {
    "malformed": b"{not json",
    "unknown field": b'{"unexpected": 1}',
    "wrong types": b'{"starts_at": 7, "summary": ["x"], "plan": "none"}',
    "empty": b"",
}


@pytest.mark.parametrize("body", sorted(BAD_BODIES))
async def test_a_role_that_may_not_issue_a_command_gets_403_whatever_the_body(
    api: httpx.AsyncClient, body: str
) -> None:
    """The role matrix is checked before the body is read: a refused role learns nothing
    from its body's faults (no 400, no 422), and no episode is looked up."""
    refused: list[str] = []
    for spec in command_specs():
        denied = [name for role, name in ROLE_USERS.items() if role not in spec.roles]
        for user in denied:
            response = await api.post(
                command_url("no-such-episode", spec.kind, **spec.path_example),
                content=BAD_BODIES[body],
                headers={**bearer(user), "content-type": "application/json"},
            )
            if response.status_code != 403 or response.json()["title"] != "CommandNotAllowed":
                refused.append(f"{spec.kind} as {user}: {response.status_code}")
    referral = await api.post(
        "/episodes",
        content=BAD_BODIES[body],
        headers={**bearer("auditor"), "content-type": "application/json"},
    )
    assert not refused
    assert referral.status_code == 403, referral.text


async def test_a_caller_without_a_token_gets_401_whatever_the_body(api: httpx.AsyncClient) -> None:
    spec = spec_for("schedule_session")
    response = await api.post(
        command_url("no-such-episode", spec.kind, **spec.path_example),
        content=b"{not json",
        headers={"Authorization": "", "content-type": "application/json"},
    )

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
