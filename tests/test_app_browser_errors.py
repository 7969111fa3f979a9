"""The Errors tab in headless Chromium: select an example -> explanation -> Open in Ask -> edited re-run.

Needs Debian's ``chromium`` and the ``playwright`` package, as tests/test_app_browser.py does.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re

import pytest

from tests.app_support import launch
from tests.browser_checks import OVERFLOW_JS
from tests.test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, expect, shot, wait_image
from vqa_demo.ui import build_demo
from vqa_demo.ui.holder import PredictorHolder

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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
                page.wait_for_selector(
                    "#answer-button", timeout=4 * TIMEOUT_MS
                )  # a busy machine's first load
                yield page
            finally:
                browser.close()
    finally:
        demo.close()


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def test_errors_select_open_in_ask_and_edited_rerun(page):
    page.get_by_role("tab", name="Errors").click()
    page.wait_for_selector("#errors-table [data-testid='cell-0-3']")
    # Thumbnails are real images, not broken links.
    page.wait_for_function(
        "() => { const i = document.querySelector('#errors-table img'); return i && i.complete && i.naturalWidth > 0; }"
    )
    expect(page.locator("#errors-count")).to_contain_text("of 12 validation examples")

    page.locator("#errors-table [data-testid='cell-0-3']").click()
    page.wait_for_function("document.querySelector('#errors-details').innerText.includes('Question:')")
    wait_image(page, "#errors-image")
    page.wait_for_function("document.querySelector('#errors-live-status').innerText.includes('Answered now')")
    details = text_of(page, "#errors-details")
    question = re.search(r"Question:\s*(.+)", details).group(1).strip()
    gold_line = next(line for line in details.splitlines() if "gold" in line and ") " in line)
    assert re.match(r"\s*[A-H]\) ", gold_line), gold_line  # option letters with their text
    expect(page.locator("#errors-attribution")).to_be_hidden()  # no empty frames before asking
    page.locator("#errors-method").get_by_text("Saliency (gradient)").click()
    page.wait_for_selector("#errors-steps input[type=range]:disabled")  # steps mean nothing to saliency
    page.click("#errors-attribute")
    wait_image(page, "#errors-attribution-gold")
    wait_image(page, "#errors-attribution")
    expect(page.locator("#errors-attribution-gold-caption")).to_contain_text("Attribution of")
    shot(page, "errors-1-selected")

    page.get_by_role("tab", name="Gallery (most confident mistakes first)").click()
    page.wait_for_selector("#errors-gallery button.thumbnail-item")
    page.get_by_role("tab", name="Confusion of positions").click()
    page.wait_for_selector("#errors-confusion .js-plotly-plot")
    shot(page, "errors-2-confusion")

    page.click("#errors-open-in-ask")
    page.wait_for_selector("#question textarea", state="visible")
    page.wait_for_function(
        "q => document.querySelector('#question textarea').value === q", arg=question, timeout=TIMEOUT_MS
    )
    wait_image(page, "#ask-image")
    expect(page.locator("#ask-status")).to_contain_text("Filled from validation example")
    option_a = page.locator("#option-A").locator("textarea, input").first
    expect(option_a).not_to_have_value("")

    page.locator("#question textarea").fill(question + " Look again.")
    option_a.fill("zebra")
    page.click("#answer-button")
    page.wait_for_function("document.querySelector('#ask-status').innerText.includes('Answered with')")
    page.wait_for_function("document.querySelector('#scores-chart').textContent.includes('A) zebra')")
    shot(page, "errors-3-edited-rerun")


def test_compare_tab_shows_mcnemar_and_split_curves(page):
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-curves .js-plotly-plot")
    expect(page.locator("#compare-summary")).to_contain_text("validation examples")
    expect(page.locator("#compare-mcnemar")).to_contain_text("only A right")
    expect(page.locator("#compare-curves")).to_contain_text("token-level loss")
    shot(page, "compare")


def test_errors_explains_as_ask_does(page):
    """Issue 25 defect 6: token chips, one legend over both sides, the patch grid by default, captions
    that name each side's row, and attributions of both options under one legend."""
    page.goto(page.url.split("?")[0])  # a fresh page at the root: a reload keeps the view the address holds
    page.wait_for_selector("#answer-button", timeout=4 * TIMEOUT_MS)
    page.get_by_role("tab", name="Errors").click()
    page.locator("#errors-table [data-testid='cell-0-3']").click()
    page.wait_for_function("document.querySelector('#errors-live-status').innerText.includes('Answered now')")
    page.locator("#errors-variant input").click()
    page.get_by_role("option", name="swag-attentive").click()  # one prompt row per option: two maps
    expect(page.locator("#errors-heatmap-gold-caption")).to_contain_text("row: gold option")
    wait_image(page, "#errors-heatmap-gold")
    wait_image(page, "#errors-heatmap")
    expect(page.locator("#errors-view").get_by_label("Patch grid")).to_be_checked()
    for side in ("#errors-heatmap-gold", "#errors-heatmap"):
        expect(page.locator(f"{side}-tokens .heat-tokens span[title]").first).to_be_visible()
        expect(page.locator(f"{side}-caption .heat-legend")).to_have_count(0)  # the numbers are shown once
    expect(page.locator("#errors-heatmap-gold-caption")).not_to_contain_text("row: chosen option")
    expect(page.locator("#errors-heatmap-caption")).to_contain_text("row: chosen option")
    # One legend for both sides: an image bar and a token bar, each with its numbers.
    expect(page.locator(".heat-legend-box")).to_have_count(1)
    expect(page.locator("#errors-pooling-legend .heat-legend")).to_have_count(2)
    expect(page.locator("#errors-pooling-legend")).to_contain_text("shared by these 2 panels")
    expect(page.locator("#errors-steps")).to_contain_text("raised up to 128")
    shot(page, "errors-4-pooling-side-by-side")

    page.locator("#errors-method").get_by_text("Saliency (gradient)").click()
    page.click("#errors-attribute")
    wait_image(page, "#errors-attribution-gold")
    wait_image(page, "#errors-attribution")
    for side in ("#errors-attribution-gold", "#errors-attribution"):
        expect(page.locator(f"{side}-caption")).to_contain_text("Attribution of")
        expect(page.locator(f"{side}-tokens .heat-tokens span[title]").first).to_be_visible()
    expect(page.locator("#errors-attribution-legend .heat-legend")).to_have_count(2)
    expect(page.locator(".heat-legend-box")).to_have_count(2)  # the pooling legend and this one
    before = page.locator("#errors-attribution img").get_attribute("src")
    page.locator("#errors-view").get_by_label("Smooth").check()  # repaints the kept attributions
    page.wait_for_function(
        "b => { const i = document.querySelector('#errors-attribution img'); return i && i.src !== b; }",
        arg=before,
    )
    shot(page, "errors-5-attribution-side-by-side")


