"""`GET /measures` over real episodes: driven through the API and the workflow, the
answer equals `compute_measures` on the streams the store holds; the endpoint is for
oversight and audit, refuses an inverted range and is recorded in the access log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from api_driver import Driver
from api_users import bearer

from domain.measures import compute_measures
from store import EventStore
from store.db import Pool
from store.measure_streams import measure_streams
from testing.keys import CHAIN_KEY

pytestmark = pytest.mark.integration

STAGES = ("referred", "attended", "with_task", "aftercare", "reassessed")


async def stored_streams(db_pool: Pool, episode_ids: list[str]) -> list[list[object]]:
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    return [[stored.event for stored in await store.read_stream(e)] for e in episode_ids]


async def test_given_driven_episodes_when_measures_are_read_then_they_equal_the_pure_function(
    api: httpx.AsyncClient, db_pool: Pool
) -> None:
    driver = Driver(api)
    episode_ids = [await driver.at(stage) for stage in STAGES]
    today = datetime.now(UTC).date()
    start, end = today - timedelta(days=1), today + timedelta(days=1)

    response = await api.get(
        "/measures",
        params={"start": start.isoformat(), "end": end.isoformat(), "program": "adult-iop"},
        headers=bearer("supervisor"),
    )

    assert response.status_code == 200, response.text
    streams = await stored_streams(db_pool, episode_ids)
    expected = compute_measures(streams, start=start, end=end, program_id="adult-iop")  # type: ignore[arg-type]
    assert response.json() == expected.model_dump(mode="json")
    body = response.json()
    # The one only referred counts in nothing yet: its 14 days have not passed.
    assert body["episodes"] == len(STAGES) - 1
    assert body["attendance"]["denominator"] == 2  # one attended, one no-show
    assert body["completion"] == {"value": 1.0, "numerator": 2, "denominator": 2, "n": 2}
    assert body["escalations_per_100_weeks"]["1"]["numerator"] >= 1


async def test_given_a_range_then_the_store_reads_exactly_the_streams_that_may_count(
    api: httpx.AsyncClient, db_pool: Pool
) -> None:
    episode_id = await Driver(api).at("attended")
    today = datetime.now(UTC).date()
    await api.get("/measures", params={"start": str(today), "end": str(today)})

    (stream,) = await measure_streams(db_pool, start=today, end=today)
    later = await measure_streams(
        db_pool, start=today + timedelta(days=5), end=today + timedelta(days=6)
    )
    earlier = await measure_streams(
        db_pool, start=today - timedelta(days=9), end=today - timedelta(days=5)
    )
    other = await measure_streams(db_pool, start=today, end=today, programs=["adolescent-iop"])

    assert [e.seq for e in stream] == list(range(1, len(stream) + 1))
    assert stream[0].episode_id == episode_id
    assert len(later) == 1  # still open: it may count in a later range
    assert (earlier, other) == ([], [])


@pytest.mark.parametrize(
    ("user", "status"), [("clinician", 403), ("intake", 403), ("auditor", 200), ("director", 200)]
)
async def test_given_a_role_then_only_oversight_and_audit_read_the_measures(
    api: httpx.AsyncClient, user: str, status: int
) -> None:
    response = await api.get(
        "/measures", params={"start": "2026-01-01", "end": "2026-03-31"}, headers=bearer(user)
    )

    assert response.status_code == status, response.text


async def test_given_an_inverted_range_then_422_invalid_range(api: httpx.AsyncClient) -> None:
    response = await api.get("/measures", params={"start": "2026-03-31", "end": "2026-01-01"})

    assert response.status_code == 422
    assert response.json()["title"] == "InvalidRange"


@pytest.mark.parametrize(
    ("start", "end"), [("0001-01-01", "0001-01-01"), ("9999-12-01", "9999-12-31")]
)
async def test_given_a_year_out_of_range_then_422_invalid_range_naming_the_day(
    api: httpx.AsyncClient, start: str, end: str
) -> None:
    response = await api.get("/measures", params={"start": start, "end": end})

    assert response.status_code == 422
    assert response.json()["title"] == "InvalidRange"
    assert start in response.json()["detail"]


async def test_given_a_read_of_the_measures_then_the_access_log_records_it(
    api: httpx.AsyncClient,
) -> None:
    await api.get(
        "/measures", params={"start": "2026-01-01", "end": "2026-03-31"}, headers=bearer("auditor")
    )

    log = (
        await api.get(
            "/audit/access-log", params={"user_id": "ada.auditor"}, headers=bearer("auditor")
        )
    ).json()["entries"]
    assert ("/measures", "read", "success") in [
        (e["resource"], e["action"], e["outcome"]) for e in log
    ]
