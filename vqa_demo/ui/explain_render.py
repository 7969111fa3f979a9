"""One colour scale for an explanation's image and text: patch grids, token chips and a legend.

An explanation gives one value per *position* the model reads: each image patch (one image token)
and each text token. Both are painted with the same inferno scale from 0 to the largest value over
image and text together, so a bright patch and a bright token carry the same weight, and the legend
states that peak. For captum attributions a patch's value is summed over its pixels (its share of
the score, as a token's is summed over its embedding), so the two are comparable; the smooth pixel
view shows the same quantity per pixel times the pixels in a patch, on the same scale. A patch is
the vision tower's own (the family's patch grid), also where no image token stands for it (BLIP, ViLT).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vqa_demo.explain.attribution import Attribution
from vqa_demo.explain.heatmaps import colormap, heatmap_overlay
from vqa_demo.model.family import PatchGrid
from vqa_demo.prediction import AttentionMap

DISPLAY_SIDE = 384  # small images are enlarged to this long side before painting
VIEWS = ("Patch grid", "Smooth")


@dataclass
class Explanation:
    """Values on one scale: ``image float[g, g]`` (patch grid) or ``float[H, W]`` (smooth), ``tokens float[T]``.

    ``signed_tokens`` keeps each token's sign for its tooltip (integrated gradients); the colours use
    magnitudes. ``peak`` is the shared top of the scale.
    """

    image: np.ndarray
    tokens: list[str]
    token_values: np.ndarray
    unit: str
    signed_tokens: np.ndarray | None = None
    suffix_start: int | None = None
    shared_peak: float | None = None  # set to put several explanations on one scale (gold and chosen)

    @property
    def own_peak(self) -> float:
        """The largest magnitude over this explanation's image and tokens."""
        values = [float(np.abs(self.image).max()) if self.image.size else 0.0]
        values.append(float(np.abs(self.token_values).max()) if self.token_values.size else 0.0)
        return max(values)

    @property
    def peak(self) -> float:
        """The top of the colour scale: :attr:`shared_peak` when set, else :attr:`own_peak`."""
        return self.shared_peak if self.shared_peak is not None else self.own_peak


def patch_grid(pixel_map: np.ndarray, grid: PatchGrid | None, how: str = "sum") -> np.ndarray | None:
    """``float[H, W]`` -> ``float[rows, cols]``: per patch of ``grid``, the sum (or L2 norm) over its pixels.

    The patches lie from the top left; pixels outside them (padding) are left out. None without a
    grid or when the map is smaller than it.
    """
    height, width = pixel_map.shape
    if grid is None or grid.rows <= 0 or grid.cols <= 0 or height < grid.height or width < grid.width:
        return None
    region = pixel_map[: grid.height, : grid.width]
    blocks = region.reshape(grid.rows, grid.patch_height, grid.cols, grid.patch_width)
    if how == "l2":
        return np.sqrt((blocks.astype(np.float64) ** 2).sum(axis=(1, 3))).astype(np.float32)
    return blocks.sum(axis=(1, 3)).astype(np.float32)


def attribution_explanation(attribution: Attribution, grid: PatchGrid | None, view: str) -> Explanation:
    """Patch-level (or per-pixel, scaled to patch units) attribution magnitudes next to token magnitudes.

    ``grid`` is the vision tower's patches on the model input (the family's
    :meth:`~vqa_demo.model.family.BackboneFamily.patch_grid`). Integrated gradients: a patch's value
    is its summed signed attribution (its share of the score change), shown as magnitude. Saliency:
    the L2 norm of the gradient over the patch, like a token's gradient norm over its embedding.
    Without a grid the smooth map stays per pixel and the unit says so.
    """
    signed = attribution.method == "integrated_gradients"
    pixel_map = np.asarray(attribution.pixel_map, dtype=np.float32)
    patches = patch_grid(pixel_map, grid, "sum" if signed else "l2")
    per = "per image patch" if patches is not None else "per pixel"
    if view == VIEWS[0] and patches is not None:
        image = np.abs(patches)
    elif patches is not None:
        # Padding (ViLT's canvas) is cut off so the map lies on the image it is painted over.
        region = pixel_map[: grid.height, : grid.width]
        image = np.abs(region) * (grid.pixels_per_patch if signed else np.sqrt(grid.pixels_per_patch))
    else:
        image = np.abs(pixel_map)
    scores = np.asarray(attribution.token_scores, dtype=np.float32)
    unit = f"|attribution| {per} and text token" if signed else f"gradient norm {per} and token"
    return Explanation(
        image,
        list(attribution.tokens),
        np.abs(scores),
        unit,
        scores if signed else None,
        attribution.suffix_start,
    )


