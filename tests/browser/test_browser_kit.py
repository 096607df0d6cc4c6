"""The page helpers every browser test leans on, checked on a small form of their own.

The form is a `data:` page, so these need the browser but no served API.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from browser_kit import Page, reset
from selenium.webdriver.remote.webdriver import WebDriver

FORM = """<!DOCTYPE html><html lang="en"><head><title>Kit</title></head><body>
<form onsubmit="document.getElementById('out').textContent =
  [document.getElementById('ref').value, document.querySelector('[name=status]').value,
   document.getElementById('urgent').checked, document.getElementById('day').value].join('|');
  return false;">
  <label for="ref">Client reference</label> <input id="ref" name="ref">
  <label>Attendance
    <select name="status"><option>attended</option><option>no-show</option></select>
  </label>
  <label><input type="checkbox" id="urgent"> It's "urgent"</label>
  <label for="day">Day</label> <input type="date" id="day">
  <input type="hidden" name="csrf" value="x">
  <button type="submit">Record attendance</button>
</form>
<p id="out"></p>
<table><tr><td>MRN-1</td><td><label>Note <input name="n1"></label></td></tr>
<tr><td>MRN-2</td><td><input name="n2"></td></tr></table>
</body></html>"""


@pytest.fixture
def kit_page(browser: WebDriver, tmp_path: Path) -> Page:
    reset(browser, "http://127.0.0.1")
    page = Page(browser, "http://127.0.0.1", tmp_path)
    browser.get("data:text/html;charset=utf-8," + quote(FORM))
    return page


def test_given_a_form_when_fields_are_filled_by_label_then_the_submit_sees_the_values(
    kit_page: Page,
) -> None:
    kit_page.fill("Client reference", "MRN-7")
    kit_page.fill("Attendance", "no-show")
    kit_page.fill('It\'s "urgent"', True)
    kit_page.fill("Day", "2026-03-02")
    kit_page.press("Record attendance")

    kit_page.wait_for_text("MRN-7|no-show|true|2026-03-02")


def test_given_a_field_without_a_label_when_checked_then_it_is_named(kit_page: Page) -> None:
    assert kit_page.unlabelled_fields() == ['<input name="n2" id="">']
    assert kit_page.unlabelled_fields(within=kit_page.row("MRN-1")) == []
    assert kit_page.field("Note", within=kit_page.row("MRN-1")).get_attribute("name") == "n1"


def test_given_no_such_label_when_looked_up_then_the_failure_lists_the_labels(
    kit_page: Page,
) -> None:
    with pytest.raises(AssertionError, match="Client reference"):
        kit_page.field("Discharge summary")


def test_given_a_page_when_a_screenshot_is_taken_then_a_png_of_the_window_width_is_saved(
    kit_page: Page,
) -> None:
    path = kit_page.screenshot("kit")

    png = path.read_bytes()
    assert path.name == "kit.png"
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(png[16:20], "big") == 1280
