"""The Compare tab against the shipped assets and the tiny assets: one source, chance, McNemar, curves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vqa_demo.evaluation.metrics import holm, mcnemar_exact
from vqa_demo.evaluation.record_files import read_predictions
from vqa_demo.ui import AppConfig
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.plots import family_accuracy_figure, split_loss_curves_figure
from vqa_demo.ui.tabs.compare import (
    chance_by_family,
    comparison_data,
    mcnemar_table,
    option_counts,
    summary_markdown,
    token_level,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
NAMES = [
    "cond_gen",
    "multi_class-last_token",
    "multi_class-attentive",
    "swag-last_token",
    "swag-attentive",
]
SHIPPED_ROWS = [*NAMES, "zero_shot"]  # the regenerated default also compares the untrained base


@pytest.fixture(scope="module")
def shipped():
    return AppAssets.load(AppConfig(assets=ASSETS))


def test_every_figure_comes_from_comparison_json(shipped, tmp_path):
    comparison = json.loads((ASSETS / "comparison.json").read_text())
    data = comparison_data(shipped)
    assert list(data["variants"]) == SHIPPED_ROWS
    for name, v in data["variants"].items():
        assert v.accuracy == comparison["variants"][name]["accuracy"]
        assert v.by_family == comparison["variants"][name]["by_family"]
    # Another metrics.json next to it changes nothing: the tab does not merge files.
    copy = tmp_path / "assets"
    (copy / "evaluation").mkdir(parents=True)
    (copy / "comparison.json").write_text(json.dumps(comparison))
    (copy / "evaluation" / "metrics.json").write_text(
        json.dumps({"variants": {"cond_gen": {"accuracy": comparison["variants"]["cond_gen"]["accuracy"]}}})
    )
    assert comparison_data(AppAssets.load(AppConfig(assets=copy)))["variants"] == data["variants"]
    (copy / "comparison.json").unlink()
    # without comparison.json, a run evaluated by the CLI is summarised by its evaluation/metrics.json
    assert list(comparison_data(AppAssets.load(AppConfig(assets=copy)))["variants"]) == ["cond_gen"]
    shutil.rmtree(copy / "evaluation")
    missing = AppAssets.load(AppConfig(assets=copy))
    assert comparison_data(missing)["variants"] == {}
    assert summary_markdown(comparison_data(missing), [], missing.notes).startswith("No comparison.json")


def test_plain_header_and_chance_marks(shipped):
    text = summary_markdown(comparison_data(shipped), option_counts(shipped))
    assert text.startswith("**300 validation examples**, 4 options each (chance 25%)")
    assert "split" not in text.split("\n")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "*chance level*" in rows["multi_class-last_token"] and "above" in rows["cond_gen"]
    assert "*chance level*" in rows["multi_class-attentive"]  # the same exact-test rule as the model card


def test_mcnemar_table_matches_a_recomputation_from_the_predictions(shipped):
    records = read_predictions(ASSETS / "evaluation" / "predictions.jsonl")
    table = mcnemar_table(comparison_data(shipped)["mcnemar"])
    assert len(table) == len(SHIPPED_ROWS) * (len(SHIPPED_ROWS) - 1) // 2  # every pair, zero_shot included
    for _, row in table.iterrows():
        correct = {
            n: [r["variants"][n]["choice"] == r["gold"] for r in records]
            for n in (row["variant A"], row["variant B"])
        }
        test = mcnemar_exact(correct[row["variant A"]], correct[row["variant B"]])
        assert (row["only A right"], row["only B right"]) == (test["b"], test["c"])
        p = test["p_value"]
        assert row["p-value"] == ("< 0.001" if p < 0.001 else f"{p:.3f}")
    cond_vs_swag = table[(table["variant A"] == "cond_gen") & (table["variant B"] == "swag-last_token")].iloc[
        0
    ]
    assert cond_vs_swag["reading"] == "no reliable difference"
    assert table.iloc[0]["reading"] == "differ: cond_gen is more accurate"


def test_holm_adjustment():
    # Sorted p = 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04); returned in input order.
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_per_family_chance_lines(shipped):
    counts = option_counts(shipped)
    chance = chance_by_family(counts)
    assert chance == {f: 0.25 for f in ("bar_chart", "clock", "pie_chart", "shapes", "table")}
    assert chance_by_family([("a", 2), ("a", 4), ("b", 3)]) == pytest.approx({"a": 0.375, "b": 1 / 3})
    data = comparison_data(shipped)
    fig = family_accuracy_figure({n: v.by_family for n, v in data["variants"].items()}, chance)
    lines = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert len(lines) == 5 and {s.y0 for s in lines} == {0.25}
    assert [t.name for t in fig.data][-1] == "chance"


def test_token_level_loss_gets_its_own_panel(shipped):
    assert [token_level(n) for n in NAMES] == [True, False, False, False, False]
    fig = split_loss_curves_figure(shipped.curves, ["cond_gen"], 0.25)
    loss_axes = {t.name: t.xaxis for t in fig.data if t.showlegend is not False and t.name in NAMES}
    assert loss_axes == {"cond_gen": "x2", **{n: "x" for n in NAMES[1:]}}
    accuracy = [t for t in fig.data if t.xaxis == "x3"]
    assert {t.name for t in accuracy} == {*NAMES, "chance (25%)"}


def test_compare_on_the_tiny_assets(app_assets):
    assets = AppAssets.load(app_assets.config)
    data = comparison_data(assets)
    assert list(data["variants"]) == NAMES and set(data["agreement"]["variants"]) == set(NAMES)
    assert len(mcnemar_table(data["mcnemar"])) == 10
    assert summary_markdown(data, option_counts(assets)).startswith("**12 validation examples**")
