"""Finding episodes through their search attributes on a real Temporal dev server."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

pytestmark = pytest.mark.integration


async def _eventually(
    api: httpx.AsyncClient, params: dict[str, str], among: set[str], expected: set[str]
) -> set[str]:
    """Which of `among` the listing returns, polled until it equals `expected` or time is up.

    Visibility is eventually consistent, so a single look could miss a fresh upsert.
    """
    found: set[str] = set()
    for _ in range(100):
        response = await api.get("/episodes", params=params)
        assert response.status_code == 200, response.text
        found = {e["episode_id"] for e in response.json()["episodes"]} & among
        if found == expected:
            return found
        await asyncio.sleep(0.1)
    return found


async def test_list_filters_by_program_and_stage(api: httpx.AsyncClient) -> None:
    client_ref = f"MRN-{uuid.uuid4().hex[:6]}"
    adult = (
        await api.post(
            "/episodes",
            json={"client_ref": client_ref, "program_id": "adult-iop", "referral_source": "self"},
        )
    ).json()["episode_id"]
    teen = (
        await api.post(
            "/episodes",
            json={
                "client_ref": client_ref,
                "program_id": "adolescent-iop",
                "referral_source": "self",
            },
        )
    ).json()["episode_id"]

    both = {adult, teen}
    assert await _eventually(api, {"stage": "referred"}, both, both) == both
    assert await _eventually(api, {"program_id": "adolescent-iop"}, both, {teen}) == {teen}
    adult_referred = {"program_id": "adult-iop", "stage": "referred"}
    assert await _eventually(api, adult_referred, both, {adult}) == {adult}
    # Both are indexed by now (checked above), so one look suffices for an empty match.
    discharged = (await api.get("/episodes", params={"stage": "discharged"})).json()["episodes"]
    assert both.isdisjoint({e["episode_id"] for e in discharged})


async def test_list_rejects_a_filter_value_that_could_alter_the_query(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/episodes", params={"program_id": "x' OR '1'='1"})

    assert response.status_code == 422
    assert "program_id" in response.json()["detail"]


async def test_deadlines_and_timeline_queries(api: httpx.AsyncClient) -> None:
    episode_id = (
        await api.post(
            "/episodes",
            json={"client_ref": "MRN-5", "program_id": "adult-iop", "referral_source": "court"},
        )
    ).json()["episode_id"]

    timeline = (await api.get(f"/episodes/{episode_id}/timeline")).json()
    deadlines = await api.get(f"/episodes/{episode_id}/deadlines")

    assert [e["type"] for e in timeline["entries"]] == ["client_referred"]
    assert deadlines.status_code == 200
    assert deadlines.json()["episode_id"] == episode_id
