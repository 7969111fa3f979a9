"""The app in headless Chromium: no answer outlives its inputs, image messages sit under the image, no
tab is wider than a phone's screen, and all text meets WCAG AA contrast.

Needs Debian's ``chromium`` and the ``playwright`` package, as tests/test_app_browser.py does.
"""

from __future__ import annotations

import pytest

from tests.browser_checks import CONTRAST_JS, OVERFLOW_JS
from tests.test_app_browser import app_page, browser, expect, open_app, shot, wait_image  # noqa: F401 (the fixture)
from vqa_demo.ui import build_demo
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.tabs.ask_freshness import STALE

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BARS = "#scores-chart .js-plotly-plot g.trace.bars"


@pytest.fixture(scope="module")
def page(app_assets, browser):  # noqa: F811 (the imported fixture)
    yield from app_page(app_assets, browser)


def answered(page) -> None:
    """Press Answer and wait until the answer, its chart and its heatmap are on the page."""
    page.click("#answer-button")
    page.wait_for_function(
        "document.querySelector('#ask-status').innerText.includes('Answered with')", timeout=120_000
    )
    page.wait_for_function(f"document.querySelectorAll('{BARS}').length > 0")
    wait_image(page, "#attention-heatmap")
    expect(page.locator("#answer-progress")).to_have_text("")


def assert_cleared(page) -> None:
    """Every trace of the last answer is gone and the status says why."""
    expect(page.locator("#ask-status")).to_contain_text(STALE.split(",")[0].removeprefix("ℹ "))
    expect(page.locator(BARS)).to_have_count(0)
    expect(page.locator("#attention-heatmap img")).to_have_count(0)
    expect(page.locator("#summary-table tbody tr td:has-text('%')")).to_have_count(0)
    expect(page.locator("#cond-gen")).not_to_contain_text("generated")


def pick(page, index: int) -> None:
    page.locator("#examples-gallery button.thumbnail-item").nth(index).click()
    page.wait_for_function("document.querySelector('#question textarea').value.length > 0")


def test_every_kind_of_edit_clears_the_old_answer(page):
    page.goto(page.url.split("?")[0])  # a fresh page at the root: a reload keeps the view the address holds
    page.wait_for_selector("#answer-button")
    pick(page, 0)
    page.click("#answer-button")
    # The first answer loads the model and says so under the button while it runs.
    expect(page.locator("#answer-progress")).to_contain_text("Loading the model")
    page.wait_for_function(
        "document.querySelector('#ask-status').innerText.includes('Answered with')", timeout=120_000
    )
    page.wait_for_function(f"document.querySelectorAll('{BARS}').length > 0")
    wait_image(page, "#attention-heatmap")
    expect(page.locator("#cond-gen")).to_contain_text("generated")
    edits = [
        lambda: page.locator("#question textarea").press_sequentially(" now"),
        lambda: page.locator("#option-B").locator("textarea, input").first.press_sequentially("x"),
        lambda: page.locator("#tick-swag-last_token input[type=checkbox]").click(),
        lambda: page.click("#remove-option"),
        lambda: pick(page, 1),
    ]
    for edit in edits:
        edit()
        assert_cleared(page)
        answered(page)
    page.click("#add-option")  # an empty option E: cleared, and no answer until it is filled
    assert_cleared(page)
    shot(page, "fresh-1-answered-after-edits")


def test_a_refused_file_is_explained_under_the_image_and_by_answer(page, tmp_path):
    page.goto(page.url.split("?")[0])  # a fresh page at the root: a reload keeps the view the address holds
    page.wait_for_selector("#answer-button")
    pick(page, 0)
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is a text file, not a picture")
    page.locator("#ask-image input[type=file]").set_input_files(str(bogus))
    expect(page.locator("#image-status")).to_contain_text("⚠")
    reason = page.locator("#image-status").inner_text().strip()
    expect(page.locator("#ask-status")).not_to_contain_text(reason)  # not under the Answer button
    page.click("#answer-button")
    expect(page.locator("#ask-status")).to_contain_text(reason)
    expect(page.locator("#ask-status")).not_to_contain_text("No image was given")
    shot(page, "fresh-2-refused-file")
    # Picking an example resets the image's message.
    pick(page, 1)
    expect(page.locator("#image-status")).to_have_text("")


def test_a_file_over_the_limit_is_named_under_the_image(page, app_assets):
    page.goto(page.url.split("?")[0])  # a fresh page at the root: a reload keeps the view the address holds
    page.wait_for_selector("#answer-button")
    too_big = app_assets.config.max_image_bytes + 1024
    page.locator("#ask-image input[type=file]").set_input_files(
        files=[{"name": "huge.png", "mimeType": "image/png", "buffer": b"\0" * too_big}]
    )
    expect(page.locator("#image-alert-text")).to_contain_text("huge.png")
    expect(page.locator("#image-alert-text")).to_contain_text("over the")


@pytest.mark.parametrize("viewport", [(390, 844), (1366, 900)])
def test_no_tab_is_wider_than_the_screen_and_all_text_meets_aa_contrast(app_assets, browser, viewport):  # noqa: F811
    """Each tab's ``scrollWidth`` fits the viewport (a phone's 390 px too); every text element passes
    WCAG AA contrast as rendered; the pictures have text alternatives."""
    width, height = viewport
    holder = PredictorHolder(loader=app_assets.load_predictor, checkpoints=app_assets.config.checkpoints)
    demo = build_demo(app_assets.config, holder=holder)
    try:
        page = open_app(browser, demo, app_assets.config)
        page.set_viewport_size({"width": width, "height": height})
        pick(page, 0)
        answered(page)
        for tab in ("Ask", "Compare", "Errors"):
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(1500)  # let the tab lay out (charts draw when shown)
            layout = page.evaluate(OVERFLOW_JS)
            assert layout["scrollWidth"] <= width, (tab, layout)
            contrast = page.evaluate(CONTRAST_JS)
            assert contrast["checked"] > 20 and contrast["failures"] == [], (tab, contrast["failures"][:5])
            # Every visible picture and chart has a text alternative.
            page.wait_for_timeout(500)
            unnamed = page.evaluate(
                "() => [...document.querySelectorAll('img, .js-plotly-plot')].filter(e => e.offsetParent"
                " && !(e.getAttribute('alt') || e.getAttribute('aria-label'))).map(e => e.outerHTML.slice(0, 80))"
            )
            assert unnamed == [], (tab, unnamed)
            shot(page, f"width-{width}-{tab.lower()}")
        page.close()
    finally:
        demo.close()
