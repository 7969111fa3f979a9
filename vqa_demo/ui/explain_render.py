"""Render an explanation: the image's map, the text-token chips and a legend, on scales that compare.

An explanation gives one value per *position* the model reads: each image patch (one image token)
and each text token. The image and the tokens get separate scales (a scored answer token can carry
ten times any patch's value, and would otherwise flatten the picture), each from 0 to its largest
magnitude; the legend states both. Several explanations drawn side by side (the gold and the chosen
option, or two variants) share both scales, so equal colours mean equal values across them.
Signed values (integrated gradients) use diverging colours, red for the option attributed and blue
against it; non-negative ones (pooling weights, gradient norms) a sequential ramp. A value is painted
at an opacity that grows with its size, so a value of 0 leaves the picture as it is.

For captum attributions a patch's value is summed over its pixels (its share of the score, as a
token's is summed over its embedding); the smooth pixel view shows the same quantity per pixel times
the pixels in a patch. A patch is the vision tower's own (the family's patch grid), also where no
image token stands for it (BLIP, ViLT).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from vqa_demo.explain.heatmaps import blend, heatmap_overlay
from vqa_demo.prediction import AttentionMap

if TYPE_CHECKING:
    from vqa_demo.explain.attribution import Attribution
    from vqa_demo.model.family import PatchGrid

DISPLAY_SIDE = 384  # small images are enlarged to this long side before painting
VIEWS = ("Patch grid", "Smooth")
WHITE = np.array([255.0, 255.0, 255.0])


@dataclass
class Explanation:
    """Values of one explanation: ``image float[g, g]`` (patch grid) or ``float[H, W]`` (smooth), ``tokens float[T]``.

    ``signed``: the values carry a sign (integrated gradients: + raises the score of the option
    attributed, - lowers it); otherwise they are >= 0. ``image_unit`` and ``token_unit`` name what
    one value is.
    """

    image: np.ndarray
    tokens: list[str]
    token_values: np.ndarray
    image_unit: str
    token_unit: str
    signed: bool = False
    suffix_start: int | None = None

    @property
    def image_peak(self) -> float:
        """The largest magnitude over the image map (0 without one)."""
        return float(np.abs(self.image).max()) if self.image.size else 0.0

    @property
    def token_peak(self) -> float:
        """The largest magnitude over the text tokens (0 without any)."""
        return float(np.abs(self.token_values).max()) if self.token_values.size else 0.0


@dataclass(frozen=True)
class Scale:
    """The tops of the image scale and of the token scale, shared by every explanation drawn with it."""

    image: float
    tokens: float
    signed: bool
    image_unit: str
    token_unit: str

    @classmethod
    def over(cls, explanations: Sequence[Explanation]) -> Scale:
        """One scale for ``explanations`` (at least one): the largest image and token magnitudes of all."""
        pictured = [e for e in explanations if e.image.ndim == 2 and e.image.size]
        return cls(
            max(e.image_peak for e in explanations),
            max(e.token_peak for e in explanations),
            any(e.signed for e in explanations),
            pictured[0].image_unit if pictured else "",  # "" = no image map to read
            explanations[0].token_unit,
        )


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
    """Patch-level (or per-pixel, scaled to patch units) attributions next to token attributions.

    ``grid`` is the vision tower's patches on the model input (the family's
    :meth:`~vqa_demo.model.family.BackboneFamily.patch_grid`). Integrated gradients: a patch's value
    is its summed signed attribution (its share of the score change), kept signed. Saliency: the L2
    norm of the gradient over the patch, like a token's gradient norm over its embedding. Without a
    grid the smooth map stays per pixel and the unit says so.
    """
    signed = attribution.method == "integrated_gradients"
    pixel_map = np.asarray(attribution.pixel_map, dtype=np.float32)
    patches = patch_grid(pixel_map, grid, "sum" if signed else "l2")
    per = "per image patch" if patches is not None else "per pixel"
    if view == VIEWS[0] and patches is not None:
        image = patches
    elif patches is not None:
        # Padding (ViLT's canvas) is cut off so the map lies on the image it is painted over.
        region = pixel_map[: grid.height, : grid.width]
        image = region * grid.pixels_per_patch if signed else np.abs(region) * np.sqrt(grid.pixels_per_patch)
    else:
        image = pixel_map if signed else np.abs(pixel_map)
    scores = np.asarray(attribution.token_scores, dtype=np.float32)
    what = "attribution" if signed else "gradient norm"
    return Explanation(
        image,
        list(attribution.tokens),
        scores if signed else np.abs(scores),
        f"{what} {per}",
        f"{what} per text token",
        signed,
        attribution.suffix_start,
    )


def pooling_explanation(attention: AttentionMap) -> Explanation:
    """Attentive pooling weights (>= 0) over the image patches and the text tokens."""
    grid = np.asarray(attention.image_grid, dtype=np.float32)
    weights = np.asarray(attention.token_weights, dtype=np.float32)
    return Explanation(
        grid,
        list(attention.tokens),
        weights,
        "pooling weight per image patch",
        "pooling weight per text token",
    )


def paint(
    image: Image.Image, explanation: Explanation, opacity: float, view: str, scale: Scale | None = None
) -> Image.Image | None:
    """The image with ``explanation.image`` overlaid on ``scale``'s image scale (default: its own)."""
    if explanation.image.ndim != 2 or explanation.image.size == 0:
        return None
    scale = scale or Scale.over([explanation])
    return heatmap_overlay(
        image,
        explanation.image,
        opacity,
        min_side=DISPLAY_SIDE,
        peak=scale.image,
        nearest=view == VIEWS[0],
        signed=scale.signed,
    )


