"""Linked views, the shareable address and lazily sent rows, in the real app in headless Chromium.

Needs Debian's ``chromium`` and the ``playwright`` package, as tests/test_app_browser.py does. Every
expected set of examples is recomputed from the tiny assets' records.
"""

from __future__ import annotations

import re

import pytest

from tests.browser_checks import OVERFLOW_JS
from tests.test_app_browser import app_page, browser, expect, shot  # noqa: F401 (the fixture)
from vqa_demo.ui.tabs.error_data import default_variants, labelled, variant_names

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def page(app_assets, browser):  # noqa: F811 (the imported fixture)
    yield from app_page(app_assets, browser)


@pytest.fixture(scope="module")
def records(app_assets):
    from vqa_demo.ui.assets import AppAssets

    return labelled(AppAssets.load(app_assets.config).records)


def table_examples(page) -> set[int]:
    """The ``#`` column of the Errors table as shown."""
    page.wait_for_timeout(500)
    cells = page.locator("#errors-table [data-testid^='cell-'][data-testid$='-1']").all_inner_texts()
    return {int(c) for c in cells if c.strip().isdigit()}


def linked_count(page) -> int:
    expect(page.locator("#errors-count")).to_contain_text("linked")
    return int(re.search(r"(\d+)\s+linked", page.locator("#errors-count").inner_text()).group(1))


def test_errors_rows_arrive_after_load(page):
    page.get_by_role("tab", name="Errors").click()
    page.wait_for_selector("#errors-table [data-testid='cell-0-3']")
    expect(page.locator("#errors-count")).to_contain_text("validation examples missed by")
    assert len(table_examples(page)) > 0


def test_confusion_cell_lists_exactly_its_examples(page, records):
    page.goto(page.url.split("?")[0])  # a fresh page at the root: a reload keeps the view the address holds
    page.wait_for_selector("#answer-button")
    page.get_by_role("tab", name="Errors").click()
    page.wait_for_selector("#errors-table [data-testid='cell-0-3']")
    page.get_by_role("tab", name="Confusion of positions").click()
    page.wait_for_selector("#errors-confusion .js-plotly-plot .nsewdrag")
    page.wait_for_timeout(800)
    box = page.locator("#errors-confusion .nsewdrag").first.bounding_box()
    k = max(len(r["options"]) for r in records)
    # The cell of row "gold A", column "chose B".
    page.mouse.click(box["x"] + box["width"] * 1.5 / k, box["y"] + box["height"] * 0.5 / k)
    selected = default_variants(records)  # the ticks the tab starts with
    expected = {r["index"] for r in records if r["gold"] == 0 and any(r["variants"][n]["choice"] == 1 for n in selected)}  # fmt: skip
    assert linked_count(page) == len(expected)
    expect(page.get_by_role("tab", name="Table")).to_have_attribute("aria-selected", "true")
    assert table_examples(page) == expected
    shot(page, "views-1-confusion-link")
    page.click("#errors-unlink")
    expect(page.locator("#errors-count")).not_to_contain_text("linked")


def test_mcnemar_count_lists_exactly_its_examples(page, records):
    page.goto(page.url.split("?")[0])  # a fresh page at the root: a reload keeps the view the address holds
    page.wait_for_selector("#answer-button")
    page.get_by_role("tab", name="Compare").click()
    cell = page.locator("#compare-mcnemar [data-testid='cell-0-2']")
    cell.wait_for()
    a = page.locator("#compare-mcnemar [data-testid='cell-0-0']").inner_text().strip()
    b = page.locator("#compare-mcnemar [data-testid='cell-0-1']").inner_text().strip()
    count = int(cell.inner_text().strip())
    cell.click()
    expect(page.get_by_role("tab", name="Errors")).to_have_attribute("aria-selected", "true")
    expected = {r["index"] for r in records if r["variants"][a]["choice"] == r["gold"] != r["variants"][b]["choice"]}  # fmt: skip
    assert linked_count(page) == count == len(expected)
    assert table_examples(page) == expected


