"""UI callbacks against the tiny model loaded from a complete tiny assets folder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vqa_demo.ui.answer_api import answer_inputs
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.tabs.ask import MAX_OPTIONS, AskCallbacks
from vqa_demo.ui.tabs.explain import ExplainCallbacks

NAMES = ["cond_gen", "multi_class-last_token", "multi_class-attentive", "swag-last_token", "swag-attentive"]


@pytest.fixture(scope="module")
def app(app_assets):
    config = app_assets.config
    holder = PredictorHolder(loader=app_assets.load_predictor, checkpoints=config.checkpoints)
    return holder, AppAssets.load(config), config


def form(options, ticks=None):
    return answer_inputs(None, None, options, ticks or [True] * len(NAMES))[2:]


def test_assets_are_found(app):
    holder, assets, config = app
    assert holder.names == NAMES and not holder.loaded
    assert len(assets.records) == 12 and set(assets.variant_names) == set(NAMES)
    assert {e.image_path.parent for e in assets.examples} == {config.examples_dir}
    assert all(e.question and len(e.options) == 4 for e in assets.examples)
    assert set(assets.curves) == set(NAMES) and assets.notes == []
    assert config.launch_kwargs()["allowed_paths"] == [str(config.examples_dir), str(config.validation_dir)]


def test_answer_and_explain_with_the_tiny_model(app):
    holder, assets, config = app
    ask = AskCallbacks(holder, config, assets.examples)
    image_path, question, count, *updates = ask.pick_example(0)
    options = [u["value"] for u in updates[:MAX_OPTIONS]][:count]
    status, table, chart, cond_gen, raw, result = ask.answer(image_path, question, *form(options))
    assert status.startswith("✓") and holder.loaded
    assert list(raw) == NAMES and list(table["variant"]) == NAMES
    for name in NAMES:
        assert raw[name]["answer"] in options and np.isclose(sum(raw[name]["probabilities"]), 1.0)
    assert "log-lik" in cond_gen and len(chart.data) == 5

    explain = ExplainCallbacks(holder)
    picker, heatmap, tokens, *_ = explain.refresh(result, 0.6)
    assert picker["choices"] == [(n, n) for n in ["multi_class-attentive", "swag-attentive"]]
    assert isinstance(heatmap, Image.Image) and ">&lt;bos&gt;<" in tokens
    for variant, method in [("cond_gen", "Integrated gradients"), ("swag-attentive", "Saliency (gradient)")]:
        image, chips, caption, (attribution, grid) = explain.attribute(result, variant, method, 4, 0.5)
        assert isinstance(image, Image.Image), caption
        assert variant in caption and chips.count("<span") > 5 and attribution.variant == variant
        # One patch per image token, square, over the whole input.
        assert grid.rows == grid.cols and grid.rows * grid.cols == holder.get().backbone.image_seq_length
        assert (grid.height, grid.width) == attribution.pixel_map.shape
    # COND_GEN's attribution includes the scored answer tokens, after a marker.
    assert "scored answer" in explain.attribute(result, "cond_gen", "Integrated gradients", 4, 0.5)[1]


def test_three_options_skip_multi_class(app, app_assets):
    holder, assets, config = app
    ask = AskCallbacks(holder, config)
    example = assets.validation[0]
    ticks = [info.incompatibility(3) is None for info in holder.infos]
    status, table, *_, raw, _ = ask.answer(
        str(example.image_path), example.question, *form(list(example.options[:3]), ticks)
    )
    assert status.startswith("✓") and list(raw) == ["cond_gen", "swag-last_token", "swag-attentive"]
