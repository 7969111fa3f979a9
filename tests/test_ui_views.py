"""The app's views without a browser: a small /config, linked-view sets, checked URL state, Compare charts.

Every count a test expects is recomputed from the tiny assets' ``predictions.jsonl`` and
``comparison.json``, never written down.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.app_support import FakePredictor, launch
from vqa_demo.ui import build_demo
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.plots import PALETTE, RUN_PALETTE, backbone_accuracy_figure, position_figure
from vqa_demo.ui.plots_calibration import NO_CALIBRATION, reliability_figure
from vqa_demo.ui.tabs.error_browser import ErrorBrowser
from vqa_demo.ui.tabs.error_data import ALL_FAMILIES, family_of, labelled, variant_names
from vqa_demo.ui.tabs.error_links import chart_link, mcnemar_cell_link
from vqa_demo.ui.url_state import read_view

CONFIG_LIMIT_BYTES = 300 * 1024


@pytest.fixture(scope="module")
def browser_data(app_assets):
    holder = PredictorHolder(predictor=FakePredictor())
    from vqa_demo.ui.assets import AppAssets

    return ErrorBrowser(holder, AppAssets.load(app_assets.config))


def test_config_holds_no_error_rows_and_stays_small(app_assets):
    """/config from the real server on loopback: under the bound, and the Errors rows are not in it."""
    demo = build_demo(app_assets.config, holder=PredictorHolder(predictor=FakePredictor()))
    url = launch(demo, app_assets.config).rstrip("/")
    try:
        body = httpx.get(url + "/config", timeout=60).content
    finally:
        demo.close()
    config = json.loads(body)
    assert len(body) < CONFIG_LIMIT_BYTES, len(body)
    values = {c["props"].get("elem_id"): c["props"].get("value") for c in config["components"]}
    table = values["errors-table"] or {}
    assert not (table.get("data") or []) or table["data"] == [[]] * len(table["data"])
    assert "data:image/png;base64" not in body.decode()  # no thumbnail travels with the config
    for chart in ("compare-accuracy", "compare-family", "compare-reliability", "errors-confusion"):
        assert values[chart] is None, chart


def test_lazy_values_fill_once_per_page(browser_data):
    from vqa_demo.ui.lazy import LazyValues

    lazy = LazyValues(lambda: list(browser_data.initial()))
    for _ in range(7):
        lazy.components.append(None)
    first = lazy.fill(False)
    assert first[0] is True and len(first[3]) > 0 and "data:image/png" in first[1].iloc[0, 0]
    assert lazy.fill(True)[1:] == [{"__type__": "update"}] * 7  # sent once per page
    assert lazy.fill_when("errors")("compare", False)[1:] == [{"__type__": "update"}] * 7


def test_linked_sets_match_the_clicked_numbers(browser_data):
    records = browser_data.records
    names = variant_names(records)
    # McNemar: "only A right" is the examples A got right and B wrong.
    a, b = names[0], names[1]
    link = mcnemar_cell_link(records, [a, b, 0, 0, "1", "1", ""], 2)
    expected = {
        r["index"]
        for r in labelled(records)
        if r["variants"][a]["choice"] == r["gold"] and r["variants"][b]["choice"] != r["gold"]
    }
    assert link.indices == expected and link.variants == (b,)
    rows = browser_data.filter(list(link.variants), ALL_FAMILIES, "any position", 0, 1, False,
                               "any selected variant", link.as_state())[2]  # fmt: skip
    assert {r["#"] for r in rows} == expected
    # A confusion cell off the diagonal: gold A, chose B, among the ticked variants.
    request = json.dumps({"chart": "confusion", "x": "chose B", "y": "gold A"})
    link = chart_link(records, request, names, ALL_FAMILIES)
    assert link.indices == {
        r["index"]
        for r in labelled(records)
        if r["gold"] == 0 and any(r["variants"][n]["choice"] == 1 for n in names)
    }
    # A per-family bar: that variant's mistakes in that family.
    family = sorted({family_of(r) for r in records})[-1]
    link = chart_link(
        records, json.dumps({"chart": "family", "variant": a, "family": family}), names, ALL_FAMILIES
    )
    assert link.indices == {
        r["index"]
        for r in labelled(records)
        if family_of(r) == family and r["variants"][a]["choice"] != r["gold"]
    }


@pytest.mark.parametrize(
    "request_text",
    [
        "", "not json", "[]", json.dumps({"chart": "confusion", "x": "chose Z", "y": "gold A"}),
        json.dumps({"chart": "confusion", "x": "chose A", "y": "gold A"}),  # the diagonal: right answers
        json.dumps({"chart": "family", "variant": "<img src=x onerror=alert(1)>", "family": "x"}),
        json.dumps({"chart": "other"}), "{" * 5000,
    ],
)  # fmt: skip
def test_bad_link_requests_give_a_sentence(browser_data, request_text):
    outcome = chart_link(
        browser_data.records, request_text, variant_names(browser_data.records), ALL_FAMILIES
    )
    assert isinstance(outcome, str) and outcome.endswith(".") and "<img" not in outcome


def test_url_view_is_checked(browser_data):
    examples = {r["index"] for r in browser_data.records}
    names = variant_names(browser_data.records)
    some = sorted(examples)[1]
    view = read_view(f"?tab=errors&example={some}&variant={names[-1]}", examples, names)
    assert (view.tab, view.example, view.variant, view.notes) == ("errors", some, names[-1], [])
    assert read_view("?tab=compare", examples, names).tab == "compare"
    hostile = [
        "?tab=<script>alert(1)</script>", "?example=99999999999999", "?example=-1", "?example=1e3",
        "?example=%EF%BC%91", "?variant=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "?tab=" + "a" * 5000,
    ]  # fmt: skip
    for query in hostile:
        view = read_view(query, examples, names)
        assert view.example is None and view.variant is None and view.tab in (None,)
        assert view.notes and all("<" not in n and "alert" not in n for n in view.notes), query


def test_reliability_figure_per_variant_or_says_there_is_none(app_assets):
    comparison = json.loads((app_assets.config.assets / "comparison.json").read_text())
    served = {
        name: v["calibration"]["served"]
        for name, v in comparison["variants"].items()
        if (v.get("calibration") or {}).get("served")
    }
    fig = reliability_figure(comparison)
    if served:
        titles = " ".join(a.text for a in fig.layout.annotations)
        assert all(name in titles for name in served)
        assert sum(t.type == "bar" for t in fig.data) == len(served)
    stripped = {
        **comparison,
        "variants": {n: {**v, "calibration": None} for n, v in comparison["variants"].items()},
    }
    empty = reliability_figure(stripped)
    assert NO_CALIBRATION in empty.layout.annotations[0].text and not empty.data


def test_reliability_figure_draws_every_served_table():
    bins = [{"bin_low": i / 10, "bin_high": (i + 1) / 10, "count": i % 3, "accuracy": 0.5, "mean_confidence": i / 10 + 0.05}
            for i in range(10)]  # fmt: skip
    served = {
        "served": {
            "ece_before": 0.2,
            "ece_after": 0.05,
            "reliability_before": bins,
            "reliability_after": bins,
        }
    }
    fig = reliability_figure(
        {"variants": {"cond_gen": {"calibration": served}, "swag-attentive": {"calibration": served}}}
    )
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 2 and len(bars[0].x) == sum(1 for b in bins if b["count"])
    assert "ECE 0.200 → 0.050" in " ".join(a.text for a in fig.layout.annotations)


def test_chance_lines_and_run_colours():
    position = {
        "cond_gen": {
            "accuracy_by_gold_position": [{"position": "A", "accuracy": 0.5, "low": 0.3, "high": 0.7, "n": 9}]
        }
    }
    fig = position_figure(position, 0.25)
    assert any(s.y0 == 0.25 and s.line.dash == "dot" for s in fig.layout.shapes)
    assert any(t.name == "chance (25%)" for t in fig.data)
    runs = {"run one": {"cond_gen": {"accuracy": 0.6, "low": 0.5, "high": 0.7, "n": 20}},
            "run two": {"cond_gen": {"accuracy": 0.4, "low": 0.3, "high": 0.5, "n": 20}}}  # fmt: skip
    fig = backbone_accuracy_figure(runs, ["cond_gen"], chances={"run one": 0.25, "run two": 0.2})
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.2, 0.25]
    bars = [t for t in fig.data if t.type == "bar"]
    assert all(b.marker.color not in PALETTE and b.marker.pattern.shape for b in bars)

    def rgb(colour):
        return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]

    # Every run colour is far from every variant colour (Euclidean distance in RGB).
    for run in RUN_PALETTE:
        for variant in PALETTE:
            assert sum((x - y) ** 2 for x, y in zip(rgb(run), rgb(variant))) ** 0.5 > 60, (run, variant)


def test_a_page_load_without_a_link_fills_every_live_output(app_assets):
    """The load event that answers a linked example returns one value per output it is wired to,
    also when the address names no example (every plain page load)."""
    demo = build_demo(app_assets.config, holder=PredictorHolder(predictor=FakePredictor()))
    [block] = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "live_if_opened"]
    assert len(block.outputs) > 0
    assert len(block.fn("", None, None, 0.8)) == len(block.outputs)
    assert len(block.fn("errors", None, None, 0.8)) == len(block.outputs)
