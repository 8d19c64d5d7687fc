"""A real browser (headless Debian Chromium, driven by Playwright) uses the maths page like a person."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_example import SEED_JSON, RunningExample

# Starts a headless Chromium.
pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not os.path.exists(CHROMIUM):
    # CI installs Chromium (.ci/run), so there this test always runs; elsewhere it says what is missing.
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run should have installed Debian's chromium")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


def test_the_form_squares_values_in_a_real_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    server = RunningExample()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),  # a fresh --user-data-dir
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": 800, "height": 720},
            )
            try:
                page = browser.new_page()
                page.goto(server.url + "/")
                page.fill("#values", ",".join(SEED_JSON["values"]))
                page.click("button[type=submit]")
                page.wait_for_selector("#squares")
                rows = page.eval_on_selector_all(
                    "#squares tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
                )
                assert rows == [
                    list(pair) for pair in zip(SEED_JSON["values"], SEED_JSON["results"], strict=True)
                ]
                assert page.url.endswith("/?values=1%2C2%2C3%2C4%2C5%2C6%2C7%2C8%2C9%2C10")
                assert "1 session created" in page.inner_text(".stats")
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "example-page.png"), full_page=True)
                page.fill("#values", "1,two")
                page.click("button[type=submit]")
                assert page.inner_text(".error") == "'two' is not a number"
            finally:
                browser.close()
    finally:
        code, err = server.interrupt()
    assert code == 0, err
    assert (ARTIFACTS / "example-page.png").stat().st_size > 10_000


def test_the_page_shows_the_figures_of_a_thousand_squares(tmp_path: Path) -> None:
    """1,000 squares through a flaky stand-in: the page's figures, read as a person sees them."""
    from playwright.sync_api import sync_playwright

    server = RunningExample("--flaky", "0.2")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": 800, "height": 720},
            )
            try:
                page = browser.new_page()
                page.set_default_timeout(0)  # no time limit: a loaded machine is slow, not wrong
                page.goto(server.url + "/")
                page.fill("#values", ",".join(str(i) for i in range(1000)))
                page.click("button[type=submit]")
                page.wait_for_selector("#squares")
                squares = page.eval_on_selector_all(
                    "#squares tbody tr", "rows => rows.map(r => r.cells[1].textContent)"
                )
                assert squares == [str(i * i) for i in range(1000)]

                def figure(name: str) -> str:
                    return page.inner_text(f'#upstream-1 [data-figure="{name}"]')

                assert figure("sessions") == "1 open, 1 idle (1 created in all)"
                assert figure("requests") == "1000"
                opened, reused = int(figure("connections_opened")), int(figure("connections_reused"))
                attempts = int(figure("attempts"))
                assert 1 <= opened <= 8 and opened + reused == attempts
                assert 0 < float(figure("latency_p50_ms")) <= float(figure("latency_p99_ms"))
                retries = figure("retries")
                assert "after 429" in retries and "after 503" in retries and "gave up" not in retries
                assert attempts > 1000
                # rate_waits depends on the machine's speed (8 at once may stay under 500 a second).
                assert int(figure("rate_waits").split()[0]) >= 0
                ARTIFACTS.mkdir(exist_ok=True)
                page.locator("#upstream-1").screenshot(path=str(ARTIFACTS / "example-metrics.png"))
                print(page.inner_text("#upstream-1"))
            finally:
                browser.close()
    finally:
        code, err = server.interrupt()
    assert code == 0, err
    assert (ARTIFACTS / "example-metrics.png").stat().st_size > 5_000
