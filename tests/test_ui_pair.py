"""One Errors example under two variants on one scale, on the tiny model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from vqa_demo.ui.explain_render import Scale, pooling_explanation
from vqa_demo.ui.tabs.error_pair import ATTRIBUTION, POOLING, pair_views

ATTENTIVE = "swag-attentive"


@pytest.fixture(scope="module")
def run(tiny_errors):
    record = next(r for r in tiny_errors.records if r["variants"]["cond_gen"]["choice"] != r["gold"])
    sample, *_ = tiny_errors.show(record["index"], sorted(record["variants"]))
    run, status, *_ = tiny_errors.rerun.live(sample, sample["variant"], 0.5)
    assert status.startswith("✓"), status
    return run


def with_a_second_attentive_head(run):
    """The run plus ``twin``: swag-attentive's prediction with its image weights squared and renormalised
    (a sharper map of the same head), so the two sides differ and their peaks do too."""
    prediction = run.predictions[ATTENTIVE]
    grid = prediction.attention.image_grid**2
    attention = dataclasses.replace(
        prediction.attention, image_grid=grid / grid.sum() * prediction.attention.image_grid.sum()
    )
    twin = dataclasses.replace(prediction, attention=attention)
    return dataclasses.replace(run, predictions={**run.predictions, "twin": twin})


def test_the_dropdowns_offer_the_variants_that_answered(tiny_errors, run):
    first, second, *views, kept = tiny_errors.pair.choices(run)
    assert first["choices"] == second["choices"] == list(run.predictions)
    assert first["value"] != second["value"] and kept is None


def test_pooling_weights_of_two_variants_share_one_scale(tiny_errors, run):
    record_run = with_a_second_attentive_head(run)
    *views, kept = tiny_errors.pair.show(
        record_run, ATTENTIVE, "twin", POOLING, "Saliency (gradient)", 16, 0.5
    )
    left, _, left_caption, right, _, right_caption, legend = views
    assert isinstance(left, Image.Image) and isinstance(right, Image.Image)
    assert left_caption.startswith(f"**{ATTENTIVE}** chose") and right_caption.startswith("**twin** chose")
    explanations = [pooling_explanation(record_run.predictions[n].attention) for n in (ATTENTIVE, "twin")]
    scale = Scale.over(explanations)
    assert scale.image == max(e.image_peak for e in explanations) and f"{scale.image:.3g}</span>" in legend
    assert np.abs(np.asarray(left, float) - np.asarray(right, float)).max() > 0
    assert kept == (POOLING, [ATTENTIVE, "twin"])
    # A repaint at another opacity needs no model: the same legend, another picture.
    repainted = pair_views(kept, record_run, 1.0, "Patch grid")
    assert (
        repainted[6] == legend and np.abs(np.asarray(repainted[0], float) - np.asarray(left, float)).max() > 0
    )


def test_a_head_without_pooling_weights_says_what_to_do(tiny_errors, run):
    *views, kept = tiny_errors.pair.show(run, "cond_gen", ATTENTIVE, POOLING, "Saliency (gradient)", 16, 0.5)
    assert views[0] is None and "cond_gen has no pooling weights" in views[2] and ATTRIBUTION in views[2]
    assert kept == (POOLING, ["cond_gen", ATTENTIVE])


def test_attributions_of_the_gold_option_for_both_variants(tiny_errors, run):
    *views, kept = tiny_errors.pair.show(
        run, "cond_gen", ATTENTIVE, ATTRIBUTION, "Saliency (gradient)", 16, 0.5
    )
    left, _, left_caption, right, _, right_caption, legend = views
    assert isinstance(left, Image.Image) and isinstance(right, Image.Image), views
    reading, (result, attributions, grid, names) = kept
    assert reading == ATTRIBUTION and names == ["cond_gen", ATTENTIVE]
    assert [a.variant for a in attributions] == names and {a.target for a in attributions} == {run.gold}
    assert "**cond_gen**" in left_caption and f"**{ATTENTIVE}**" in right_caption
    gold = f"**{'ABCDEFGH'[run.gold]})"  # both attribute the gold option, which their captions name
    assert gold in left_caption and gold in right_caption
    assert legend.count("class='heat-legend'") == 2  # one legend (image and tokens) reads both sides


@pytest.mark.parametrize(
    "first, second, fragment",
    [
        ("cond_gen", "cond_gen", "two different"),
        ("cond_gen", "nowhere", "answered this example"),
        (None, None, "answered"),
    ],
)
def test_bad_pairs_get_a_sentence(tiny_errors, run, first, second, fragment):
    *views, kept = tiny_errors.pair.show(run, first, second, POOLING, "Saliency (gradient)", 16, 0.5)
    assert views[2].startswith("⚠") and fragment in views[2] and kept is None


def test_no_example_asks_for_one(tiny_errors):
    *views, kept = tiny_errors.pair.show(None, "a", "b", POOLING, "Saliency (gradient)", 16, 0.5)
    assert "Select an example" in views[2] and kept is None
