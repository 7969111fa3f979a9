"""Errors tab callbacks: a fake predictor for the wiring, the tiny model for the explanations."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from tests.app_support import FakePredictor
from tests.test_ui_error_data import RECORDS, THREE
from vqa_demo.model.forward import image_features
from vqa_demo.prediction import attention_map
from vqa_demo.ui import AppConfig
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.explain_panels import TOLERANCE
from vqa_demo.ui.explain_render import VIEWS, Scale, pooling_explanation
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.tabs.ask import MAX_OPTIONS
from vqa_demo.ui.tabs.error_browser import ErrorBrowser
from vqa_demo.ui.tabs.error_data import ALL_FAMILIES, ANY_POSITION, MISSED_BY_ANY


def browser_for(records, tmp_path, predictor=None):
    (tmp_path / "validation").mkdir()
    for r in records:
        Image.new("RGB", (32, 32), (40 * r["index"], 90, 160)).save(tmp_path / "validation" / r["file_name"])
    assets = AppAssets(AppConfig(assets=tmp_path), records=records)
    holder = PredictorHolder(predictor=predictor or FakePredictor(THREE))
    return ErrorBrowser(holder, assets, tmp_path / "exports")


@pytest.fixture
def browser(tmp_path):
    (tmp_path / "exports").mkdir()
    return browser_for(RECORDS, tmp_path)


def test_filter_builds_table_gallery_and_confusion(browser):
    table, gallery, rows, ranked, caption, download, confusion = browser.filter(
        list(THREE), ALL_FAMILIES, ANY_POSITION, 0, 1, False, MISSED_BY_ANY
    )
    assert list(table["#"]) == [0, 1, 2] and ranked == [0, 1, 2]
    assert table["image"][0].startswith("![#0](data:image/png;base64,")
    assert table["gold"][0] == "A) w" and "cond_gen → B) x (90%)" in table.iloc[0, 5]
    assert gallery[0][0].endswith("img_0.png") and "chose B) x (90%)" in gallery[0][1]
    assert "**3** of 4 validation examples" in caption and download["interactive"]
    assert np.asarray(confusion.data[0].z).shape == (4, 4)
    _, _, rows, _, caption, download, _ = browser.filter(
        [], ALL_FAMILIES, ANY_POSITION, 0, 1, False, MISSED_BY_ANY
    )
    assert rows == [] and "Tick at least one variant" in caption and not download["interactive"]


def test_variant_labels_mark_chance_level(browser):
    labels = {name: label for label, name in browser.variant_choices}
    # Exact binomial tests over 4 examples against 25%: even 3 of 4 right has p = 0.051, so every
    # variant is at chance level here, and then all of them start selected.
    assert labels["multi_class-last_token"] == "multi_class-last_token · 25% · chance level"
    assert labels["swag-attentive"] == "swag-attentive · 50% · chance level"
    assert labels["cond_gen"] == "cond_gen · 75% · chance level"
    assert browser.default_variants == list(THREE)


def test_select_shows_stored_answers_then_one_live_run(browser):
    table, *_ = browser.filter(list(THREE), ALL_FAMILIES, ANY_POSITION, 0, 1, False, MISSED_BY_ANY)
    select = gr.SelectData(None, {"index": [0, 3], "value": "q", "row_value": list(table.iloc[0])})
    sample, image, details, chart, dropdown, open_button = browser.pick_row(list(THREE), select)
    assert sample["index"] == 0 and image.size == (32, 32) and open_button["interactive"]
    assert "A) w ✓ **gold**" in details and "question 0?" in details
    assert dropdown["choices"] == list(THREE) and dropdown["value"] == "swag-attentive"  # attentive first
    assert [trace.name for trace in chart.data] == list(THREE)
    fake = browser.holder.get()
    run, status, *views = browser.rerun.live(sample, "swag-attentive", 0.5)
    assert status.startswith("✓") and len(fake.calls) == 1 and fake.calls[0][3] == list(THREE)
    gold_image, _, gold_caption, chosen_image, chosen_tokens, chosen_caption, legend = views[:7]
    # The fake's attentive heads pool one prompt, so one heatmap serves both sides.
    assert gold_image is chosen_image and "the same weights serve both" in gold_caption
    assert (
        isinstance(chosen_image, Image.Image) and chosen_tokens and "swag-attentive chose" in chosen_caption
    )
    # Token chips and one legend, as in the Ask tab.
    assert "class='heat-tokens'" in chosen_tokens and legend.count("class='heat-legend'") == 2
    assert views[7:] == [None, "", "", None, "", "", ""]  # a new example clears the attributions
    assert browser.rerun.render(run, "cond_gen", 0.5)[2].startswith("**Gold: A) w**")


def test_gallery_selection_uses_the_confidence_order(browser):
    select = gr.SelectData(None, {"index": 1, "value": None})
    sample, *_ = browser.pick_gallery([2, 0, 1], ["cond_gen"], select)
    assert sample == {"index": 0, "variants": ["cond_gen"], "variant": "cond_gen"}


def test_open_in_ask_fills_the_form_and_switches_tab(browser):
    sample, *_ = browser.show(1, ["cond_gen", "swag-attentive"])
    values = browser.open_in_ask(sample, lambda name: f"about {name}")
    image, question, k, *rest = values
    rows, ticks, (status, tabs) = rest[:MAX_OPTIONS], rest[MAX_OPTIONS:-2], rest[-2:]
    assert image.endswith("validation/img_1.png") and question == "question 1?" and k == 4
    assert [r["value"] for r in rows] == ["w", "x", "y", "z", "", "", "", ""]
    assert [r["visible"] for r in rows] == [True] * 4 + [False] * 4
    names = browser.holder.names
    assert [t["value"] for t in ticks] == [n in ("cond_gen", "swag-attentive") for n in names]
    assert "#1" in status and "C) y" in status and tabs.selected == "ask"
    assert browser.open_in_ask(None)[-2].startswith("⚠")


def test_refuses_images_outside_the_validation_folder(browser, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    browser.by_index[0] = {**browser.by_index[0], "file_name": "../secret.png"}
    run, status, *_ = browser.rerun.live({"index": 0, "variants": list(THREE)}, "cond_gen", 0.5)
    assert run is None and "not in the validation folder" in status
    assert browser.image_path("../secret.png") is None
    assert browser.assets.validation_image("../secret.png") is None
    assert browser.assets.validation_image(str(tmp_path / "secret.png")) is None


# -- the tiny model -------------------------------------------------------------------------------


def reference_row_weights(predictor, record, image, name, option):
    """Pooling weights of ``option``'s SWAG row from a full K-row forward (not the app's code path)."""
    variant = predictor.variants[name]
    with torch.no_grad(), predictor.activate(variant):
        features = image_features(predictor.backbone.core, predictor.pixel_values([image]))
        out = variant.strategy.classifier_scores(
            predictor.context(variant), [record["question"]], [list(record["options"])], features
        )
    backbone = predictor.backbone
    ids, weights = out.rows.input_ids[option], out.weights[option]
    return attention_map(ids, weights, backbone.processor.image_token_id, backbone.tokenizer, "chosen option")


def test_swag_gold_row_weights_equal_the_full_forward(tiny_errors):
    record = next(r for r in tiny_errors.records if r["variants"]["swag-attentive"]["choice"] != r["gold"])
    sample, *_ = tiny_errors.show(record["index"], ["swag-attentive", "cond_gen"])
    assert sample["variant"] == "swag-attentive"
    run, status, *views = tiny_errors.rerun.live(sample, "swag-attentive", 0.5)
    assert status.startswith("✓"), status
    predictor = tiny_errors.holder.get()
    image = tiny_errors.assets.validation_image(record["file_name"])
    prediction = run.predictions["swag-attentive"]
    assert prediction.choice != record["gold"]  # the stored mistake reproduces live
    for option, attention in (
        (record["gold"], run.gold_attention["swag-attentive"]),
        (prediction.choice, prediction.attention),
    ):
        reference = reference_row_weights(predictor, record, image, "swag-attentive", option)
        np.testing.assert_allclose(attention.image_grid, reference.image_grid, atol=1e-5)
        assert attention.tokens == reference.tokens
    gold_image, gold_tokens, gold_caption, chosen_image, chosen_tokens, chosen_caption, legend = views[:7]
    assert isinstance(gold_image, Image.Image) and isinstance(chosen_image, Image.Image)
    assert "gold option's row" in gold_caption and "chosen option's row" in chosen_caption
    assert "(row: gold option)" in gold_caption and "(row: chosen option)" not in gold_caption
    # One shared scale: the legend's peaks are the larger of the two sides' own.
    explanations = [
        pooling_explanation(a) for a in (run.gold_attention["swag-attentive"], prediction.attention)
    ]
    scale = Scale.over(explanations)
    assert scale.image == max(e.image_peak for e in explanations) and f"{scale.image:.3g}</span>" in legend
    assert f"{scale.tokens:.3g}</span>" in legend and legend.count("class='heat-legend'") == 2
    assert "heat-tokens" in gold_tokens and "heat-tokens" in chosen_tokens
    assert np.abs(np.asarray(gold_image, float) - np.asarray(chosen_image, float)).max() > 0


def test_attribution_of_both_options_on_demand(tiny_errors):
    record = next(r for r in tiny_errors.records if r["variants"]["cond_gen"]["choice"] != r["gold"])
    sample, *_ = tiny_errors.show(record["index"], ["cond_gen"])
    run, *_ = tiny_errors.rerun.live(sample, "cond_gen", 0.5)
    gold_image, gold_tokens, gold_caption, chosen_image, _, chosen_caption, legend, kept = (
        tiny_errors.rerun.attribute(run, "cond_gen", "Saliency (gradient)", 4, 0.5)
    )
    options = record["options"]
    choice = run.predictions["cond_gen"].choice
    assert isinstance(gold_image, Image.Image) and isinstance(chosen_image, Image.Image) and gold_tokens
    assert f"{options[record['gold']]}" in gold_caption and f"{options[choice]}" in chosen_caption
    # The score attributed is the one COND_GEN decided by (its rule's score of each option), as the live
    # run reports it.
    loglik = run.predictions["cond_gen"].option_scores
    assert f"({loglik[record['gold']]:.3f})" in gold_caption and f"({loglik[choice]:.3f})" in chosen_caption
    # One colour scale for both sides, shown once: the legend, not the captions, states the numbers.
    assert "class='heat-legend'" in legend and "heat-legend" not in gold_caption + chosen_caption
    repainted = tiny_errors.rerun.repaint(kept, 0.5, VIEWS[1])  # the smooth view, no model call
    assert isinstance(repainted[0], Image.Image) and "heat-legend" in repainted[-1]
    # Integrated gradients raise their steps as the Ask tab does (from 4, while incomplete), and the
    # scale is signed.
    *_, gold_ig, _, _, chosen_ig, legend_ig, (_, attributions, _) = tiny_errors.rerun.attribute(
        run, "cond_gen", "Integrated gradients", 4, 0.5
    )
    assert "Completeness:" in gold_ig and "Completeness:" in chosen_ig
    assert all(a.n_steps > 4 or a.relative_error <= TOLERANCE for a in attributions)
    assert any(a.n_steps > 4 for a in attributions) and f"at {attributions[0].n_steps} steps" in gold_ig
    assert "−" in legend_ig and "Red" in legend_ig
