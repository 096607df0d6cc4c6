"""Intensity over HTTP: an episode's weeks of attendance (`/episodes/{id}/attendance`) and
the below-intensity worklist, from the read models the appends keep, scoped by program
and recorded in the access log; due times shown on the clinic's clock."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from api_users import bearer

from domain.events import EscalationRaised, WeeklyAttendanceChecked
from domain.programs import ProgramCatalog, parse_program
from domain.vocabulary import EscalationTrigger
from programs import load_catalog
from store import EventStore
from store.db import Pool
from store.projections import Projector
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events

pytestmark = pytest.mark.integration

# Admitted Wednesday 2026-03-04 in New York: the first week spans the spring change.
ADMISSION_DAY = datetime(2026, 3, 4, 13, 0, tzinfo=UTC)


def new_york_catalog() -> ProgramCatalog:
    catalog = load_catalog()
    programs = {pid: catalog.get(pid) for pid in catalog.ids()}
    adult = programs["adult-iop"].model_dump()
    programs["adult-iop"] = parse_program({**adult, "timezone": "America/New_York"})
    return ProgramCatalog(programs)


async def stored_episode(db_pool: Pool, episode_id: str, **kwargs: object) -> list[object]:
    events = episode_events(episode_id, **kwargs)  # type: ignore[arg-type]
    await EventStore(db_pool, chain_key=CHAIN_KEY).append(episode_id, events)
    await Projector(db_pool).catch_up()
    return list(events)


class TestAttendanceEndpoint:
    async def test_given_a_new_york_episode_when_its_attendance_is_read_then_weeks_are_local(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        events = await stored_episode(
            db_pool, "ep-ny", sessions=5, start=ADMISSION_DAY, catalog=new_york_catalog()
        )
        (check, *_) = [e for e in events if isinstance(e, WeeklyAttendanceChecked)]
        assert any(
            isinstance(e, EscalationRaised) and e.trigger is EscalationTrigger.BELOW_INTENSITY
            for e in events
        )

        response = await api.get("/episodes/ep-ny/attendance", headers=bearer("clinician"))

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["program_id"], body["timezone"]) == ("adult-iop", "America/New_York")
        first = body["weeks"][0]
        assert (first["first_day"], first["last_day"]) == ("2026-03-04", "2026-03-10")
        assert first["local_start"] == "2026-03-04T00:00:00-05:00"
        assert first["local_end"] == "2026-03-11T00:00:00-04:00"
        assert datetime.fromisoformat(first["week_end"]) == check.week_end
        assert (first["checked_hours"], first["minimum_hours"]) == (check.attended_hours, 9)
        assert first["below_minimum"] is True
        assert body["weeks"][-1]["below_minimum"] is None

    async def test_given_another_programs_clinician_then_the_episode_is_not_found_and_logged(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        await stored_episode(db_pool, "ep-hidden", sessions=5)

        response = await api.get("/episodes/ep-hidden/attendance", headers=bearer("teen_clinician"))

        assert response.status_code == 404
        log = (
            await api.get(
                "/audit/access-log", params={"episode_id": "ep-hidden"}, headers=bearer("auditor")
            )
        ).json()["entries"]
        assert [(e["user_id"], e["resource"], e["outcome"]) for e in log] == [
            ("tess.teen", "/episodes/{episode_id}/attendance", "denied")
        ]

    async def test_given_an_unknown_episode_then_404(self, api: httpx.AsyncClient) -> None:
        assert (await api.get("/episodes/nope/attendance")).status_code == 404


class TestBelowIntensityWorklist:
    async def test_given_short_and_full_weeks_then_only_the_short_latest_weeks_are_listed(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        await stored_episode(db_pool, "ep-short", sessions=5)
        await stored_episode(db_pool, "ep-gone", sessions=5, discharge=True)
        await stored_episode(db_pool, "ep-new", sessions=1)  # no week judged yet

        response = await api.get("/worklists/below-intensity", headers=bearer("supervisor"))

        assert response.status_code == 200, response.text
        (entry,) = response.json()["episodes"]
        assert entry["episode_id"] == "ep-short"
        assert entry["client_ref"] == "MRN-ep-short"
        assert entry["primary_clinician"] == "cal.clinician"
        assert (entry["attended_hours"], entry["minimum_hours"]) == (8, 9)
        assert entry["shortfall_hours"] == 1
        assert entry["timezone"] == "UTC"
        assert entry["first_day"] == "2026-01-05"

    async def test_given_program_scoping_then_a_clinician_sees_only_their_programs(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        await stored_episode(db_pool, "ep-adult", sessions=5)

        adult = await api.get("/worklists/below-intensity", headers=bearer("clinician"))
        teen = await api.get("/worklists/below-intensity", headers=bearer("teen_clinician"))
        other = await api.get(
            "/worklists/below-intensity",
            params={"clinician_id": "kim.clinician"},
            headers=bearer("director"),
        )

        assert [e["episode_id"] for e in adult.json()["episodes"]] == ["ep-adult"]
        assert teen.json()["episodes"] == []
        assert other.json()["episodes"] == []

    async def test_given_no_token_then_401(self, api: httpx.AsyncClient) -> None:
        response = await api.get(
            "/worklists/below-intensity", headers={"Authorization": "Bearer wrong"}
        )
        assert response.status_code == 401
