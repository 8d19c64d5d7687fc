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


def test_the_form_squares_values_in_a_real_browser(tmp_path):
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
