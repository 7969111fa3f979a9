"""The attribution heatmap's patches where a family's rows hold no image tokens (BLIP, ViLT).

The patch grid is the vision tower's own. References: transformers' patch embeddings (BLIP's ViT
embeddings, one state per patch after its ``[CLS]``; ViLT's ``visual_embed``, whose pixel mask marks
the real patches of the processor's padded batch) and the attribution's own pixel map (a patch sums
its pixels, so integrated gradients' completeness survives the grid). Rendering goes through the
app's Explain callbacks and predictor holder.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vqa_demo.model.backbone import build_tiny_backbone
from vqa_demo.testing import random_variant_predictor
from vqa_demo.ui import AppConfig
from vqa_demo.ui.answer_api import answer_inputs
from vqa_demo.ui.explain_render import VIEWS, attribution_explanation, patch_grid
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.tabs.ask import AskCallbacks
from vqa_demo.ui.tabs.error_explain import attribute_both, live_run
from vqa_demo.ui.tabs.explain import ExplainCallbacks

QUESTION = "What colour is the circle?"
OPTIONS = ["red", "blue and green", "3", "yes"]
VARIANT = "swag-attentive"  # runs on both families
# Landscape and portrait: ViLT keeps the aspect ratio, so each sits padded on its canvas.
SHAPES = [(30, 40), (48, 24)]


def random_image(height: int, width: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


IMAGES = [random_image(h, w, seed) for seed, (h, w) in enumerate(SHAPES)]


@pytest.fixture(scope="module", params=["tiny:blip", "tiny:vilt"])
def predictor(request):
    backbone = build_tiny_backbone(source=request.param)
    return random_variant_predictor(backbone, variants=[VARIANT, "multi_class-attentive"])


def reference_grids(backbone, images) -> list[tuple[int, int]]:
    """``(rows, cols)`` of each image's patches as transformers' own patch embedding lays them out."""
    core = backbone.core
    with torch.no_grad():
        if backbone.family.name == "blip":
            pixels = backbone.processor.image_processor(images, return_tensors="pt")["pixel_values"]
            patches = core.vision_model.embeddings(pixels).shape[1] - 1  # after the image [CLS]
            side = core.config.vision_config.image_size // core.config.vision_config.patch_size
            assert side * side == patches
            return [(side, side)] * len(images)
        # ViLT: the processor pads the batch and masks the padding; visual_embed keeps the real patches.
        inputs = backbone.processor.image_processor(images, return_tensors="pt")
        _, mask, (index, _) = core.vilt.embeddings.visual_embed(
            inputs["pixel_values"], inputs["pixel_mask"], max_image_length=-1
        )
    grids = []
    for b in range(len(images)):
        real = index[b][mask[b, 1:] == 1]  # mask[:, 0] is the image [CLS]
        rows, cols = int(real[:, 0].max()) + 1, int(real[:, 1].max()) + 1
        assert len(real) == rows * cols
        grids.append((rows, cols))
    return grids


def test_the_patch_grid_is_the_vision_towers_own(predictor):
    backbone = predictor.backbone
    assert backbone.image_seq_length == 0  # no image tokens to take a grid from
    inputs = backbone.pixel_values(IMAGES)
    for pixels, expected in zip(inputs, reference_grids(backbone, IMAGES)):
        grid = backbone.patch_grid(pixels)
        assert (grid.rows, grid.cols) == expected
        assert grid.height <= pixels.shape[-2] and grid.width <= pixels.shape[-1]
    if backbone.family.name == "vilt":  # the canvas is padded beyond the image's patches
        grids = [backbone.patch_grid(pixels) for pixels in inputs]
        assert all(g.height * g.width < inputs.shape[-2] * inputs.shape[-1] for g in grids)
        assert grids[0].cols > grids[0].rows and grids[1].rows > grids[1].cols


def answered_in_the_app(predictor, tmp_path, image: Image.Image):
    """``(holder, AskResult)`` of the Ask tab answering with :data:`VARIANT` through the app's holder."""
    image_file = tmp_path / "picture.png"
    image.save(image_file)
    holder = PredictorHolder(predictor=predictor)
    ask = AskCallbacks(holder, AppConfig(assets=tmp_path))
    ticks = [name == VARIANT for name in holder.names]
    *_, result = ask.answer(str(image_file), QUESTION, *answer_inputs(None, None, OPTIONS, ticks)[2:])
    assert list(result.predictions) == [VARIANT]
    return holder, result


