"""The real app in headless Chromium: example -> Answer -> chart, heatmap, attribution -> Errors tab -> a row;
the option buttons keep the variant ticks, and lose no click on a stalled server; every shipped example
is reachable.

Every check waits for its condition (``page.wait_for_*`` or :func:`expect`, both up to ``TIMEOUT_MS``):
the page updates when the server answers, which on a loaded machine can take seconds.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package; no
browser is downloaded. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.app_support import FakePredictor, click_events, launch
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.tabs.ask import AskCallbacks

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


def expect(target):
    """Playwright's retrying assertion on ``target`` (a locator or page), waiting up to ``TIMEOUT_MS``."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect(target)


def open_app(browser, demo, config):
    """A page on ``demo`` served on loopback, once the form is there."""
    url = launch(demo, config)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#answer-button", timeout=4 * TIMEOUT_MS)  # a busy machine's first load
    return page


@pytest.fixture(scope="module")
def page(app_assets, browser):
    yield from app_page(app_assets, browser)


def app_page(app_assets, browser):
    """The tiny assets' app open in a Chromium page (a generator for module fixtures: yields the page,
    then closes it and the server)."""
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
    expect(page.locator("#option-A").locator("textarea, input").first).not_to_have_value("")
    shot(page, "1-example-picked")

    page.click("#answer-button")
    # The first answer loads the model: on a busy 2-core machine that can take a while.
    page.wait_for_function(
        "document.querySelector('#ask-status').innerText.includes('Answered with 5 variants')",
        timeout=4 * TIMEOUT_MS,
    )
    page.wait_for_function("document.querySelectorAll('#scores-chart g.trace.bars').length === 5")
    wait_image(page, "#attention-heatmap")
    expect(page.locator("#scores-chart .js-plotly-plot g.trace.bars")).to_have_count(5)
    shot(page, "2-answered")

    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-accuracy .js-plotly-plot")
    shot(page, "3-compare")

    page.get_by_role("tab", name="Errors").click()
    page.locator("#errors-table [data-testid='cell-0-2']").click()
    page.wait_for_function("document.querySelector('#errors-details').innerText.includes('Question:')")
    wait_image(page, "#errors-image")
    wait_image(page, "#errors-heatmap")
    expect(page.locator("#errors-details")).to_contain_text("gold")
    shot(page, "4-errors-row")


def tick(page, variant: str):
    return page.locator(f"#tick-{variant} input[type=checkbox]")


def test_new_answer_clears_the_attribution(page):
    page.goto(page.url.split("?")[0])  # a fresh page at the root: a reload keeps the view the address holds
    page.wait_for_selector("#answer-button")
    page.locator("#examples-gallery button.thumbnail-item").nth(0).click()
    page.wait_for_function("document.querySelector('#question textarea').value.length > 0")
    page.click("#answer-button")
    wait_image(page, "#attention-heatmap")
    page.wait_for_function("document.querySelectorAll('#attention-tokens .heat-tokens span').length > 3")
    page.get_by_label("Saliency (gradient)").check()
    page.wait_for_function(
        "[...document.querySelectorAll('input[type=range]')].some(r => r.disabled)"
    )  # the steps slider is off for saliency
    page.click("#attribution-button")
    wait_image(page, "#attribution-heatmap")
    expect(page.locator("#attribution-caption")).to_contain_text("Gradient magnitude")
    shot(page, "5-attribution")

    page.click("#answer-button")  # a new answer: the old attribution must go
    page.wait_for_function(
        "!document.querySelector('#attribution-heatmap img') && "
        "document.querySelector('#attribution-caption').innerText.trim() === ''"
    )
    wait_image(page, "#attention-heatmap")
    expect(page.locator("#attribution-tokens .heat-tokens")).to_have_count(0)


def test_option_buttons_keep_the_variant_choice(page):
    page.goto(page.url.split("?")[0])  # a fresh page at the root: a reload keeps the view the address holds
    page.wait_for_selector("#answer-button")
    tick(page, "swag-last_token").uncheck()
    page.click("#add-option")
    expect(page.locator("#option-E")).to_be_visible()
    expect(tick(page, "multi_class-attentive")).to_be_disabled()
    page.click("#remove-option")
    expect(page.locator("#option-E")).to_be_hidden()
    expect(tick(page, "multi_class-attentive")).to_be_enabled()
    expect(tick(page, "swag-last_token")).not_to_be_checked()
    expect(tick(page, "cond_gen")).to_be_checked()
    page.click("#remove-option")
    page.click("#remove-option")
    expect(page.locator("#remove-option")).to_be_disabled()
    expect(page.locator("#option-C")).to_be_hidden()
    expect(page.locator("#add-option")).to_be_enabled()
    for _ in range(6):
        page.click("#add-option")
    expect(page.locator("#add-option")).to_be_disabled()
    expect(page.locator("#option-H")).to_be_visible()
    expect(tick(page, "swag-last_token")).not_to_be_checked()


def test_fast_option_clicks_are_not_lost_on_a_stalled_server(page):
    """Clicks faster than the server answers: each one counts, in order, and the user's ticks stay.

    Every request to the app is held until the end, as on a server too busy to answer: the buttons
    must not need it (a click used to be a round trip that Gradio dropped while one was pending).
    """
    page.goto(page.url.split("?")[0])  # a fresh page at the root: a reload keeps the view the address holds
    page.wait_for_selector("#answer-button")
    tick(page, "swag-last_token").uncheck()
    held, released = [], []

    def hold(route):
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route("**/gradio_api/**", hold)
    try:
        for button in ["add", "remove", "remove", "add", "add", "add", "remove"]:  # 4 5 4 3 4 5 6 5
            page.click(f"#{button}-option")
        expect(page.locator("#option-E")).to_be_visible()
        expect(page.locator("#option-F")).to_be_hidden()
        expect(tick(page, "multi_class-attentive")).to_be_disabled()
        expect(tick(page, "multi_class-attentive")).not_to_be_checked()
        expect(tick(page, "swag-last_token")).to_be_enabled()
        expect(tick(page, "swag-last_token")).not_to_be_checked()
        expect(tick(page, "cond_gen")).to_be_checked()
        page.click("#remove-option")
        expect(tick(page, "multi_class-attentive")).to_be_enabled()
    finally:
        released.append(True)
        for route in held:
            route.continue_()
        page.unroute("**/gradio_api/**", hold)


def test_option_button_scripts_follow_change_count(browser, tmp_path):
    """The + and - functions the page runs give :meth:`AskCallbacks.change_count`'s outputs for any count."""
    holder = PredictorHolder(predictor=FakePredictor())
    demo = build_demo(AppConfig(assets=tmp_path), holder=holder)
    ask = AskCallbacks(holder, demo.vqa_config, card=demo.vqa_card)
    page = browser.new_page()
    try:
        for button, delta in (("add-option", +1), ("remove-option", -1)):
            (event,) = [e for e in click_events(demo, button) if e.get("js")]
            for count in [None, "", "many", -3, 1, 2, 3, 4, 4.7, 5, 6, 7, 8, 9]:
                expected = json.loads(json.dumps(ask.change_count(count, delta)))
                assert page.evaluate(event["js"], count) == expected, (button, count)
    finally:
        page.close()


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
    assert len(examples) == 10
    expect(thumbs).to_have_count(len(examples))
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
    expect(card).to_contain_text("knows synthetic diagrams only")
    card.locator("button").first.click()
    expect(card).to_contain_text("real photographs are outside")
    expect(tick(page, "multi_class-attentive")).not_to_be_checked()
    expect(tick(page, "swag-attentive")).to_be_checked()