def test_family_bar_lists_exactly_its_examples(page, records):
    # A fresh page at the root: Errors has never been shown, so none of its components is mounted yet
    # (the click's hidden button once lived there, and the click did nothing).
    page.goto(page.url.split("?")[0])
    page.wait_for_selector("#answer-button")
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-family g.trace.bars path")
    page.wait_for_timeout(800)
    bar = page.locator("#compare-family g.trace.bars").first.locator("path").first
    bar.click(force=True)
    expect(page.get_by_role("tab", name="Errors")).to_have_attribute("aria-selected", "true")
    caption = page.locator("#errors-count").inner_text()
    variant, family = re.search(r"linked examples?: (\S+)'s mistakes in family (\S+) \(", caption).groups()
    expected = {
        r["index"]
        for r in records
        if r["metadata"].get("family") == family and r["variants"][variant]["choice"] != r["gold"]
    }
    assert linked_count(page) == len(expected)
    assert table_examples(page) == expected
    assert "tab=errors" in page.url


def test_address_opens_the_view_and_follows_it(page, records, app_assets):
    base = page.url.split("?")[0]
    example = sorted(r["index"] for r in records)[2]
    variant = variant_names(records)[-1]
    page.goto(f"{base}?tab=errors&example={example}&variant={variant}")
    expect(page.get_by_role("tab", name="Errors")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#errors-details")).to_contain_text(f"#{example}")
    expect(page.locator("#errors-variant input")).to_have_value(variant)
    page.wait_for_selector("#errors-table [data-testid='cell-0-3']")  # the rows came with the link
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_function(
        "() => location.search.includes('tab=compare') && !location.search.includes('example')"
    )
    page.get_by_role("tab", name="Errors").click()
    page.locator("#errors-table [data-testid='cell-0-3']").click()
    expect(page.locator("#errors-details")).not_to_contain_text(f"#{example}")
    shown = re.search(r"#(\d+)", page.locator("#errors-details").inner_text()).group(1)
    # The page copies the shown example into the address on its next tick (0.5 s).
    page.wait_for_function(f"() => location.search.includes('example={shown}')")
    # Unknown or hostile values: ignored with a note, never an error, never HTML.
    page.goto(f"{base}?tab=nowhere&example=99999&variant=%3Cimg%20src%3Dx%20id%3Dinjected%3E")
    expect(page.locator("#url-note")).to_contain_text("ignored")
    expect(page.get_by_role("tab", name="Ask")).to_have_attribute("aria-selected", "true")
    assert page.locator("#injected").count() == 0
    expect(page.locator(".toast-body.error")).to_have_count(0)


@pytest.mark.parametrize("tab", ["Compare", "Errors"])
def test_new_views_fit_a_phone(page, tab):
    """At 390 px the page is no wider than the screen with the new charts and the Errors table shown,
    and no table heading breaks inside a word."""
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.reload()
        page.wait_for_selector("#answer-button")
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(2000)
        layout = page.evaluate(OVERFLOW_JS)
        assert layout["scrollWidth"] <= 390, layout
        broken = page.evaluate(
            """() => [...document.querySelectorAll('th')].filter(th => th.offsetParent).flatMap(th => {
                 const out = [];
                 for (const node of th.querySelectorAll('*')) {
                   for (const t of node.childNodes) {
                     if (t.nodeType !== 3) continue;
                     let at = 0;
                     for (const word of t.textContent.split(' ')) {
                       if (word.length > 1) {
                         const r = document.createRange(); r.setStart(t, at); r.setEnd(t, at + word.length);
                         const lines = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
                         if (lines.size > 1) out.push(word);
                       }
                       at += word.length + 1;
                     }
                   }
                 }
                 return out; })"""
        )
        assert broken == [], broken
        shot(page, f"views-phone-{tab.lower()}")
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})
