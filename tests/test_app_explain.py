"""Explanations: heatmap painting and captum attributions through the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import OPTIONS, QUESTIONS
from vqa_demo.config import VARIANTS
from vqa_demo.explain.attribution import attribute
from vqa_demo.explain.heatmaps import colormap, heatmap_overlay


def test_heatmap_overlay_geometry_and_opacity():
    image = Image.new("RGB", (60, 40), (0, 128, 255))
    grid = np.zeros((4, 4), dtype=np.float32)
    grid[0, 3] = 1.0  # top-right patch
    plain = heatmap_overlay(image, grid, opacity=0.0)
    assert plain.size == (60, 40) and np.array_equal(np.asarray(plain), np.asarray(image))
    painted = np.asarray(heatmap_overlay(image, grid, opacity=1.0, nearest=True)).astype(int)
    assert np.array_equal(painted[2, 57], colormap(np.array(1.0)))  # the hot patch: the top colour
    assert np.array_equal(painted[37, 2], np.asarray(image)[37, 2])  # the cold corner: the picture
    assert heatmap_overlay(image, grid, min_side=120).size == (120, 80)
    assert heatmap_overlay(Image.new("RGB", (2000, 1000)), grid).size == (512, 256)
    with pytest.raises(ValueError, match="2-D"):
        heatmap_overlay(image, np.zeros(16))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_attribution_explains_the_predictors_own_score(tiny_predictor, images, variant):
    """The attributed function, at the input, is exactly the score the predictor reported."""
    predictions = tiny_predictor.predict_batch(images, QUESTIONS, OPTIONS, [variant])
    attributions = attribute(tiny_predictor, images, QUESTIONS, OPTIONS, variant, n_steps=4)
    for prediction, result in zip(predictions, attributions):
        p = prediction[variant]
        # COND_GEN: the decision rule's own score, the number that made the choice
        expected = p.option_scores[p.choice]
        assert result.target == p.choice
        assert result.score == pytest.approx(float(expected), abs=1e-4)
        assert result.pixel_map.shape == (20, 20) and np.isfinite(result.pixel_map).all()
        assert len(result.tokens) == len(result.token_scores) and result.tokens[0] == "<bos>"
        assert (result.suffix_start is not None) == (variant == "cond_gen")
        assert np.abs(result.pixel_map).sum() > 0 and np.abs(result.token_scores).sum() > 0


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency"])
@pytest.mark.parametrize("variant", ["cond_gen", "multi_class-attentive", "swag-last_token"])
def test_batched_and_unbatched_attributions_agree(tiny_predictor, images, variant, method):
    batched = attribute(tiny_predictor, images, QUESTIONS, OPTIONS, variant, method=method, n_steps=6)
    for i in range(len(images)):
        (alone,) = attribute(
            tiny_predictor,
            images[i : i + 1],
            QUESTIONS[i : i + 1],
            OPTIONS[i : i + 1],
            variant,
            method=method,
            n_steps=6,
        )
        assert alone.tokens == batched[i].tokens
        np.testing.assert_allclose(alone.pixel_map, batched[i].pixel_map, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(alone.token_scores, batched[i].token_scores, atol=1e-5, rtol=1e-4)


def test_integrated_gradients_are_complete_with_enough_steps(tiny_predictor, images):
    """Attributions add up to score(input) - score(baseline): the convergence delta shrinks with steps."""
    coarse = attribute(
        tiny_predictor, images[:1], QUESTIONS[:1], OPTIONS[:1], "multi_class-attentive", n_steps=4
    )[0]
    fine = attribute(
        tiny_predictor, images[:1], QUESTIONS[:1], OPTIONS[:1], "multi_class-attentive", n_steps=48
    )[0]
    assert abs(fine.convergence_delta) < 0.01
    assert abs(fine.convergence_delta) <= abs(coarse.convergence_delta) + 1e-6


def test_attribution_of_another_option_and_progress(tiny_predictor, images):
    fractions = []
    (result,) = attribute(
        tiny_predictor,
        images[:1],
        QUESTIONS[:1],
        OPTIONS[:1],
        "swag-attentive",
        targets=[2],
        n_steps=8,
        internal_batch_size=2,
        on_progress=fractions.append,
    )
    scores = tiny_predictor.predict(images[0], QUESTIONS[0], OPTIONS[0], ["swag-attentive"])["swag-attentive"]
    assert result.target == 2 and result.score == pytest.approx(float(scores.option_scores[2]), abs=1e-4)
    # 8 steps in chunks of 2 rows: four chunks, then captum's two passes for the convergence delta.
    assert fractions[:4] == [0.25, 0.5, 0.75, 1.0] and max(fractions) == 1.0


def test_attribution_refuses_what_the_predictor_refuses(tiny_predictor, images):
    with pytest.raises(ValueError, match="trained for exactly 4 options"):
        attribute(tiny_predictor, images[:1], QUESTIONS[:1], [["a", "b"]], "multi_class-last_token")
    with pytest.raises(ValueError, match="method must be one of"):
        attribute(tiny_predictor, images[:1], QUESTIONS[:1], OPTIONS[:1], "cond_gen", method="lime")
