"""The report opened in a real headless Chromium: it renders, both charts draw, the grid
shows each status, hostile ledger text stays text, nothing is fetched, no console errors.

The browser is the OS package (``apt-get install chromium``; ``make test`` installs it where
it can), driven by playwright with ``executable_path`` (playwright's own browser download is
not used). With no browser, or no playwright, the test is skipped saying which is missing.
A screenshot is left in the test's tmp dir, never in the repository.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.report_ledger import PIPELINE, seed_local
from xoelt.report import write_report

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# For each canvas: how many pixels are painted (not transparent, not white).
PAINTED = """() => Array.from(document.querySelectorAll("canvas")).map((c) => {
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) { n++; }
  }
  return n;
})"""


def _browser_path() -> str:
    explicit = os.environ.get("XOELT_CHROMIUM")
    found = explicit or next((p for b in BROWSERS if (p := shutil.which(b))), None)
    if not found:
        pytest.skip(
            f"no Chromium found (looked for {', '.join(BROWSERS)} on PATH and $XOELT_CHROMIUM): "
            "install it with `apt-get install chromium` to run the report's browser test"
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = _browser_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "the playwright package is not installed (it is in the dev group: make install)"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser: Any, page_file: Path, shot: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_file.as_uri())
    page.wait_for_selector("body[data-rendered=true]", timeout=20_000)
    page.screenshot(path=str(shot), full_page=True)
    return page, errors, requests


@pytest.mark.parametrize("with_tests", [True, False], ids=["test-results", "no-test-table"])
def test_the_report_renders_in_chromium(
    browser: Any, tmp_path: Path, xoelt_home: Path, in_repo: Path, with_tests: bool
) -> None:
    seed_local(with_tests=with_tests)
    out = tmp_path / "report.html"
    now = datetime(2026, 11, 5, 12, tzinfo=UTC)
    write_report(PIPELINE, days=7, out=out, until=date(2026, 11, 5), now=now)
    shot = tmp_path / "report.png"
    page, errors, requests = _open(browser, out, shot)
    try:
        assert errors == [], f"console errors: {errors}"
        assert requests == [out.as_uri()], f"the page fetched more than itself: {requests}"
        assert page.evaluate("Object.keys(Chart.instances).length") == 2
        painted = page.evaluate(PAINTED)
        assert len(painted) == 2 and all(n > 2000 for n in painted), painted
        cells = page.evaluate(
            """() => Array.from(document.querySelectorAll("#grid td.cell"))
                 .map((td) => td.dataset.status)"""
        )
        assert len(cells) == 4 * 7
        assert cells.count("interrupted") == 1 and cells.count("success") == 9
        assert cells.count("not_run") == 18
        # the hostile failure message is shown as text and did not run
        assert page.evaluate("window.pwned") is None
        failures = page.inner_text("#failures")
        assert "window.pwned = 1" in failures and "<b>bold</b>" in failures
        tests = page.inner_text("#tests")
        if with_tests:
            assert "1 passed, 1 warned, 1 failed" in tests and "unique_agent_id" in tests
        else:
            assert tests.strip() == "No data-test results recorded."
        assert shot.stat().st_size > 10_000
    finally:
        page.close()