def open_example(page, row: int) -> None:
    """A fresh page on Errors with the table's ``row`` selected and answered live."""
    page.goto(page.url.split("?")[0] + "?tab=errors")
    page.wait_for_selector("#errors-table [data-testid='cell-0-3']")
    page.locator(f"#errors-table [data-testid='cell-{row}-3']").click()
    page.wait_for_function("document.querySelector('#errors-live-status').innerText.includes('Answered now')")


def test_an_edit_in_place_scores_every_variant_again(page):
    open_example(page, 1)
    page.locator("#errors-whatif").get_by_text("What if").click()
    options = page.locator("#errors-edit-options textarea")
    expect(options).not_to_have_value("")  # the selected example's options, one per line
    lines = options.input_value().splitlines()
    lines[0], lines[1] = lines[1], lines[0]
    options.fill("\n".join(lines))
    page.click("#errors-edit-score")
    expect(page.locator("#errors-edit-status")).to_contain_text("Scored the edit (options A, B)")
    table = page.locator("#errors-edit-table")
    expect(table).to_contain_text("(was ")
    shot(page, "errors-3-edit-in-place")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the edit box and its table fit
    try:
        page.wait_for_timeout(500)
        layout = page.evaluate(OVERFLOW_JS)
        assert layout["scrollWidth"] <= 390, layout
        page.locator("#errors-whatif").screenshot(path=str(ARTIFACTS / "errors-3-edit-in-place-phone.png"))
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})
    scored = int(re.search(r"with (\d+) variants?", text_of(page, "#errors-edit-status")).group(1))
    cells = [line for line in table.inner_text().splitlines() if "(was " in line]
    assert len(cells) == scored * len(lines)  # a share per option for every variant that answered
    options.fill(lines[0])  # one option: refused with the Ask form's sentence
    page.click("#errors-edit-score")
    expect(page.locator("#errors-edit-status")).to_contain_text("⚠")


def test_two_variants_side_by_side(page):
    open_example(page, 2)
    page.locator("#errors-method").get_by_text("Saliency (gradient)").click()
    page.locator("#errors-pair").get_by_text("Two variants side by side").click()
    expect(page.locator("#errors-pair-first input")).not_to_have_value("")
    first = page.locator("#errors-pair-first input").input_value()
    second = page.locator("#errors-pair-second input").input_value()
    assert first and second and first != second
    page.locator("#errors-pair-reading").get_by_text("Attribution of the gold option").click()
    page.click("#errors-pair-show")
    wait_image(page, "#errors-pair-left")
    wait_image(page, "#errors-pair-right")
    expect(page.locator("#errors-pair-left-caption")).to_contain_text(first)
    expect(page.locator("#errors-pair-right-caption")).to_contain_text(second)
    expect(page.locator("#errors-pair-legend")).to_contain_text("0")
    shot(page, "errors-4-two-variants")
