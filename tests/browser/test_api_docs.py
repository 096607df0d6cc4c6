"""The API's description pages work offline: every file they load is CarePath's own.

The browser resolves no host but the machine itself (browser_kit.OFFLINE_RESOLVER_RULES),
which is what a clinic network without internet looks like to the page.
"""

from __future__ import annotations

from browser_kit import Page
from selenium.webdriver.common.by import By

REFER = "Refer a client to a program, opening an episode of care"
LIST = "Episodes filtered by stage, program, primary clinician and escalation level"
RECORD_ATTENDANCE = "Record attended, partial (with hours), excused or no-show for a session."

# What a page loads (as opposed to links a reader may follow).
_LOADED_JS = """
return Array.from(document.querySelectorAll(
  'script[src], link[href]:not([rel~="alternate"]), img[src], iframe[src], source[src]'
)).map(e => e.src || e.href);
"""


def foreign(page: Page, urls: list[str]) -> list[str]:
    """The URLs among `urls` that are neither CarePath's nor inline data."""
    own = page.base_url + "/"
    return [u for u in urls if not u.startswith((own, "data:", "blob:", "about:"))]


def test_given_no_internet_when_staff_open_docs_then_swagger_ui_lists_the_operations(
    page: Page,
) -> None:
    page.open("/docs")

    page.wait_until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-description"),
        what="Swagger UI's operations",
    )
    summaries = page.driver.execute_script(
        "return Array.from(document.querySelectorAll('.opblock-summary-description'))"
        ".map(e => e.textContent.trim())"
    )
    assert REFER in summaries
    assert RECORD_ATTENDANCE in summaries
    # The episodes come first, refer then list: what a newcomer does first.
    tags = page.driver.execute_script(
        "return Array.from(document.querySelectorAll('.opblock-tag'))"
        ".map(e => e.getAttribute('data-tag'))"
    )
    assert tags[:3] == ["episodes", "commands", "worklists"]
    assert summaries[:2] == [REFER, LIST]
    assert page.driver.title == "CarePath - Swagger UI"
    requested = page.requested_urls()
    assert page.base_url + "/docs/assets/swagger-ui-bundle.js" in requested
    assert page.base_url + "/openapi.json" in requested
    assert foreign(page, requested) == []
    assert foreign(page, page.driver.execute_script(_LOADED_JS)) == []
    assert page.console_errors() == []


def test_given_no_internet_when_staff_open_redoc_then_it_lists_the_operations(
    page: Page,
) -> None:
    page.open("/redoc")

    page.wait_for_text(REFER)
    requests = page.requests()
    assert page.base_url + "/docs/assets/redoc.standalone.js" in [r.url for r in requests]
    # ReDoc's side menu names its vendor's logo on the vendor's host: the page's policy
    # refuses it, so it is never sent (and ReDoc leaves the image out).
    sent = [r.url for r in requests if r.blocked is None]
    assert foreign(page, sent) == []
    refused = [r.url for r in requests if r.blocked == "csp"]
    assert all("logo" in url for url in refused), refused
    assert [e for e in page.console_errors() if not any(u in e for u in refused)] == []