def relative_luminance(rgb) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def chip_colour(fraction: float, signed: bool) -> tuple[tuple[int, int, int], str]:
    """A token chip's background for ``fraction`` of its scale (in [-1, 1]): the map's colour painted
    over white as over a picture, so 0 is a white chip; and black or white text, whichever contrasts more."""
    r, g, b = (int(c) for c in blend(WHITE, np.array(fraction), 1.0, signed))
    light = relative_luminance((r, g, b))
    # Contrast with black is (L + 0.05) / 0.05, with white 1.05 / (L + 0.05).
    text = "#000" if (light + 0.05) / 0.05 >= 1.05 / (light + 0.05) else "#fff"
    return (r, g, b), text


def display_token(token: str) -> str:
    """Make invisible tokens visible in highlighted text."""
    return token.replace("\n", "↵ ")


def tokens_html(explanation: Explanation, scale: Scale | None = None) -> str:
    """The text tokens as coloured chips on ``scale``'s token scale (default: their own); the value on hover.

    A signed token that lowers the score is also marked with a leading − (not by colour alone).
    """
    scale = scale or Scale.over([explanation])
    chips = []
    for i, (token, value) in enumerate(zip(explanation.tokens, explanation.token_values)):
        if explanation.suffix_start is not None and i == explanation.suffix_start:
            chips.append("<span class='answer-mark'> ⟶ scored answer: </span>")
        (r, g, b), colour = chip_colour(
            float(value) / scale.tokens if scale.tokens > 0 else 0.0, scale.signed
        )
        lowers = explanation.signed and value < 0
        text = html.escape(("−" if lowers else "") + display_token(token))
        chips.append(
            f"<span style='background:rgb({r},{g},{b});color:{colour}' title='{float(value):+.4g}'>{text}</span>"
        )
    return f"<div class='heat-tokens'>{''.join(chips)}</div>"


def legend_bar(peak: float, signed: bool, label: str) -> str:
    """One colour bar with its numbers: −peak, 0, +peak (signed) or 0 to peak."""
    fractions = np.linspace(-1 if signed else 0, 1, 9)
    stops = ", ".join("rgb({},{},{})".format(*chip_colour(float(f), signed)[0]) for f in fractions)
    low = f"<span>−{peak:.3g}</span>" if signed else "<span>0</span>"
    middle = "<span class='zero'>0</span>" if signed else ""
    return (
        f"<div class='heat-legend'><span class='what'>{html.escape(label)}</span>{low}"
        f"<span class='bar' style='background:linear-gradient(to right, {stops})'>{middle}</span>"
        f"<span>{'+' if signed else ''}{peak:.3g}</span></div>"
    )


def legend_html(scale: Scale, shared_by: int = 1) -> str:
    """The legend of ``scale``: an image bar and a token bar with their numbers, and how to read the colours."""
    bars = []
    if scale.image_unit:
        bars.append(legend_bar(scale.image, scale.signed, f"Image ({scale.image_unit})"))
    bars.append(legend_bar(scale.tokens, scale.signed, f"Text ({scale.token_unit})"))
    if scale.signed:
        reading = (
            "<b style='color:#b2182b'>Red</b> raises the score of the option attributed (for it), "
            "<b style='color:#2166ac'>blue</b> lowers it (against it)"
        )
    else:
        reading = "Deeper colour = more weight"
    reading += "; no colour (a white chip, the plain picture) = no signal"
    if scale.image_unit:
        reading += ". The image and the text have separate scales"
    if shared_by > 1:
        reading += f"{',' if scale.image_unit else '. The scale is'} shared by these {shared_by} panels"
    return f"<div class='heat-legend-box'>{''.join(bars)}<div class='small-note'>{reading}.</div></div>"


def render_side_by_side(
    display: Image.Image | None, explanations: Sequence[Explanation], opacity: float, view: str
) -> tuple[list[tuple[Image.Image | None, str]], str]:
    """``([(heatmap, token chips)] per explanation, one legend)``, every panel on one shared :class:`Scale`.

    The one renderer of both tabs: the Ask tab draws one explanation, the Errors tab the gold and
    the chosen option's. ``display`` None (the image was dropped from memory) paints no heatmap.
    """
    scale = Scale.over(explanations)
    panels = [
        (paint(display, e, opacity, view, scale) if display is not None else None, tokens_html(e, scale))
        for e in explanations
    ]
    return panels, legend_html(scale, len(explanations))
