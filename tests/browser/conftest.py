"""Browser tests: pages served by CarePath, driven in headless Chromium.

Fixtures:

- `browser`: one headless Chromium (Selenium WebDriver) for the whole session. Without
  Chromium the tests are skipped with the command that installs it, and under CI=true
  they fail instead: CI must run them.
- `live`: a `LiveApi` (tests/browser/live_stack.py): the API as `carepath up` wires it,
  with a worker and the projector, on a free port of 127.0.0.1, over a fresh migrated
  database of the session's embedded PostgreSQL and the session's Temporal dev server.
  `live.url`, `live.http("clinician")` (an HTTP client with that test user's bearer
  token), `live.run(lambda: live.pool.fetch(...))`.
- `page`: a `Page` (tests/browser/browser_kit.py) on `browser` and `live`, as a new
  visitor (no cookies): `page.open("/")`, `page.fill("Label", "value")`,
  `page.press("Button")`, `page.wait_for_text(...)`, `page.unlabelled_fields()`,
  `page.requested_urls()`, `page.console_errors()`, `page.screenshot("caseload")`.
- `user_token`: the sign-in token of a test user (`user_token("supervisor")`); the users
  are the integration tier's (tests/integration/api_users.py).

Every test in this folder is marked `browser` (`pytest -m browser` runs only them). Tests
are plain functions: Selenium blocks, so the served API runs in a thread of its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser_kit import INSTALL_HINT, Page, find_chromium, reset, start_chromium
from live_stack import LiveApi, LiveStack
from selenium.webdriver.remote.webdriver import WebDriver

from testing.tools import missing_tool

# The API's test users (one per role) are the integration tier's.
_INTEGRATION = str(Path(__file__).resolve().parents[1] / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)
from api_users import token, users_authenticator  # noqa: E402

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """The session's headless Chromium."""
    found = find_chromium()
    if found is None:
        missing_tool(f"Chromium and its WebDriver are not installed: {INSTALL_HINT}")
    session = start_chromium(*found)
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture(scope="session")
def live_stack() -> Iterator[LiveStack]:
    """The thread and Temporal dev server that every `live` API of the session runs on."""
    stack = LiveStack()
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def live(browser: WebDriver, live_stack: LiveStack, fresh_database_url: str) -> Iterator[LiveApi]:
    """The API on a real port over this test's own database (after `browser`, so that a
    missing Chromium skips before any server starts)."""
    with live_stack.serve(fresh_database_url, users_authenticator(), token) as served:
        yield served


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where `page.screenshot` writes: CAREPATH_SCREENSHOTS if set, else a temporary folder."""
    configured = os.environ.get("CAREPATH_SCREENSHOTS")
    return Path(configured).resolve() if configured else tmp_path


@pytest.fixture
def page(browser: WebDriver, live: LiveApi, screenshot_dir: Path) -> Page:
    reset(browser, live.url)
    return Page(browser, live.url, screenshot_dir)


@pytest.fixture
def user_token() -> Callable[[str], str]:
    """The token a test user signs in with: `user_token("clinician")`."""
    return token
