"""/docs and /redoc load Swagger UI and ReDoc from CarePath itself, not from a CDN.

tests/browser/test_api_docs.py renders both pages in Chromium with no host but the
machine resolvable; these check what the server answers.
"""

from __future__ import annotations

import re

import httpx
import pytest

from store.db import Pool

pytestmark = pytest.mark.integration

LOADED = re.compile(r'<(?:script|link)[^>]*?(?:src|href)="([^"]+)"')


def policy(answer: httpx.Response) -> dict[str, str]:
    return dict(
        part.split(" ", 1) for part in answer.headers["content-security-policy"].split("; ")
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_given_the_api_when_a_description_page_is_served_then_it_loads_only_our_files(
    api: httpx.AsyncClient, page: str
) -> None:
    answer = await api.get(page, headers={"Authorization": ""})

    assert answer.status_code == 200
    loaded = LOADED.findall(answer.text)
    assert loaded
    assert all(url.startswith("/docs/assets/") for url in loaded), loaded
    for url in loaded:
        asset = await api.get(url, headers={"Authorization": ""})
        assert asset.status_code == 200, url
        assert asset.content
    rules = policy(answer)
    # Our own files, and the page's inline script (Swagger UI's start) by its hash.
    assert all(
        source == "'self'" or source.startswith("'sha256-")
        for source in rules["script-src"].split()
    )
    assert "http" not in answer.headers["content-security-policy"]
    assert "'unsafe-inline'" in rules["style-src"].split()


async def test_given_the_docs_assets_when_fetched_then_they_are_cacheable_and_not_access_logged(
    api: httpx.AsyncClient, db_pool: Pool
) -> None:
    answer = await api.get("/docs/assets/swagger-ui-bundle.js", headers={"Authorization": ""})

    assert answer.status_code == 200
    assert "javascript" in answer.headers["content-type"]
    assert answer.headers.get("cache-control") != "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"
    logged = await db_pool.fetchval(
        "SELECT count(*) FROM access_log WHERE path LIKE '/docs/assets/%'"
    )
    assert logged == 0
