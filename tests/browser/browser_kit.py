"""Headless Chromium for the browser tests, and what a test does with a page.

The browser is Debian's `chromium` driven through Debian's `chromium-driver` by Selenium:
nothing is downloaded at run time. `start_chromium` opens it headless, without the sandbox
(the tests run as root), at a fixed window size, with host names other than localhost
unresolvable (a page that reaches for another host fails visibly instead of hanging) and
with the network log on, so a test can list every request a page made.

`Page` is one browser bound to one served API: open a path, find form fields by the text
of their label, press buttons, wait for text, check that every field has a label, and
save a screenshot (docs/console.md shows the ones taken with CAREPATH_SCREENSHOTS set).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

INSTALL_HINT = (
    "install Debian's Chromium as root: `apt-get install -y chromium chromium-driver` "
    "(`make test` does this itself when it runs as root)"
)
WINDOW_SIZE = (1280, 900)
# How long a lookup waits for an element to appear; kept short so a missing one fails fast.
IMPLICIT_WAIT_SECONDS = 1.0
# How long `Page.wait_for_text` and friends wait by default.
WAIT_SECONDS = 10.0
# Everything but the machine itself is unresolvable: no page may depend on another host.
OFFLINE_RESOLVER_RULES = "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables if both are installed, else None."""
    browser = next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
        None,
    )
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver"
        if os.access("/usr/lib/chromium/chromedriver", os.X_OK)
        else None
    )
    return (browser, driver) if browser and driver else None


def start_chromium(browser: str, driver: str) -> WebDriver:
    """A headless Chromium session, ready for pages."""
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--lang=en-US",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        f"--host-resolver-rules={OFFLINE_RESOLVER_RULES}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    session = webdriver.Chrome(
        options=options,
        service=Service(executable_path=driver, log_output=subprocess.DEVNULL),
    )
    session.implicitly_wait(IMPLICIT_WAIT_SECONDS)
    session.set_page_load_timeout(30)
    session.set_script_timeout(10)
    return session


def reset(session: WebDriver, origin: str) -> None:
    """Forget every cookie and stored item, and drop the logs: a new visitor.

    Cookies belong to a host, not a port, so without this a session cookie of one test's
    server would be sent to the next test's server on another port of 127.0.0.1.
    """
    session.get("about:blank")
    session.execute_cdp_cmd("Network.clearBrowserCookies", {})
    session.execute_cdp_cmd(
        "Storage.clearDataForOrigin", {"origin": origin.rstrip("/"), "storageTypes": "all"}
    )
    for log in ("performance", "browser"):
        session.get_log(log)


def xpath_literal(text: str) -> str:
    """`text` as an XPath 1.0 string literal, whatever quotes it holds."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in text.split("'")) + ")"


# Form controls a person fills in; hidden inputs and buttons carry no label.
_FIELDS_JS = """
const scope = arguments[0] || document;
return Array.from(scope.querySelectorAll('input, select, textarea')).filter(el =>
  !['hidden', 'submit', 'button', 'reset', 'image'].includes((el.type || '').toLowerCase()));
"""

_UNLABELLED_JS = (
    _FIELDS_JS.replace("return Array", "const fields = Array")
    + """
const named = el => (el.labels && Array.from(el.labels).some(l => l.textContent.trim()))
  || (el.getAttribute('aria-label') || '').trim()
  || (el.getAttribute('aria-labelledby') || '').split(/\\s+/).some(id =>
       id && document.getElementById(id) && document.getElementById(id).textContent.trim());
return fields.filter(el => !named(el)).map(el =>
  `<${el.tagName.toLowerCase()} name="${el.name || ''}" id="${el.id || ''}">`);
