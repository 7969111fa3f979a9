"""The real app in headless Chromium: example -> Answer -> chart and heatmap -> Errors tab -> a row.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package; no
browser is downloaded. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.app_support import launch
from vqa_demo.ui import build_demo
from vqa_demo.ui.holder import PredictorHolder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("VQA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def page(app_assets):
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    holder = PredictorHolder(loader=app_assets.load_predictor, checkpoints=app_assets.config.checkpoints)
    demo = build_demo(app_assets.config, holder=holder)
    url = launch(demo, app_assets.config)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(url)
                page.wait_for_selector("#answer-button")
                yield page
            finally:
                browser.close()
    finally:
        demo.close()


def wait_image(page, selector: str) -> None:
    """Wait until the image under ``selector`` has really loaded (not just its <img> tag)."""
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }",
        arg=f"{selector} img",
    )


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_ask_explain_and_browse_errors(page):
    page.click("#add-option")
    page.wait_for_selector("#option-E", state="visible")
    page.get_by_text("unavailable: multi_class-attentive was trained for exactly 4 options").wait_for()
    shot(page, "0-five-options")

    page.locator("#examples-gallery button.thumbnail-item").nth(1).click()
    page.wait_for_function("document.querySelector('#question textarea').value.length > 0")
    assert page.locator("#option-A").locator("textarea, input").first.input_value() != ""
    shot(page, "1-example-picked")

    page.click("#answer-button")
    page.wait_for_selector("#scores-chart .js-plotly-plot")
    wait_image(page, "#attention-heatmap")
    page.wait_for_function(
        "document.querySelector('#ask-status').innerText.includes('Answered with 5 variants')"
    )
    bars = page.locator("#scores-chart .js-plotly-plot g.trace.bars")
    assert bars.count() == 5
    shot(page, "2-answered")

    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-accuracy .js-plotly-plot")
    shot(page, "3-compare")

    page.get_by_role("tab", name="Errors").click()
    page.locator("#errors-table [data-testid='cell-0-2']").click()
    page.wait_for_function("document.querySelector('#errors-details').innerText.includes('Question:')")
    wait_image(page, "#errors-image")
    wait_image(page, "#errors-heatmap")
    assert "gold" in page.locator("#errors-details").inner_text()
    shot(page, "4-errors-row")