@pytest.mark.parametrize("image", IMAGES, ids=["landscape", "portrait"])
def test_integrated_gradients_on_the_patch_grid_keep_completeness(predictor, tmp_path, image):
    """The Explain panel paints the vision tower's patches; each patch sums its pixels' signed
    attributions, so the grid adds up to the whole pixel map (padding holds none), and the smooth
    view is per pixel times the pixels of one patch (not of the whole image), on the same scale."""
    holder, result = answered_in_the_app(predictor, tmp_path, image)
    explain = ExplainCallbacks(holder)
    painted, chips, caption, stored = explain.attribute(result, VARIANT, "Integrated gradients", 8, 0.5)
    attribution, grid = stored
    assert isinstance(painted, Image.Image), caption
    assert grid == predictor.backbone.patch_grid(result.image.pixel_values)
    assert "attribution per image patch" in caption and "attribution per text token" in caption

    pixel_map = attribution.pixel_map
    signed = patch_grid(pixel_map, grid, "sum")
    assert signed.shape == (grid.rows, grid.cols)
    assert np.isclose(signed.sum(), pixel_map.sum(), rtol=1e-4, atol=1e-6)
    assert np.abs(signed).max() > 0
    explanation = attribution_explanation(attribution, grid, VIEWS[0])
    assert explanation.signed
    np.testing.assert_allclose(explanation.image, signed, rtol=1e-6)

    smooth = attribution_explanation(attribution, grid, VIEWS[1]).image
    assert smooth.shape == (grid.height, grid.width)  # ViLT: the canvas padding is cut off
    blocks = smooth.reshape(grid.rows, grid.patch_height, grid.cols, grid.patch_width)
    # A patch's mean smooth value is its summed signed attribution: its grid value.
    np.testing.assert_allclose(blocks.mean(axis=(1, 3)), signed, rtol=1e-4, atol=1e-7)

    repainted, _, legend = explain.repaint_attribution(result, stored, 0.5, VIEWS[1])
    assert isinstance(repainted, Image.Image) and "per image patch" in legend


def test_saliency_gets_the_patch_grid_too(predictor, tmp_path):
    holder, result = answered_in_the_app(predictor, tmp_path, IMAGES[0])
    explain = ExplainCallbacks(holder)
    _, _, caption, (attribution, grid) = explain.attribute(result, VARIANT, "Saliency (gradient)", 8, 0.5)
    explanation = attribution_explanation(attribution, grid, VIEWS[0])
    assert explanation.image.shape == (grid.rows, grid.cols) and explanation.image.max() > 0
    assert "gradient norm per image patch" in caption and "gradient norm per text token" in caption
    region = attribution.pixel_map[: grid.height, : grid.width]
    assert np.isclose(np.sqrt((explanation.image.astype(np.float64) ** 2).sum()), np.linalg.norm(region))


def test_the_errors_tab_attributes_both_options_on_the_patch_grid(predictor):
    """The Errors tab's gold-versus-chosen attributions are painted on the same patches."""
    (answered,) = predictor.predict_batch(IMAGES[1:], [QUESTION], [OPTIONS], [VARIANT])
    gold = (answered[VARIANT].choice + 1) % len(OPTIONS)  # a wrong answer: two attributions
    record = {"index": 0, "question": QUESTION, "options": OPTIONS, "gold": gold}
    run = live_run(predictor, record, IMAGES[1], [VARIANT])
    *views, (_, attributions, grid) = attribute_both(predictor, run, VARIANT, "integrated_gradients", 8, 0.5)
    gold_image, _, gold_caption, chosen_image, _, chosen_caption, legend = views
    assert isinstance(gold_image, Image.Image) and isinstance(chosen_image, Image.Image)
    assert "Attribution of" in gold_caption and "Attribution of" in chosen_caption
    assert "attribution per image patch" in legend and "attribution per text token" in legend
    # One image scale for both sides: the larger of the two patch grids' peaks.
    peak = max(np.abs(patch_grid(a.pixel_map, grid, "sum")).max() for a in attributions)
    assert f"+{peak:.3g}</span>" in legend
