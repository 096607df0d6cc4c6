"""One episode from referral to discharge through the HTTP API alone, then its access record.

Each step is taken by the role that would take it, with its own bearer token; the access
log then names each of them, and exports as FHIR R4B AuditEvents that the R4B models accept.
"""

from __future__ import annotations

import httpx
import pytest
from api_driver import Driver
from api_users import bearer
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from store.db import Pool

pytestmark = pytest.mark.integration


class TestReferralToDischarge:
    """Staff drive the whole pathway over HTTP; the record and the access log agree."""

    async def test_episode_goes_from_referral_to_discharge(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        d = Driver(api)
        episode_id = await d.refer("intake")
        await d.ok("intake", episode_id, "start_screening")
        await d.ok("intake", episode_id, "record_screening")
        await d.ok("clinician", episode_id, "record_assessment")
        await d.ok("clinician", episode_id, "admit_client")
        await d.ok("clinician", episode_id, "record_treatment_plan")
        await d.ok("intake", episode_id, "record_consent")
        await d.past_session(episode_id, "s-1")
        await d.ok(
            "clinician", episode_id, "record_attendance", {"status": "attended"}, session_id="s-1"
        )
        await d.ok(
            "clinician",
            episode_id,
            "complete_plan_review",
            {"outcome": "advance_phase", "reason": "stabilization goals met early"},
        )
        await d.ok("clinician", episode_id, "record_relapse_prevention_plan")
        await d.ok("clinician", episode_id, "record_aftercare_plan")
        stepped = await d.ok("clinician", episode_id, "step_down")
        await d.ok("intake", episode_id, "record_check_in", {"check_in": 1})
        discharged = await d.ok(
            "supervisor",
            episode_id,
            "discharge",
            {"discharge_reason": "completed", "summary": "aftercare going well"},
        )

        assert stepped["stage"] == "aftercare"
        assert discharged["stage"] == "discharged"
        state = (await api.get(f"/episodes/{episode_id}", headers=bearer("clinician"))).json()
        assert state["state"]["stage"] == "discharged"
        events = (await api.get(f"/episodes/{episode_id}/events")).json()["events"]
        stored = await db_pool.fetchval(
            "SELECT count(*) FROM events WHERE episode_id = $1", episode_id
        )
        assert len(events) == stored == discharged["version"]
        assert events[-1]["type"] == "episode_discharged"
        assert events[-1]["actor_id"] == "sue.supervisor"
        timeline = (await api.get(f"/episodes/{episode_id}/timeline")).json()["entries"]
        assert timeline[-1]["type"] == "episode_discharged"

        after = await d.send("supervisor", episode_id, "discharge")
        assert after.status_code == 409
        assert after.json()["title"] == "EpisodeClosed"

        log = (
            await api.get(
                "/audit/access-log", params={"episode_id": episode_id}, headers=bearer("auditor")
            )
        ).json()["entries"]
        writers = {(e["user_id"], e["action"]) for e in log if e["outcome"] == "success"}
        assert {
            ("ivy.intake", "create"),
            ("ivy.intake", "update"),
            ("cal.clinician", "update"),
            ("sue.supervisor", "update"),
            ("cal.clinician", "read"),
        } <= writers
        assert any(e["outcome"] == "conflict" for e in log)
        fhir = await api.get(
            "/audit/access-log",
            params={"episode_id": episode_id, "format": "fhir"},
            headers=bearer("auditor"),
        )
        bundle = Bundle.model_validate(fhir.json())
        assert fhir.headers["content-type"].startswith("application/fhir+json")
        assert len(bundle.entry or []) >= len(log)

    async def test_idempotency_key_applies_a_retried_command_once(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        headers = {**bearer("intake"), "Idempotency-Key": "referral-retry-1"}
        body = {"client_ref": "MRN-42", "program_id": "adult-iop", "referral_source": "court"}
        first = await api.post("/episodes", json=body, headers=headers)
        again = await api.post("/episodes", json=body, headers=headers)
        episode_id = first.json()["episode_id"]
        screening = {**bearer("intake"), "Idempotency-Key": "screen-1"}
        url = f"/episodes/{episode_id}/screening/start"
        one = await api.post(url, headers=screening)
        two = await api.post(url, headers=screening)

        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json()["episode_id"] == episode_id
        assert one.json() == two.json()
        assert one.json()["events"][0]["command_id"] == "screen-1"
        count = await db_pool.fetchval(
            "SELECT count(*) FROM events WHERE episode_id = $1", episode_id
        )
        assert count == 2


class TestAuthentication:
    """401 without a valid token (with a Bearer challenge); 403 when the role may not."""

    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer not-a-known-token"}, {"Authorization": "Basic eDp5"}],
    )
    async def test_missing_or_unknown_token_is_401_with_a_challenge(
        self, api: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        api.headers.pop("Authorization", None)

        response = await api.get("/episodes", headers=headers)

        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Bearer realm="carepath"')
        assert response.json()["title"] in {"AuthenticationRequired", "InvalidToken"}

    async def test_healthz_and_docs_need_no_token(self, api: httpx.AsyncClient) -> None:
        api.headers.pop("Authorization", None)

        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/docs")).status_code == 200
        assert (await api.get("/openapi.json")).status_code == 200

    async def test_auditor_reads_but_may_not_refer(self, api: httpx.AsyncClient) -> None:
        episode_id = await Driver(api).refer()

        read = await api.get(f"/episodes/{episode_id}", headers=bearer("auditor"))
        refer = await api.post(
            "/episodes",
            json={"client_ref": "MRN-1", "program_id": "adult-iop", "referral_source": "self"},
            headers=bearer("auditor"),
        )

        assert read.status_code == 200
        assert refer.status_code == 403
        assert refer.json()["title"] == "CommandNotAllowed"

    async def test_access_log_is_for_auditors_only(self, api: httpx.AsyncClient) -> None:
        response = await api.get("/audit/access-log", headers=bearer("supervisor"))

        assert response.status_code == 403
        assert response.json()["title"] == "AccessDenied"


class TestProgramScoping:
    """A clinician sees and acts on their programs' episodes only, and learns nothing else."""

    async def test_other_programs_episode_is_404_like_a_missing_one(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        teen = await Driver(api).refer(program_id="adolescent-iop")

        for path in ("", "/events", "/timeline", "/deadlines"):
            hidden = await api.get(f"/episodes/{teen}{path}", headers=bearer("clinician"))
            missing = await api.get(f"/episodes/no-such-episode{path}", headers=bearer("clinician"))
            assert hidden.status_code == missing.status_code == 404
            assert hidden.json()["title"] == "EpisodeNotFound"
            assert teen not in missing.text
        seen = await api.get(f"/episodes/{teen}", headers=bearer("teen_clinician"))
        assert seen.status_code == 200
        denied = await db_pool.fetchval(
            "SELECT count(*) FROM access_log WHERE episode_id = $1 AND outcome = 'denied'", teen
        )
        assert denied == 4

    async def test_clinician_may_not_refer_to_another_program(self, api: httpx.AsyncClient) -> None:
        response = await api.post(
            "/episodes",
            json={"client_ref": "MRN-9", "program_id": "adolescent-iop", "referral_source": "self"},
            headers=bearer("clinician"),
        )

        assert response.status_code == 403
        assert response.json()["title"] == "AccessDenied"

    async def test_worklists_list_only_the_callers_programs(self, api: httpx.AsyncClient) -> None:
        d = Driver(api)
        adult = await d.at("with_task")
        teen = await d.refer(program_id="adolescent-iop")

        tasks = (await api.get("/tasks", headers=bearer("clinician"))).json()["tasks"]
        teen_tasks = (await api.get("/tasks", headers=bearer("teen_clinician"))).json()["tasks"]
        caseload = (await api.get("/caseload", headers=bearer("clinician"))).json()
        deadlines = (await api.get("/deadlines", headers=bearer("clinician"))).json()["deadlines"]
        teen_deadlines = (await api.get("/deadlines", headers=bearer("teen_clinician"))).json()

        assert {t["episode_id"] for t in tasks} == {adult}
        assert teen_tasks == []
        assert caseload["clinician_id"] == "cal.clinician"
        assert {e["episode_id"] for e in caseload["entries"]} == {adult}
        assert {x["episode_id"] for x in deadlines} == {adult}
        assert all(x["episode_id"] == teen for x in teen_deadlines["deadlines"])


class TestOneOpenTaskPerConcern:
    async def test_given_a_superseded_task_when_staff_list_and_resolve_it_then_only_its_successor_counts(
        self, api: httpx.AsyncClient
    ) -> None:
        d = Driver(api)
        episode_id = await d.at("in_program")
        # Back to back and in the past (sessions may not overlap): s-a, then s-b.
        for session_id, minutes_ago in (("s-a", 130), ("s-b", 10)):
            await d.past_session(episode_id, session_id, minutes_ago=minutes_ago, hours=2)
            await d.ok(
                "clinician", episode_id, "record_attendance", {"status": "no_show"},
                session_id=session_id,
            )  # fmt: skip
        state = (await api.get(f"/episodes/{episode_id}", headers=bearer("director"))).json()
        outreach, higher = state["state"]["tasks"]
        assert outreach["superseded_by"] == higher["task_id"]
        assert higher["escalated_from"] == outreach["task_id"]

        tasks = (await api.get("/tasks", headers=bearer("clinician"))).json()["tasks"]
        mine = [t for t in tasks if t["episode_id"] == episode_id]
        refused = await d.send(
            "supervisor", episode_id, "resolve_task", {"outcome": "reached"},
            task_id=outreach["task_id"],
        )  # fmt: skip

        assert [(t["task_id"], t["level"]) for t in mine] == [(higher["task_id"], 2)]
        assert refused.status_code == 409
        assert refused.json()["title"] == "TaskSuperseded"
        assert f"stands at task '{higher['task_id']}'" in refused.json()["detail"]


class TestAccessLog:
    """Every access is recorded, the records cannot be changed, and they export as FHIR."""

    async def test_reads_and_refusals_are_recorded_and_exported_as_fhir(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        episode_id = await Driver(api).refer()
        await api.get(f"/episodes/{episode_id}", headers=bearer("clinician"))
        await api.post(f"/episodes/{episode_id}/admission", headers=bearer("intake"))
        await api.get(f"/episodes/{episode_id}", headers={"Authorization": "Bearer wrong"})

        rows = await db_pool.fetch(
            "SELECT user_id, role, action, outcome, status FROM access_log "
            "WHERE episode_id = $1 ORDER BY id",
            episode_id,
        )
        fhir = await api.get(
            "/audit/access-log", params={"format": "fhir"}, headers=bearer("auditor")
        )

        assert [tuple(r) for r in rows] == [
            ("ivy.intake", "intake_coordinator", "create", "success", 201),
            ("cal.clinician", "clinician", "read", "success", 200),
            ("ivy.intake", "intake_coordinator", "update", "denied", 403),
            ("(unauthenticated)", "(none)", "read", "unauthenticated", 401),
        ]
        bundle = Bundle.model_validate(fhir.json())
        events = [AuditEvent.model_validate(e.resource.model_dump()) for e in bundle.entry or []]
        mine = [
            e
            for e in events
            if e.entity
            and e.entity[0].what
            and e.entity[0].what.identifier
            and e.entity[0].what.identifier.value == episode_id
        ]
        assert [(e.action, e.outcome) for e in mine] == [
            ("C", "0"),
            ("R", "0"),
            ("U", "4"),
            ("R", "4"),
        ]
        assert mine[2].agent[0].who.identifier.value == "ivy.intake"

    async def test_access_log_rows_cannot_be_changed_or_removed(
        self, owner_pool: Pool, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        await Driver(api).refer()

        with pytest.raises(Exception, match="append-only"):
            await owner_pool.execute("UPDATE access_log SET user_id = 'someone-else'")
        with pytest.raises(Exception, match="append-only"):
            await owner_pool.execute("DELETE FROM access_log")

    async def test_no_data_is_returned_when_the_access_cannot_be_recorded(
        self, owner_pool: Pool, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        episode_id = await Driver(api).refer()
        await owner_pool.execute("ALTER TABLE access_log RENAME TO access_log_moved")

        response = await api.get(f"/episodes/{episode_id}")

        assert response.status_code == 503
        assert "client_ref" not in response.text
        assert "retry" in response.json()["detail"]