"""
)


@dataclass(frozen=True)
class Request:
    """A request a page made: its URL, and why the browser did not send it, if it did not
    ("csp": the page's Content-Security-Policy refused it)."""

    url: str
    blocked: str | None = None


class Page:
    """A browser session bound to one served API at `base_url`."""

    def __init__(self, driver: WebDriver, base_url: str, screenshots: Path) -> None:
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self.screenshots = screenshots

    # --- navigation ----------------------------------------------------------------

    def open(self, path: str = "/") -> Page:
        """Load `path` of the served API and wait for the document to be complete."""
        self.driver.get(self.base_url + path)
        return self

    @property
    def path(self) -> str:
        """The current URL's path and query."""
        parts = urlsplit(self.driver.current_url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    @property
    def text(self) -> str:
        """The rendered text of the whole page (`innerText`: fast even on long pages,
        where WebDriver's own `.text` of the body takes seconds)."""
        text: str = self.driver.execute_script(
            "return document.body ? document.body.innerText : ''"
        )
        return text

    # --- finding things --------------------------------------------------------------

    def field(self, label: str, within: WebElement | None = None) -> WebElement:
        """The form control whose label reads `label` (whitespace-normalised, exact),
        else whose aria-label does; optionally inside `within` (a table row, a form)."""
        scope: WebDriver | WebElement = within if within is not None else self.driver
        wanted = xpath_literal(" ".join(label.split()))
        for xpath in (
            f".//label[normalize-space(.)={wanted}]",
            f".//label[normalize-space(text())={wanted}]",
        ):
            for element in self._now(lambda s=scope, x=xpath: s.find_elements(By.XPATH, x)):
                control = self._control_of(element)
                if control is not None:
                    return control
        named = self._now(
            lambda: scope.find_elements(
                By.XPATH,
                f".//*[self::input or self::select or self::textarea]"
                f"[normalize-space(@aria-label)={wanted}]",
            )
        )
        if named:
            return named[0]
        labels = [e.text for e in scope.find_elements(By.TAG_NAME, "label") if e.text.strip()]
        raise AssertionError(f"no field labelled {label!r} on {self.path}; labels: {labels}")

    def _control_of(self, label: WebElement) -> WebElement | None:
        target = label.get_attribute("for")
        if target:
            found = self._now(
                lambda: self.driver.find_elements(By.XPATH, f"//*[@id={xpath_literal(target)}]")
            )
            return found[0] if found else None
        inside = label.find_elements(
            By.XPATH, ".//*[self::input or self::select or self::textarea]"
        )
        return inside[0] if inside else None

    def button(self, text: str, within: WebElement | None = None) -> WebElement:
        """The button (or submit input) that reads `text`."""
        scope: WebDriver | WebElement = within if within is not None else self.driver
        wanted = xpath_literal(" ".join(text.split()))
        return scope.find_element(
            By.XPATH,
            f".//button[normalize-space(.)={wanted}]"
            f" | .//input[(@type='submit' or @type='button') and normalize-space(@value)={wanted}]",
        )

    def link(self, text: str, within: WebElement | None = None) -> WebElement:
        """The link whose text is `text`."""
        scope: WebDriver | WebElement = within if within is not None else self.driver
        wanted = xpath_literal(" ".join(text.split()))
        return scope.find_element(By.XPATH, f".//a[normalize-space(.)={wanted}]")

    def row(self, text: str) -> WebElement:
        """The first table row that contains `text` (e.g. a client reference)."""
        return self.driver.find_element(
            By.XPATH, f"//tr[contains(normalize-space(.), {xpath_literal(text)})]"
        )

    def has(self, css: str) -> bool:
        """Whether an element matching `css` is on the page now (no waiting)."""
        return bool(self._now(lambda: self.driver.find_elements(By.CSS_SELECTOR, css)))

    def _now(self, find: Callable[[], list[WebElement]]) -> list[WebElement]:
        """`find()` without the implicit wait: for lookups that may rightly find nothing."""
        self.driver.implicitly_wait(0)
        try:
            return find()
        finally:
            self.driver.implicitly_wait(IMPLICIT_WAIT_SECONDS)

    # --- acting -----------------------------------------------------------------------

    def fill(self, label: str, value: str | bool, within: WebElement | None = None) -> Page:
        """Set the field labelled `label`: the option shown as `value` of a select, a
        checkbox or radio button ticked for True, else the text typed in."""
        control = self.field(label, within)
        kind = (control.get_attribute("type") or "").lower()
        if control.tag_name == "select":
            Select(control).select_by_visible_text(str(value))
        elif kind in {"checkbox", "radio"}:
            if control.is_selected() != bool(value):
                control.click()
        elif kind in {"date", "datetime-local", "time"}:
            # Typing into these depends on the locale's field order; set the value instead.
            self.driver.execute_script(
                "arguments[0].value = arguments[1];"
                "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
                "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
                control,
                str(value),
            )
        else:
            control.clear()
            control.send_keys(str(value))
        return self

    def press(self, text: str, within: WebElement | None = None) -> Page:
        """Click the button that reads `text` (a form is submitted and its answer loaded)."""
        self.button(text, within).click()
        return self

    # --- waiting ----------------------------------------------------------------------

    def wait_until(
        self, condition: Callable[[WebDriver], Any], timeout: float = WAIT_SECONDS, what: str = ""
    ) -> Any:
        """Poll `condition(driver)` until it is truthy; fail with `what` after `timeout`."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition)
        except TimeoutException:
            raise AssertionError(
                f"waited {timeout:g} s for {what or condition} on {self.path}"
            ) from None

    def wait_for_text(self, text: str, timeout: float = WAIT_SECONDS) -> Page:
        """Wait until `text` is visible on the page (for example after live refresh)."""

        def shown(driver: WebDriver) -> bool:
            return bool(
                driver.execute_script(
                    "return !!document.body && document.body.innerText.includes(arguments[0])",
                    text,
                )
            )

        self.wait_until(shown, timeout, f"text {text!r}")
        return self

    # --- checks -----------------------------------------------------------------------

    def unlabelled_fields(self, within: WebElement | None = None) -> list[str]:
        """The form fields on the page that no label (or aria-label) names: [] is good."""
        result: list[str] = self.driver.execute_script(_UNLABELLED_JS, within)
        return result

    def requests(self) -> list[Request]:
        """Every request the browser made or refused since the last call (or the test's
        start), from Chromium's network log; reading it empties it."""
        made: dict[str, Request] = {}
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                made[params["requestId"]] = Request(params["request"]["url"])
            elif message.get("method") == "Network.loadingFailed" and params.get("blockedReason"):
                known = made.get(params["requestId"])
                if known is not None:
                    made[params["requestId"]] = Request(known.url, params["blockedReason"])
        return list(made.values())

    def requested_urls(self) -> list[str]:
        """The URLs of `requests()`, those the browser refused to send included."""
        return [r.url for r in self.requests()]

    def console_errors(self) -> list[str]:
        """Errors the page logged since the last call, Content-Security-Policy refusals
        among them; reading them empties the log."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        """Save the page as `<name>.png` in the screenshot folder; return its path.

        The folder is CAREPATH_SCREENSHOTS when set (`make screenshots` sets docs/console),
        else the test's temporary directory. A full page is the whole document's height,
        up to 4,000 pixels.
        """
        path = self.screenshots / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not full_page:
            self.driver.save_screenshot(str(path))
            return path
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot: dict[str, Any] = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": max(WINDOW_SIZE[0], int(size["width"])),
                    "height": min(4000, max(1, int(size["height"]))),
                    "scale": 1,
                },
            },
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
