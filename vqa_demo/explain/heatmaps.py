"""Heatmaps: paint a weight or attribution map over an image on a sequential or a diverging scale.

Used for attentive pooling weights (:func:`vqa_demo.prediction.attention_map`) and captum attributions
(:mod:`vqa_demo.explain.attribution`) alike.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

OVERLAY_MAX_SIDE = 512  # heatmaps are painted on the image fitted into this many pixels

# Colour ramps, from a faint tint (little weight) to a deep colour (the top of the scale). A value is
# painted with its ramp colour at an opacity that grows with its size, so a value of 0 leaves the
# picture (or a token's white chip) exactly as it is: "no signal" never darkens anything.
SEQUENTIAL = np.array(  # yellow -> orange -> red -> dark red (ColorBrewer YlOrRd)
    [[255, 237, 160], [254, 178, 76], [240, 59, 32], [128, 0, 38]], dtype=np.float32
)
FOR_COLOURS = np.array([[253, 219, 199], [244, 165, 130], [214, 96, 77], [103, 0, 31]], dtype=np.float32)
AGAINST_COLOURS = np.array([[209, 229, 240], [146, 197, 222], [67, 147, 195], [5, 48, 97]], dtype=np.float32)


def _ramp(anchors: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """``float[...]`` in [0, 1] -> ``float[..., 3]`` colours interpolated between ``anchors``."""
    scaled = np.clip(fractions, 0.0, 1.0) * (len(anchors) - 1)
    low = np.floor(scaled).astype(int)
    high = np.minimum(low + 1, len(anchors) - 1)
    frac = (scaled - low)[..., None]
    return anchors[low] * (1 - frac) + anchors[high] * frac


def colormap(values: np.ndarray, signed: bool = False) -> np.ndarray:
    """``float[...]`` in [0, 1] (or [-1, 1] if ``signed``) -> ``uint8[..., 3]`` full-strength colours.

    Sequential: yellow to dark red. Signed (diverging): red ramps for positive values (for the option
    attributed), blue ramps for negative ones (against it); the depth grows with the magnitude.
    """
    values = np.asarray(values, dtype=np.float32)
    if not signed:
        return _ramp(SEQUENTIAL, values).round().astype(np.uint8)
    colours = np.where((values >= 0)[..., None], _ramp(FOR_COLOURS, values), _ramp(AGAINST_COLOURS, -values))
    return colours.round().astype(np.uint8)


def blend(base: np.ndarray, values: np.ndarray, opacity: float, signed: bool = False) -> np.ndarray:
    """``base float[..., 3]`` with ``values float[...]`` (in [-1, 1]) painted at ``opacity x |value|``.

    Returns ``uint8[..., 3]``. A value of 0 returns ``base`` unchanged; the top of the scale covers it
    at ``opacity``.
    """
    values = np.clip(np.asarray(values, dtype=np.float32), -1.0 if signed else 0.0, 1.0)
    alpha = (float(np.clip(opacity, 0.0, 1.0)) * np.abs(values))[..., None]
    colours = colormap(values, signed).astype(np.float32)
    return (
        ((1 - alpha) * np.asarray(base, dtype=np.float32) + alpha * colours)
        .round()
        .clip(0, 255)
        .astype(np.uint8)
    )


def scale_map(values: np.ndarray, peak: float | None = None) -> np.ndarray:
    """``values`` divided by ``peak`` (default: their largest magnitude); an all-zero map stays zero."""
    values = np.asarray(values, dtype=np.float32)
    if peak is None:
        peak = float(np.abs(values).max()) if values.size else 0.0
    return values / peak if peak > 0 else np.zeros_like(values)


def fit_long_side(image: Image.Image, max_side: int | None, min_side: int | None = None) -> Image.Image:
    """``image`` scaled (Lanczos) so its long side is at most ``max_side`` and at least ``min_side``.

    Returns ``image`` itself when it already fits. Fitting an already fitted image changes nothing,
    so a copy fitted into ``max_side`` gives the same overlays as the original.
    """
    long_side = max(image.size)
    target = min(long_side, max_side or long_side)
    target = max(target, min_side or 0)
    if target == long_side:
        return image
    scale = target / long_side
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
    )


def heatmap_overlay(
    image: Image.Image,
    grid: np.ndarray,
    opacity: float = 0.5,
    max_side: int | None = OVERLAY_MAX_SIDE,
    min_side: int | None = None,
    peak: float | None = None,
    nearest: bool = False,
    signed: bool = False,
) -> Image.Image:
    """Paint ``grid float[g, g]`` (or any ``float[h, w]`` map) over ``image``.

    The grid is divided by ``peak`` (default: its largest magnitude; pass a shared one to put several
    maps on one scale) and upsampled to the image size, bilinearly or, with ``nearest``, as crisp
    patches. That is the geometry the processor used (it stretches the image to a square, so the
    stretch is undone here). Each pixel is covered by its colour at ``opacity x |value / peak|``: a
    zero leaves the picture as it is, the peak covers it at ``opacity``. ``signed`` maps use the
    diverging colours (red for, blue against); otherwise values must be >= 0. The image is first
    scaled so its long side is at most ``max_side`` and (for display) at least ``min_side`` pixels.
    """
    base = fit_long_side(image.convert("RGB"), max_side, min_side)
    grid = np.asarray(grid, dtype=np.float32)
    if grid.ndim != 2:
        raise ValueError(f"grid must be 2-D, got shape {grid.shape}")
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    upsampled = np.asarray(Image.fromarray(scale_map(grid, peak), mode="F").resize(base.size, resample))
    return Image.fromarray(blend(np.asarray(base), upsampled, opacity, signed))
