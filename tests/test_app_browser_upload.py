"""Issue 25, defect 1, in headless Chromium: a bad file uploaded over a good one gets its reason, never a
bare "Error", and Answer still runs the app's own checks afterwards (a ``gr.update`` for the image
rebuilds the component for the session; the checks do not live on it).

Needs Debian's ``chromium`` and the ``playwright`` package, as :mod:`tests.test_app_browser`.
"""

from __future__ import annotations

import pytest

from tests.app_support import FakePredictor
from tests.test_app_browser import browser, expect, open_app, shot  # noqa: F401 (browser is a fixture)
from tests.test_inputs_images import png_declaring
from vqa_demo.ui import AppConfig, build_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app(app_assets, browser):  # noqa: F811
    config = AppConfig(assets=app_assets.root, base=str(app_assets.root / "base"))
    fake = FakePredictor()
    demo = build_demo(config, predictor=fake)
    try:
        page = open_app(browser, demo, config)
        yield page, fake, config
        page.close()
    finally:
        demo.close()


def upload(page, path) -> None:
    """Upload ``path`` into the Ask image through its file input, as the toolbar's upload button does,
    and wait for the upload check to finish (an upload during a pending check is ignored by Gradio)."""
    page.locator("#ask-image input[type=file]").first.set_input_files(str(path))
    page.wait_for_timeout(1000)
    page.wait_for_function(
        "() => !/processing|\\d+(\\.\\d+)?s/.test(document.querySelector('#image-status').innerText)"
    )


def test_a_bad_file_over_a_good_one_gets_its_reason_and_answer_still_checks(app, tmp_path):
    page, fake, config = app
    good = sorted(config.examples_dir.glob("*.png"))[0]
    notes = tmp_path / "notes.png"
    notes.write_text("shopping list: eggs, milk\n")
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_declaring(8000, 6000))
    page.fill("#question textarea", "What colour is the square?")
    for letter, text in zip("ABCD", ["red", "blue", "green", "grey"]):
        page.fill(f"#option-{letter} input, #option-{letter} textarea", text)
    upload(page, good)
    page.wait_for_selector("#ask-image img")
    upload(page, notes)
    # an upload's refusal is shown under the image (vqa_demo.ui.tabs.ask_freshness)
    expect(page.locator("#image-status")).to_contain_text("not a readable")
    upload(page, good)
    page.wait_for_selector("#ask-image img")
    upload(page, huge)
    expect(page.locator("#image-status")).to_contain_text("pixels")
    upload(page, good)
    page.wait_for_selector("#ask-image img")
    fake.calls.clear()
    page.click("#answer-button")
    expect(page.locator("#ask-status")).to_contain_text("Answered")
    assert len(fake.calls) == 1
    shot(page, "upload-bad-over-good")
    assert page.get_by_text("Error", exact=True).count() == 0
