"""The real app in headless Chromium: example -> Answer -> chart, heatmap, attribution -> Errors tab -> a row;
the option buttons keep the variant ticks; every shipped example is reachable.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package; no
browser is downloaded. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.app_support import launch
from vqa_demo.ui import AppConfig, build_demo
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
def browser():
    """One headless Chromium for the module (playwright's sync API allows one running instance)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_app(browser, demo, config):
    """A page on ``demo`` served on loopback, once the form is there."""
    url = launch(demo, config)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#answer-button")
    return page


@pytest.fixture(scope="module")
def page(app_assets, browser):
    holder = PredictorHolder(loader=app_assets.load_predictor, checkpoints=app_assets.config.checkpoints)
    demo = build_demo(app_assets.config, holder=holder)
    try:
        page = open_app(browser, demo, app_assets.config)
        yield page
        page.close()
    finally:
        demo.close()


def wait_image(page, selector: str) -> None:
    """Wait until the image under ``selector`` has really loaded (not just its <img> tag).

    Gradio's images load lazily: one below the fold loads once scrolled to, as a reader would.
    """
    page.locator(selector).scroll_into_view_if_needed()
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
    # The first answer loads the model: on a busy 2-core machine that can take a while.
    page.wait_for_function(
        "document.querySelector('#ask-status').innerText.includes('Answered with 5 variants')",
        timeout=4 * TIMEOUT_MS,
    )
    page.wait_for_function("document.querySelectorAll('#scores-chart g.trace.bars').length === 5")
    wait_image(page, "#attention-heatmap")
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


def tick(page, variant: str):
    return page.locator(f"#tick-{variant} input[type=checkbox]")


def test_new_answer_clears_the_attribution(page):
    page.reload()
    page.wait_for_selector("#answer-button")
    page.locator("#examples-gallery button.thumbnail-item").nth(0).click()
    page.wait_for_function("document.querySelector('#question textarea').value.length > 0")
    page.click("#answer-button")
    wait_image(page, "#attention-heatmap")
    assert page.locator("#attention-tokens .heat-tokens span").count() > 3
    page.get_by_label("Saliency (gradient)").check()
    page.wait_for_function(
        "[...document.querySelectorAll('input[type=range]')].some(r => r.disabled)"
    )  # the steps slider is off for saliency
    page.click("#attribution-button")
    wait_image(page, "#attribution-heatmap")
    assert "Gradient magnitude" in page.locator("#attribution-caption").inner_text()
    shot(page, "5-attribution")

    page.click("#answer-button")  # a new answer: the old attribution must go
    page.wait_for_function(
        "!document.querySelector('#attribution-heatmap img') && "
        "document.querySelector('#attribution-caption').innerText.trim() === ''"
    )
    wait_image(page, "#attention-heatmap")
    assert page.locator("#attribution-tokens .heat-tokens").count() == 0


def test_option_buttons_keep_the_variant_choice(page):
    page.reload()
    page.wait_for_selector("#answer-button")
    tick(page, "swag-last_token").uncheck()
    page.click("#add-option")
    page.wait_for_selector("#option-E", state="visible")
    assert tick(page, "multi_class-attentive").is_disabled()
    page.click("#remove-option")
    page.wait_for_selector("#option-E", state="hidden")
    page.wait_for_function("!document.querySelector('#tick-multi_class-attentive input').disabled")
    assert not tick(page, "swag-last_token").is_checked() and tick(page, "cond_gen").is_checked()
    page.click("#remove-option")
    page.click("#remove-option")
    page.wait_for_function("document.querySelector('#remove-option').disabled")
    assert page.locator("#option-C").is_hidden() and page.locator("#add-option").is_enabled()
    for _ in range(6):
        page.click("#add-option")
    page.wait_for_function("document.querySelector('#add-option').disabled")
    assert page.locator("#option-H").is_visible()
    assert not tick(page, "swag-last_token").is_checked()


@pytest.fixture(scope="module")
def shipped_page(browser):
    """The shipped default's page (the model is never loaded: nothing is answered)."""
    config = AppConfig()
    demo = build_demo(config)
    try:
        page = open_app(browser, demo, config)
        yield page, demo
        page.close()
        assert not demo.vqa_holder.loaded
    finally:
        demo.close()


def test_every_shipped_example_is_reachable(shipped_page):
    page, demo = shipped_page
    examples = demo.vqa_assets.examples
    thumbs = page.locator("#examples-gallery button.thumbnail-item")
    thumbs.nth(len(examples) - 1).wait_for()
    assert thumbs.count() == len(examples) == 10
    page.wait_for_function(
        "n => [...document.querySelectorAll('#examples-gallery button.thumbnail-item')].filter(b => b.title).length === n",
        arg=len(examples),
    )
    gallery = page.locator("#examples-gallery").bounding_box()
    for i, example in enumerate(examples):
        thumb = thumbs.nth(i)
        box = thumb.bounding_box()
        # Inside the gallery's own box: no inner scroll box hides a row.
        assert gallery["y"] <= box["y"] and box["y"] + box["height"] <= gallery["y"] + gallery["height"] + 1
        assert thumb.get_attribute("title") == example.caption  # the full text on hover
    thumbs.nth(len(examples) - 1).click()
    last = examples[-1]
    page.wait_for_function("q => document.querySelector('#question textarea').value === q", arg=last.question)
    shot(page, "6-shipped-examples")


def test_model_card_and_chance_level_ticks_on_the_shipped_default(shipped_page):
    page, demo = shipped_page
    card = page.locator("#model-card")
    assert "knows synthetic diagrams only" in card.inner_text()
    assert "real photographs are outside" in card.inner_text()
    assert not tick(page, "multi_class-attentive").is_checked() and tick(page, "swag-attentive").is_checked()