def pooling_explanation(attention: AttentionMap) -> Explanation:
    """Attentive pooling weights: the patch grid and the text tokens are one softmax, so they share a scale."""
    grid = np.asarray(attention.image_grid, dtype=np.float32)
    weights = np.asarray(attention.token_weights, dtype=np.float32)
    unit = "pooling weight per image patch and text token" if grid.size else "pooling weight per text token"
    return Explanation(grid, list(attention.tokens), weights, unit)


def paint(image: Image.Image, explanation: Explanation, opacity: float, view: str) -> Image.Image | None:
    """The image with ``explanation.image`` overlaid on the shared scale; crisp patches in the grid view."""
    if explanation.image.ndim != 2:
        return None
    return heatmap_overlay(
        image,
        np.abs(explanation.image),
        opacity,
        min_side=DISPLAY_SIDE,
        peak=explanation.peak,
        nearest=view == VIEWS[0],
    )


def relative_luminance(rgb) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _css_colour(value: float) -> tuple[str, str]:
    """Background and text colour for a value in [0, 1]: black or white, whichever contrasts more (WCAG)."""
    r, g, b = (int(c) for c in colormap(np.array([value]))[0])
    light = relative_luminance((r, g, b))
    # Contrast with black is (L + 0.05) / 0.05, with white 1.05 / (L + 0.05).
    text = "#000" if (light + 0.05) / 0.05 >= 1.05 / (light + 0.05) else "#fff"
    return f"rgb({r},{g},{b})", text


def display_token(token: str) -> str:
    """Make invisible tokens visible in highlighted text."""
    return token.replace("\n", "↵ ")


def tokens_html(explanation: Explanation) -> str:
    """The text tokens as coloured chips on the shared scale; the exact (signed) value on hover."""
    peak = explanation.peak
    chips = []
    signed = explanation.signed_tokens
    for i, (token, value) in enumerate(zip(explanation.tokens, explanation.token_values)):
        if explanation.suffix_start is not None and i == explanation.suffix_start:
            chips.append("<span class='answer-mark'> ⟶ scored answer: </span>")
        background, colour = _css_colour(float(value) / peak if peak > 0 else 0.0)
        shown = float(signed[i]) if signed is not None else float(value)
        lowers = signed is not None and shown < 0
        text = html.escape(("−" if lowers else "") + display_token(token))
        chips.append(
            f"<span style='background:{background};color:{colour}' title='{shown:+.4g}'>{text}</span>"
        )
    return f"<div class='heat-tokens'>{''.join(chips)}</div>"


def legend_html(explanation: Explanation) -> str:
    """A colour bar from 0 to the shared peak, naming the unit; the same bar reads image and tokens."""
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in colormap(np.linspace(0, 1, 8)))
    shared = "the image and the tokens" if explanation.image.size else "the tokens"
    return (
        "<div class='heat-legend'><span>0</span>"
        f"<span class='bar' style='background:linear-gradient(to right, {stops})'></span>"
        f"<span>{explanation.peak:.3g}</span></div>"
        f"<div class='small-note'>One scale for {shared}: {html.escape(explanation.unit)}.</div>"
    )
