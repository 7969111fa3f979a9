"""The Compare tab's "Across backbones": where runs come from, what the served page holds, what a person sees.

The runs are real evaluations on the tiny PaliGemma 2 (served), ViLT and Qwen2.5-VL models
(``other_runs`` in conftest); the page is checked through the real server on loopback (the
``/config`` Gradio serves) and in headless Chromium.
"""

from __future__ import annotations

import httpx
import pytest

from tests.app_support import launch
from tests.test_app_browser import ARTIFACTS, browser, open_app  # noqa: F401  (browser is a fixture)
from vqa_demo.evaluation.run_tables import accuracy_cell, paired_table, side_by_side_table
from vqa_demo.evaluation.saved_runs import load_run, paired_tests
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.tabs.compare_backbones import HOW_TO_ADD, family_figure


def config_with_runs(app_assets, other_runs, *extra) -> AppConfig:
    return AppConfig(
        assets=app_assets.root,
        base=str(app_assets.root / "base"),
        compare_runs=[other_runs["vilt"], other_runs["qwen"], *extra],
    )


def test_runs_come_from_the_flag_the_environment_or_the_runs_folder(tmp_path):
    assets = tmp_path / "assets"
    for name in ("b-run", "a-run"):
        (assets / "runs" / name).mkdir(parents=True)
    (assets / "runs" / "README.txt").write_text("not a run")
    assert AppConfig(assets=assets).other_runs() == [assets / "runs" / "a-run", assets / "runs" / "b-run"]
    flagged = AppConfig.from_args(["--assets", str(assets), "--compare-runs", "x", str(tmp_path / "y")])
    assert flagged.other_runs() == [(tmp_path.cwd() / "x").resolve(), tmp_path / "y"]
    from_env = AppConfig.from_args(["--assets", str(assets)], environ={"VQA_COMPARE_RUNS": f"x,{tmp_path}/y"})
    assert from_env.other_runs() == flagged.other_runs()
    assert AppConfig(assets=tmp_path / "nothing").other_runs() == []


def test_the_served_run_comes_first_and_a_bad_run_is_a_note(app_assets, other_runs, tmp_path):
    assets = AppAssets.load(config_with_runs(app_assets, other_runs, tmp_path / "missing"))
    assert [r.label for r in assets.runs] == ["served (PaliGemma 2)", "vilt (ViLT)", "qwen (Qwen2.5-VL)"]
    assert (
        len(assets.run_notes) == 1
        and "missing holds no comparison.json or metrics.json" in assets.run_notes[0]
    )


def test_the_side_by_side_table_reads_each_runs_own_figures(app_assets, other_runs):
    runs = AppAssets.load(config_with_runs(app_assets, other_runs)).runs
    table = side_by_side_table(runs)
    assert list(table.columns) == ["variant", "served (PaliGemma 2)", "vilt (ViLT)", "qwen (Qwen2.5-VL)"]
    rows = table.set_index("variant")
    assert rows.loc["cond_gen", "vilt (ViLT)"] == "not applicable"
    assert rows.loc["vilt-answer-classifier (no training)", "served (PaliGemma 2)"] == "–"
    vilt = load_run(other_runs["vilt"]).accuracy("swag-attentive")
    assert rows.loc["swag-attentive", "vilt (ViLT)"].startswith(f"{vilt['accuracy']:.1%} [{vilt['low']:.1%}–")
    # 12 questions cannot tell a random head from guessing
    assert all(accuracy_cell(run, v).endswith("chance level") for run in runs for v in run.variants)
    paired = paired_table(paired_tests(runs)[0])
    assert len(paired) == 13 and set(paired["reading"]) == {"no reliable difference"}


def test_the_family_chart_follows_the_chosen_variant(app_assets, other_runs):
    runs = AppAssets.load(config_with_runs(app_assets, other_runs)).runs
    figure = family_figure(runs, "cond_gen")
    assert [trace.name for trace in figure.data if trace.type == "bar"] == [
        "served (PaliGemma 2)",
        "vilt (ViLT): not applicable",
        "qwen (Qwen2.5-VL)",
    ]
    by_family = runs[0].variants["cond_gen"].by_family
    assert list(figure.data[0].y) == [by_family[f]["accuracy"] for f in figure.data[0].x]
    assert all(y is None for y in figure.data[1].y)  # ViLT has no cond_gen: a gap, not a zero


def served_config(url: str) -> dict:
    return httpx.get(url.rstrip("/") + "/config", timeout=30).json()


def component_values(config: dict) -> dict[str, object]:
    """``elem_id -> value`` of every component on the served page."""
    return {
        c["props"]["elem_id"]: c["props"].get("value")
        for c in config["components"]
        if c.get("props", {}).get("elem_id")
    }


@pytest.mark.slow  # a real server on loopback
def test_the_served_page_holds_the_runs_side_by_side(app_assets, other_runs):
    config = config_with_runs(app_assets, other_runs)
    demo = build_demo(config, holder=PredictorHolder(loader=app_assets.load_predictor))
    try:
        values = component_values(served_config(launch(demo, config)))
    finally:
        demo.close()
    assert values["compare-backbones-intro"].startswith("### Across backbones: 3 runs on 3 models")
    table = values["compare-backbones-table"]
    assert table["headers"] == ["variant", "served (PaliGemma 2)", "vilt (ViLT)", "qwen (Qwen2.5-VL)"]
    assert ["cond_gen", table["data"][0][1], "not applicable", table["data"][0][3]] == table["data"][0]
    assert len(values["compare-backbones-paired"]["data"]) == 13
    assert values["compare-served-heading"] == "### The served run in detail: served (PaliGemma 2)"


@pytest.mark.slow  # a real server on loopback
def test_without_other_runs_the_tab_says_how_to_add_them(app_assets):
    demo = build_demo(app_assets.config, holder=PredictorHolder(loader=app_assets.load_predictor))
    try:
        values = component_values(served_config(launch(demo, app_assets.config)))
    finally:
        demo.close()
    assert values["compare-backbones-intro"] == HOW_TO_ADD
    assert "compare-backbones-table" not in values and "compare-served-heading" not in values


@pytest.mark.browser
@pytest.mark.slow
def test_a_person_sees_the_runs_and_can_pick_a_variant(app_assets, other_runs, browser):  # noqa: F811
    config = config_with_runs(app_assets, other_runs)
    demo = build_demo(config, holder=PredictorHolder(loader=app_assets.load_predictor))
    try:
        page = open_app(browser, demo, config)
        page.get_by_role("tab", name="Compare").click()
        page.wait_for_selector("#compare-backbones-family .js-plotly-plot")
        table = page.locator("#compare-backbones-table").inner_text()
        assert "qwen (Qwen2.5-VL)" in table and "not applicable" in table
        runs = AppAssets.load(config).runs
        expected = {
            v: [list(t.y) for t in family_figure(runs, v).data] for v in ("cond_gen", "swag-attentive")
        }
        assert expected["cond_gen"] != expected["swag-attentive"]
        shows = (
            "y => JSON.stringify(document.querySelector('#compare-backbones-family .js-plotly-plot')"
            ".data.map(t => t.y)) === JSON.stringify(y)"
        )
        page.wait_for_function(shows, arg=expected["cond_gen"])
        page.locator("#compare-backbones-variant input").click()
        option = page.locator("#compare-backbones-variant li[aria-label='swag-attentive']")
        option.wait_for(state="visible")
        option.click()
        page.wait_for_function(shows, arg=expected["swag-attentive"])
        page.screenshot(path=str(ARTIFACTS / "compare-backbones.png"), full_page=True)
        page.close()
    finally:
        demo.close()
