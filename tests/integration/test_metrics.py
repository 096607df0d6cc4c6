"""The metrics against real servers: `/metrics` of a running stack, the counters the API
and the append activity move, and the open-tasks gauge read from the read model."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from api_users import bearer
from prometheus_client import REGISTRY
from temporalio.testing import ActivityEnvironment

from activities.event_store import EventStoreActivities
from domain.actors import Role
from store import EventStore
from store.db import Pool
from store.metrics import refresh_open_tasks
from store.projections import Projector
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events
from testing.up import UpStack
from workflows.messages import AppendEventsInput

pytestmark = pytest.mark.integration

REFERRAL = {"client_ref": "MRN-3003", "program_id": "adult-iop", "referral_source": "self"}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def sample(text: str, series: str) -> float | None:
    """The value of the exposition line that starts with `series` (name and labels)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


class TestStackEndpoints:
    def test_given_a_running_stack_when_commands_were_sent_then_both_metrics_endpoints_show_carepath_and_temporal_series(
        self, tmp_path: Path
    ) -> None:
        stack = UpStack(tmp_path / "stack")
        stack.start()
        try:
            stack.wait_ready()
            director = stack.headers(Role.CLINICAL_DIRECTOR)
            referred = httpx.post(stack.url + "/episodes", json=REFERRAL, headers=director)
            episode = referred.json()["episode_id"]
            start = f"{stack.url}/episodes/{episode}/screening/start"
            assert httpx.post(start, headers=director).status_code == 200
            assert httpx.post(start, headers=director).status_code == 409
            worker_url = f"http://127.0.0.1:{stack.env['CAREPATH_WORKER_METRICS_PORT']}/metrics"

            api = httpx.get(stack.url + "/metrics", timeout=10)
            worker = httpx.get(worker_url, timeout=10)
        finally:
            stack.stop()

        assert api.status_code == 200
        assert api.headers["content-type"].startswith("text/plain")
        assert (
            sample(
                api.text, 'carepath_commands_total{code="",outcome="applied",type="refer_client"}'
            )
            == 1
        )
        assert (
            sample(
                api.text,
                'carepath_commands_total{code="WrongStage",outcome="refused",type="start_screening"}',
            )
            == 1
        )
        assert re.search(r"^temporal_request_total\{", api.text, re.M)
        assert worker.status_code == 200
        assert (sample(worker.text, "carepath_append_duration_seconds_count") or 0) >= 2
        assert re.search(
            r"^temporal_workflow_task_execution_latency_seconds_count\{", worker.text, re.M
        )
        assert re.search(r"^temporal_sticky_cache_size\{", worker.text, re.M)
        # No id of the episode (or anything else a caller sent) in any label.
        for text in (api.text, worker.text):
            assert episode not in text
            assert "MRN-3003" not in text


class TestApiCounters:
    async def test_given_an_applied_and_a_refused_command_when_answered_then_each_counts_by_outcome(
        self, api: httpx.AsyncClient
    ) -> None:
        applied = value(
            "carepath_commands_total", type="start_screening", outcome="applied", code=""
        )
        refused = value(
            "carepath_commands_total", type="start_screening", outcome="refused", code="WrongStage"
        )
        denied = value(
            "carepath_commands_total",
            type="start_screening",
            outcome="refused",
            code="CommandNotAllowed",
        )
        episode = (await api.post("/episodes", json=REFERRAL)).json()["episode_id"]

        first = await api.post(f"/episodes/{episode}/screening/start")
        again = await api.post(f"/episodes/{episode}/screening/start")
        auditor = await api.post(f"/episodes/{episode}/screening/start", headers=bearer("auditor"))
        scraped = await api.get("/metrics")

        assert (first.status_code, again.status_code, auditor.status_code) == (200, 409, 403)
        assert (
            value("carepath_commands_total", type="start_screening", outcome="applied", code="")
            == applied + 1
        )
        assert (
            value(
                "carepath_commands_total",
                type="start_screening",
                outcome="refused",
                code="WrongStage",
            )
            == refused + 1
        )
        assert (
            value(
                "carepath_commands_total",
                type="start_screening",
                outcome="refused",
                code="CommandNotAllowed",
            )
            == denied + 1
        )
        assert scraped.status_code == 200
        assert "carepath_command_duration_seconds_bucket" in scraped.text


class TestWorkerCounters:
    async def test_given_appended_events_when_appended_again_then_escalations_and_no_shows_count_once(
        self, db_pool: Pool
    ) -> None:
        acts = EventStoreActivities(EventStore(db_pool, chain_key=CHAIN_KEY))
        events = episode_events("ep-metrics", sessions=10)
        level_2 = value("carepath_escalations_opened_total", level="2")
        no_shows = value("carepath_no_shows_recorded_total")
        appends = value("carepath_append_duration_seconds_count")
        inp = AppendEventsInput(episode_id="ep-metrics", events=tuple(events))

        await ActivityEnvironment().run(acts.append_events, inp)
        await ActivityEnvironment().run(acts.append_events, inp)

        assert value("carepath_escalations_opened_total", level="2") == level_2 + 2
        assert value("carepath_no_shows_recorded_total") == no_shows + 2
        assert value("carepath_append_duration_seconds_count") == appends + 2

    async def test_given_open_tasks_in_the_read_model_when_scraped_then_the_gauge_counts_them_by_level(
        self, db_pool: Pool
    ) -> None:
        # Up to seq 38 the sample stream leaves a level-4 task open (and overdue after 42).
        await EventStore(db_pool, chain_key=CHAIN_KEY).append(
            "ep-tasks", episode_events("ep-tasks", sessions=10)[:38]
        )
        lag_count = value("carepath_projection_lag_seconds_count")
        await Projector(db_pool).catch_up()
        expected = {
            (str(row["level"]), "true" if row["overdue"] else "false"): row["n"]
            for row in await db_pool.fetch(
                "SELECT level, overdue, count(*) AS n FROM open_tasks GROUP BY 1, 2"
            )
        }

        assert await refresh_open_tasks(db_pool)

        assert expected
        for (level, overdue), count in expected.items():
            assert value("carepath_open_tasks", level=level, overdue=overdue) == count
        assert value("carepath_projection_lag_seconds_count") == lag_count + 38
