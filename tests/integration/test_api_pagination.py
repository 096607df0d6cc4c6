"""Cursor pagination of the API's lists against a real Temporal dev server and PostgreSQL:
`?limit=` and `?cursor=`, a `next` link (null on the last page) and a `Link` header."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest
from api_driver import Driver
from api_users import bearer

pytestmark = pytest.mark.integration

# A program the other tests refer to rarely, so that a page of it holds these tests' episodes.
PROGRAM = "adolescent-iop"


async def _refer(api: httpx.AsyncClient, count: int) -> set[str]:
    ids = set()
    for _ in range(count):
        referral = {
            "client_ref": f"MRN-{uuid.uuid4().hex[:6]}",
            "program_id": PROGRAM,
            "referral_source": "self",
        }
        response = await api.post("/episodes", json=referral)
        assert response.status_code == 201, response.text
        ids.add(response.json()["episode_id"])
    return ids


async def _listed(api: httpx.AsyncClient, expected: set[str]) -> set[str]:
    """Every running episode of PROGRAM in one page, once visibility shows `expected`."""
    found: set[str] = set()
    for _ in range(100):
        body = (await api.get("/episodes", params={"program_id": PROGRAM, "limit": 1000})).json()
        found = {e["episode_id"] for e in body["episodes"]}
        if expected <= found:
            return found
        await asyncio.sleep(0.1)
    return found


async def _pages(
    api: httpx.AsyncClient, path: str, params: dict[str, Any], key: str, **kwargs: Any
) -> list[list[dict[str, Any]]]:
    """Each page of a list, following the `next` links from the first; checks that each
    page's `Link` header names the same next page as its body."""
    pages = []
    response = await api.get(path, params=params, **kwargs)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body[key])
        following = body["next"]
        if following is None:
            assert "link" not in response.headers
            return pages
        assert response.headers["link"] == f'<{following}>; rel="next"'
        response = await api.get(following, **kwargs)


async def test_given_more_episodes_than_a_page_when_paging_through_them_then_each_comes_once(
    api: httpx.AsyncClient,
) -> None:
    mine = await _refer(api, 5)
    everything = await _listed(api, mine)

    pages = await _pages(api, "/episodes", {"program_id": PROGRAM, "limit": 2}, "episodes")

    listed = [e["episode_id"] for page in pages for e in page]
    assert len(listed) == len(set(listed))
    assert set(listed) == everything
    assert mine <= set(listed)
    assert len(pages) >= 3
    assert all(len(page) <= 2 for page in pages)


async def test_given_a_page_when_the_list_goes_on_then_next_carries_an_opaque_cursor(
    api: httpx.AsyncClient,
) -> None:
    await _listed(api, await _refer(api, 3))

    response = await api.get("/episodes", params={"program_id": PROGRAM, "limit": 1})

    following = response.json()["next"]
    assert following.startswith("/episodes?")
    params = httpx.URL(following).params
    assert params["program_id"] == PROGRAM
    assert params["limit"] == "1"
    assert response.headers["link"] == f'<{following}>; rel="next"'


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        base64.urlsafe_b64encode(b'{"k":"tasks","f":"x","p":[]}').decode(),
        base64.urlsafe_b64encode(json.dumps({"k": "episodes", "p": "AAAA"}).encode()).decode(),
    ],
    ids=["garbage", "another-list", "other-filters"],
)
async def test_given_a_bad_cursor_when_listing_episodes_then_422_invalid_cursor(
    api: httpx.AsyncClient, cursor: str
) -> None:
    response = await api.get("/episodes", params={"cursor": cursor})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "InvalidCursor"


async def test_given_another_querys_cursor_when_listing_episodes_then_422_invalid_cursor(
    api: httpx.AsyncClient,
) -> None:
    await _listed(api, await _refer(api, 2))
    first = await api.get("/episodes", params={"program_id": PROGRAM, "limit": 1})
    cursor = httpx.URL(first.json()["next"]).params["cursor"]

    response = await api.get("/episodes", params={"stage": "referred", "cursor": cursor})

    assert response.status_code == 422
    assert response.json()["title"] == "InvalidCursor"


@pytest.mark.parametrize(
    "path",
    ["/caseload", "/tasks", "/deadlines", "/worklists/below-intensity", "/audit/access-log"],
)
async def test_given_a_forged_position_when_reading_a_list_then_422_not_a_database_error(
    api: httpx.AsyncClient, path: str
) -> None:
    # A cursor of the right list and filters (none: the digest of no parameters) whose
    # position PostgreSQL could not cast: refused before any query is sent.
    kind = path.rsplit("/", 1)[-1]
    forged = {"k": kind, "f": hashlib.sha256(b"[]").hexdigest()[:16], "p": ["x", "y", "z"]}
    cursor = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()

    response = await api.get(path, params={"cursor": cursor}, headers=bearer("auditor"))

    assert response.status_code == 422, response.text
    assert response.json()["title"] == "InvalidCursor"


@pytest.mark.parametrize(("path", "key"), [("/deadlines", "deadlines"), ("/caseload", "entries")])
async def test_given_more_worklist_rows_than_a_page_when_paging_then_each_comes_once_in_order(
    api: httpx.AsyncClient, path: str, key: str
) -> None:
    # The database is the test's own: these two episodes are every row there is.
    d = Driver(api)
    for _ in range(2):
        await d.at("in_program")
    whole = (await api.get(path, params={"limit": 2000})).json()[key]

    pages = await _pages(api, path, {"limit": 1}, key)

    assert len(whole) >= 2
    assert [row for page in pages for row in page] == whole
    assert all(len(page) <= 1 for page in pages)


async def test_given_more_access_records_than_a_page_when_paging_then_each_comes_once(
    api: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        await api.get("/episodes", params={"program_id": PROGRAM})
    auditor = bearer("auditor")
    whole = await api.get(
        "/audit/access-log", params={"user_id": "dan.director", "limit": 10_000}, headers=auditor
    )
    everything = [e["id"] for e in whole.json()["entries"]]

    pages = await _pages(
        api,
        "/audit/access-log",
        {"user_id": "dan.director", "limit": 3},
        "entries",
        headers=auditor,
    )

    listed = [e["id"] for page in pages for e in page]
    assert len(everything) >= 5
    assert listed[: len(everything)] == everything
    assert len(listed) == len(set(listed))
