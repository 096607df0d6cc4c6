"""Staff see their own change in the worklists: a command's answer carries its position,
and a read that names it (`?min_position=`) waits for the projector to fold it."""

from __future__ import annotations

import httpx
import pytest
from api_driver import Driver
from api_users import bearer

from store.db import Pool
from store.projections import PROJECTOR_LOCK_KEY

pytestmark = pytest.mark.integration


class TestReadYourWrites:
    async def test_given_a_no_show_when_tasks_are_read_at_its_position_then_its_task_is_listed(
        self, api: httpx.AsyncClient
    ) -> None:
        d = Driver(api)
        episode_id = await d.at("in_program")
        await d.past_session(episode_id, "s-1")
        answer = await d.ok(
            "clinician",
            episode_id,
            "record_attendance",
            {"status": "no_show"},
            session_id="s-1",
        )
        position = answer["position"]

        tasks = await api.get(f"/tasks?min_position={position}", headers=bearer("clinician"))
        caseload = await api.get(f"/caseload?min_position={position}", headers=bearer("clinician"))

        assert isinstance(position, int)
        assert tasks.status_code == 200
        assert episode_id in {t["episode_id"] for t in tasks.json()["tasks"]}
        assert episode_id in {e["episode_id"] for e in caseload.json()["entries"]}

    async def test_given_a_position_no_event_has_when_a_worklist_waits_for_it_then_422(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.get("/tasks?min_position=999999999", headers=bearer("clinician"))

        assert response.status_code == 422
        assert response.json()["title"] == "UnknownPosition"

    async def test_given_a_stalled_projector_when_a_read_waits_for_a_new_position_then_503(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        d = Driver(api)
        async with db_pool.acquire() as conn:
            # Holds the projectors' lock: nothing is folded while it is held.
            await conn.execute("SELECT pg_advisory_lock($1)", PROJECTOR_LOCK_KEY)
            try:
                episode_id = await d.refer()
                answer = await d.ok("intake", episode_id, "record_screening")
                response = await api.get(
                    f"/deadlines?min_position={answer['position']}", headers=bearer("clinician")
                )
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", PROJECTOR_LOCK_KEY)

        assert response.status_code == 503
        assert response.json()["title"] == "ProjectionBehind"
