"""Screenshots of the running app for the README: Ask (answered, with the heatmap), Compare and Errors.

    python -m tools.screenshots                      # docs/screenshots/{ask,compare,errors}.png + phone-*.png
    python -m tools.screenshots --out /tmp/shots --example 3
    python -m tools.screenshots --compare-runs runs/cmp-llava runs/cmp-vilt   # + compare-backbones.png

Starts the app on the offline default (``assets/``) on a free loopback port, drives headless
Chromium (Debian's ``/usr/bin/chromium``; playwright downloads no browser) and saves small PNGs:
each capture is scaled to ``--width`` pixels and reduced to a 256-colour palette. It also prints how
long after the status line the answer's chart was drawn.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image

from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.loopback import launch_on_loopback

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def start_app(assets: Path, compare_runs: list[Path] = ()):
    """The app as ``app.py`` builds it, on loopback; returns (demo, url)."""
    config = AppConfig(assets=assets, compare_runs=list(compare_runs))
    demo = build_demo(config)
    return demo, launch_on_loopback(demo, config)


def save_small(png: bytes, path: Path, width: int) -> None:
    """Scale a screenshot to ``width`` pixels and store it with a 256-colour palette."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".raw.png")
    scratch.write_bytes(png)
    with Image.open(scratch) as image:
        height = round(image.height * width / image.width)
        small = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    scratch.unlink()
    small.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({width}x{height}, {path.stat().st_size // 1024} KB)")


def wait_image(page, selector: str) -> None:
    page.locator(selector).scroll_into_view_if_needed()  # Gradio's images load lazily
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }",
        arg=f"{selector} img",
    )


def capture(page, top: str, bottom: str, max_height: int = 3200) -> bytes:
    """The whole page width from the top of ``top`` to the lowest bottom of ``bottom`` (CSS selectors)."""
    page.wait_for_timeout(800)  # let plot transitions and image fades settle
    box = page.evaluate(
        """([top, bottom]) => {
            const a = document.querySelector(top).getBoundingClientRect();
            const b = Math.max(...[...document.querySelectorAll(bottom)].map(e => e.getBoundingClientRect().bottom));
            return [a.top + window.scrollY, b + window.scrollY];
        }""",
        [top, bottom],
    )
    y = max(0, box[0] - 8)
    height = min(max_height, box[1] + 8 - y)
    return page.screenshot(
        full_page=True, clip={"x": 0, "y": y, "width": page.viewport_size["width"], "height": height}
    )


def answer(page) -> float:
    """Press Answer and wait for a new status line; seconds from it to the drawn chart."""
    before = page.inner_text("#ask-status")
    page.click("#answer-button")
    page.wait_for_function(
        "b => { const t = document.querySelector('#ask-status').innerText; return t.includes('Answered') && t !== b; }",
        arg=before,
    )
    answered = time.perf_counter()
    page.wait_for_function(
        "document.querySelectorAll('#scores-chart .js-plotly-plot g.trace.bars').length > 0"
    )
    return time.perf_counter() - answered


def shoot_ask(page, example: int) -> bytes:
    """Pick an example, answer it twice (the first answer also loads the model), compute the default
    attribution, and capture the Ask tab from the model card to the explanations."""
    page.locator("#examples-gallery button.thumbnail-item").nth(example).click()
    page.wait_for_function("document.querySelector('#question textarea').value.length > 0")
    print(f"first answer: chart drawn {answer(page):.2f} s after the status line")
    answer(page)  # the picture shows a warm answer's timings
    wait_image(page, "#attention-heatmap")
    page.click("#attribution-button")
    wait_image(page, "#attribution-heatmap")
    return capture(page, "#model-card", "#attention-tokens, #attribution-tokens")


def shoot_compare(page) -> bytes:
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-accuracy .js-plotly-plot")
    return capture(page, "#app-header", "#compare-accuracy", max_height=1200)


def shoot_backbones(page) -> bytes:
    """The Compare tab's runs side by side, from its heading to the accuracy table."""
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-backbones-accuracy .js-plotly-plot")
    return capture(page, "#compare-backbones-intro", "#compare-backbones-table", max_height=1600)


def shoot_errors(page) -> bytes:
    page.get_by_role("tab", name="Errors").click()
    page.locator("#errors-table [data-testid='cell-0-2']").click()
    page.wait_for_function("document.querySelector('#errors-details').innerText.includes('Question:')")
    wait_image(page, "#errors-image")
    return capture(page, "#app-header", "#errors-details", max_height=1400)


def first_screen(tab: str):
    """A shot of ``tab`` as the first screen shows it (the viewport, no scrolling)."""

    def take(page) -> bytes:
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(1500)  # charts draw when their tab is shown
        return page.screenshot()

    return take


def main(args: argparse.Namespace) -> None:
    out = Path(args.out)
    shots = [
        (lambda page: shoot_ask(page, args.example), "ask.png"),
        (shoot_compare, "compare.png"),
        (shoot_errors, "errors.png"),
    ]
    shoot(args, [], shots, out)
    phone = [(first_screen(tab), f"phone-{tab.lower()}.png") for tab in ("Ask", "Compare", "Errors")]
    shoot(args, [], phone, out, PHONE, width=PHONE["width"])
    if args.compare_runs:
        shoot(args, [Path(p) for p in args.compare_runs], [(shoot_backbones, "compare-backbones.png")], out)


def shoot(
    args: argparse.Namespace,
    compare_runs: list[Path],
    shots,
    out: Path,
    viewport: dict = VIEWPORT,
    width: int | None = None,
) -> None:
    """Serve the app (with ``compare_runs``), open it in Chromium at ``viewport`` and save each
    ``(shot, file name)`` scaled to ``width`` (default ``--width``)."""
    from playwright.sync_api import sync_playwright

    demo, url = start_app(Path(args.assets), compare_runs)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=viewport)
                page.set_default_timeout(60_000)
                page.goto(url)
                page.wait_for_selector("#answer-button")
                for take, name in shots:
                    save_small(take(page), out / name, width or args.width)
            finally:
                browser.close()
    finally:
        demo.close()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--assets", default=str(ROOT / "assets"), help="assets folder to serve")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder for the PNGs")
    parser.add_argument("--example", type=int, default=1, help="which example the Ask shot answers (0-based)")
    parser.add_argument("--width", type=int, default=900, help="width of the saved PNGs in pixels")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    parser.add_argument(
        "--compare-runs", nargs="*", default=[], help="run folders: also shoot compare-backbones.png"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
