"""Explanation rendering on known values: what zero, positive and negative look like, and the scales.

No model: hand-made attribution arrays go through the renderer both tabs use, and the pixels and
token chips that come out are checked.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from vqa_demo.explain.heatmaps import colormap, heatmap_overlay
from vqa_demo.ui.explain_render import (
    VIEWS,
    Explanation,
    Scale,
    chip_colour,
    legend_html,
    paint,
    render_side_by_side,
    tokens_html,
)

SIDE = 384  # the display size the renderer enlarges small images to
PICTURE = Image.fromarray(
    np.random.default_rng(0).integers(40, 216, (SIDE, SIDE, 3), dtype=np.uint8)
)  # a textured picture, so "unchanged" is a real check


def patch(pixels: np.ndarray, row: int, col: int, cells: int = 4) -> np.ndarray:
    """``uint8[h, w, 3]``: the pixels of patch (row, col) of a ``cells x cells`` grid, less a 2 px margin."""
    size = pixels.shape[0] // cells
    return pixels[row * size + 2 : (row + 1) * size - 2, col * size + 2 : (col + 1) * size - 2].astype(int)


def signed_explanation(token_values=(0.0, 2.0, -1.0, 35.5)) -> Explanation:
    grid = np.zeros((4, 4), dtype=np.float32)
    grid[0, 0], grid[3, 3], grid[1, 1] = 4.0, -4.0, 1.0  # for, against, a weak for
    return Explanation(
        grid,
        ["<bos>", " cat", " dog", " yes"],
        np.asarray(token_values, dtype=np.float32),
        "attribution per image patch",
        "attribution per text token",
        signed=True,
    )


def test_zero_is_the_picture_and_the_signs_get_two_hues():
    explanation = signed_explanation()
    painted = np.asarray(paint(PICTURE, explanation, 0.8, VIEWS[0]))
    original = np.asarray(PICTURE)
    # No signal: the picture as it is (within rounding), not darkened.
    assert np.abs(patch(painted, 2, 0) - patch(original, 2, 0)).max() <= 1
    assert np.abs(patch(painted, 0, 3) - patch(original, 0, 3)).max() <= 1
    # For (+4): pulled towards red; against (-4): towards blue; by the same amount.
    shift_for = (patch(painted, 0, 0) - patch(original, 0, 0)).mean(axis=(0, 1))
    shift_against = (patch(painted, 3, 3) - patch(original, 3, 3)).mean(axis=(0, 1))
    assert shift_for[0] - shift_for[2] > 40 and shift_against[2] - shift_against[0] > 40
    # The strongest patch is covered at the opacity given; a quarter of the peak only faintly.
    top = colormap(np.array(1.0), signed=True).astype(float)
    expected = 0.2 * patch(original, 0, 0) + 0.8 * top
    assert np.abs(patch(painted, 0, 0) - expected).max() <= 1
    weak = np.abs(patch(painted, 1, 1) - patch(original, 1, 1)).mean()
    strong = np.abs(patch(painted, 0, 0) - patch(original, 0, 0)).mean()
    assert 0 < weak < strong / 3


def test_sequential_maps_leave_zero_alone_too():
    grid = np.array([[0.0, 0.5], [1.0, 0.0]], dtype=np.float32)
    painted = np.asarray(heatmap_overlay(PICTURE, grid, 1.0, nearest=True)).astype(int)
    original = np.asarray(PICTURE).astype(int)
    assert np.abs(painted[: SIDE // 2, : SIDE // 2] - original[: SIDE // 2, : SIDE // 2]).max() <= 1
    assert (painted[-5, 5] == colormap(np.array(1.0))).all()


def test_the_token_scale_is_independent_of_the_image_scale():
    """A scored answer token at 35.5 does not flatten the picture: the image keeps its own scale."""
    small_tokens = paint(PICTURE, signed_explanation((0.0, 0.1, -0.1, 0.2)), 0.8, VIEWS[0])
    large_tokens = paint(PICTURE, signed_explanation(), 0.8, VIEWS[0])
    assert np.array_equal(np.asarray(small_tokens), np.asarray(large_tokens))
    scale = Scale.over([signed_explanation()])
    assert (scale.image, scale.tokens) == (4.0, 35.5)
    chips = tokens_html(signed_explanation(), scale)
    # The 35.5 token is the top colour; " cat" at 2.0 is 2 / 35.5 of the way up (near white).
    top, _ = chip_colour(1.0, signed=True)
    faint, _ = chip_colour(2.0 / 35.5, signed=True)
    assert "background:rgb({},{},{})".format(*top) in chips
    assert "background:rgb({},{},{})".format(*faint) in chips and min(faint) > 220
    assert "−&lt;bos&gt;" not in chips and "− dog" in chips  # the lowering token marked, not by colour alone
    legend = legend_html(scale)
    numbers = re.findall(r"<span>([−+]?[\d.]+)</span>", legend)
    assert numbers == ["−4", "+4", "−35.5", "+35.5"]
    assert "Red" in legend and "blue" in legend and "separate scales" in legend


def test_side_by_side_panels_share_one_scale():
    """Gold and chosen: the weaker explanation is painted on the stronger one's scale, one legend."""
    strong = signed_explanation()
    weak = signed_explanation((0.0, 1.0, -1.0, 3.0))
    weak.image = strong.image / 2
    (strong_panel, weak_panel), legend = render_side_by_side(PICTURE, [strong, weak], 0.8, VIEWS[0])
    alone = paint(PICTURE, weak, 0.8, VIEWS[0])  # on its own scale the weak map would look as strong
    strong_pixels, weak_pixels = np.asarray(strong_panel[0]), np.asarray(weak_panel[0])
    assert np.array_equal(np.asarray(alone), strong_pixels)
    original = np.asarray(PICTURE)
    weak_shift = np.abs(patch(weak_pixels, 0, 0) - patch(original, 0, 0)).mean()
    strong_shift = np.abs(patch(strong_pixels, 0, 0) - patch(original, 0, 0)).mean()
    assert 0 < weak_shift < strong_shift * 0.7
    assert legend.count("class='heat-legend'") == 2 and "+35.5" in legend and "these 2 panels" in legend
