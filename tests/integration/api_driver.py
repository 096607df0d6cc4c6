"""Drive episodes through the HTTP API alone, as staff would: bodies are the OpenAPI examples.

`Driver.at(stage)` refers a new adult-program episode and applies the commands that bring
it to a named point of the pathway, each as the role that would issue it. The examples'
dates are moved to today (`example`): the decider refuses dates too far from its clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from api_users import bearer

from api.command_specs import spec_for
from testing.samples import dated_example

REFERRAL = {"client_ref": "MRN-7001", "program_id": "adult-iop", "referral_source": "self"}


def now_iso(minutes: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def minutes_into_today(most: float = 10) -> float:
    """How many minutes back a session may start and still fall on today's clinic day
    (UTC, the programs' zone): `most`, or half the time since midnight just after it.

    An episode's first week starts at midnight of its admission day, so a session that
    started before midnight counts in no week of an episode admitted just after it.
    """
    now = datetime.now(UTC)
    since_midnight = now.hour * 60 + now.minute + now.second / 60 + now.microsecond / 6e7
    return min(most, since_midnight / 2)


def example(command: str, **changes: Any) -> dict[str, Any]:
    """The command's example request body (path fields left out), dated around today,
    with `changes` applied."""
    spec = spec_for(command)
    body = dated_example(spec.body_example, datetime.now(UTC))
    return {**body, **changes}


def command_url(episode_id: str, command: str, **path: str) -> str:
    spec = spec_for(command)
    return f"/episodes/{episode_id}" + spec.path.format(**path)


@dataclass
class Driver:
    http: httpx.AsyncClient

    async def send(
        self,
        user: str,
        episode_id: str,
        command: str,
        body: dict[str, Any] | None = None,
        **path: str,
    ) -> httpx.Response:
        """POST one command as `user`; the body defaults to the command's example."""
        spec = spec_for(command)
        if body is None:
            body = example(command)
            path = {**spec.path_example, **path}
        return await self.http.post(
            command_url(episode_id, command, **path), json=body, headers=bearer(user)
        )

    async def ok(
        self,
        user: str,
        episode_id: str,
        command: str,
        body: dict[str, Any] | None = None,
        **path: str,
    ) -> dict[str, Any]:
        response = await self.send(user, episode_id, command, body, **path)
        assert response.status_code == 200, f"{command} as {user}: {response.text}"
        result: dict[str, Any] = response.json()
        return result

    async def refer(self, user: str = "intake", **changes: str) -> str:
        response = await self.http.post(
            "/episodes", json={**REFERRAL, **changes}, headers=bearer(user)
        )
        assert response.status_code == 201, response.text
        episode_id: str = response.json()["episode_id"]
        return episode_id

    async def past_session(
        self,
        episode_id: str,
        session_id: str,
        minutes_ago: float | None = None,
        hours: float = 3,
    ) -> None:
        """A session that started `minutes_ago` (attendance can be recorded); by default a
        few minutes ago, today (`minutes_into_today`)."""
        if minutes_ago is None:
            minutes_ago = minutes_into_today()
        body = {
            "session_id": session_id,
            "kind": "group_process",
            "starts_at": now_iso(-minutes_ago),
            "hours": hours,
        }
        await self.ok("intake", episode_id, "schedule_session", body)

    async def at(self, stage: str) -> str:
        """A new episode at `stage`: referred, assessment, assessed, assessed_php,
        in_program, on_hold, attended, with_task, plans_ready, aftercare, relapsed,
        reassessed (the relapse's reassessment task resolved), with_consent."""
        episode_id = await self.refer()
        if stage == "referred":
            return episode_id
        await self.ok("intake", episode_id, "record_screening")
        if stage == "assessment":
            return episode_id
        assessment = dict(spec_for("record_assessment").example)
        if stage == "assessed_php":
            await self.ok(
                "clinician",
                episode_id,
                "record_assessment",
                {**assessment, "recommended_level": "php"},
            )
            return episode_id
        await self.ok("clinician", episode_id, "record_assessment")
        if stage == "assessed":
            return episode_id
        await self.ok("clinician", episode_id, "admit_client")
        await self.ok("clinician", episode_id, "record_treatment_plan")
        if stage == "in_program":
            return episode_id
        if stage == "on_hold":
            await self.ok("clinician", episode_id, "place_on_hold")
            return episode_id
        if stage in {"attended", "with_task"}:
            await self.past_session(episode_id, "s-past")
            status = "attended" if stage == "attended" else "no_show"
            await self.ok(
                "clinician",
                episode_id,
                "record_attendance",
                {"status": status},
                session_id="s-past",
            )
            return episode_id
        if stage == "with_consent":
            await self.ok("intake", episode_id, "record_consent")
            return episode_id
        await self.ok("clinician", episode_id, "record_relapse_prevention_plan")
        await self.ok("clinician", episode_id, "record_aftercare_plan")
        if stage == "plans_ready":
            return episode_id
        await self.ok("clinician", episode_id, "step_down")
        if stage == "aftercare":
            return episode_id
        await self.ok("intake", episode_id, "report_relapse")
        if stage == "relapsed":
            return episode_id
        assert stage == "reassessed", stage
        (task_id,) = await self.open_task_ids(episode_id)
        await self.ok(
            "clinician",
            episode_id,
            "resolve_task",
            {"outcome": "reassessed: readmit to IOP"},
            task_id=task_id,
        )
        return episode_id

    async def open_task_ids(self, episode_id: str) -> list[str]:
        state = (await self.http.get(f"/episodes/{episode_id}", headers=bearer("director"))).json()
        tasks = state["state"]["tasks"]
        return [t["task_id"] for t in tasks if not t["resolved"] and not t.get("superseded_by")]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
