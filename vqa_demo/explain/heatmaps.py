"""Heatmaps and highlighted tokens: paint a weight map over an image, scale token weights for display.

Used for attentive pooling weights (:func:`vqa_demo.prediction.attention_map`) and captum attributions
(:mod:`vqa_demo.explain.attribution`) alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

OVERLAY_MAX_SIDE = 512  # heatmaps are painted on the image fitted into this many pixels

# Anchor colours of matplotlib's "inferno" map (dark = little weight, bright = much).
_INFERNO = np.array(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=np.float32,
)


def colormap(values: np.ndarray) -> np.ndarray:
    """``float[...]`` in [0, 1] -> ``uint8[..., 3]`` inferno colours."""
    scaled = np.clip(values, 0.0, 1.0) * (len(_INFERNO) - 1)
    low = np.floor(scaled).astype(int)
    high = np.minimum(low + 1, len(_INFERNO) - 1)
    frac = (scaled - low)[..., None]
    return (_INFERNO[low] * (1 - frac) + _INFERNO[high] * frac).round().astype(np.uint8)


def normalise_map(values: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to [0, 1] by its maximum (an all-zero map stays zero)."""
    values = np.asarray(values, dtype=np.float32)
    peak = float(values.max()) if values.size else 0.0
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
) -> Image.Image:
    """Paint ``grid float[g, g]`` (or any ``float[h, w]`` map, >= 0) over ``image``.

    The grid is divided by ``peak`` (default: its own maximum; pass a shared one to put several maps
    on one scale) and upsampled to the image size, bilinearly or, with ``nearest``, as crisp patches.
    That is the geometry the processor used (it stretches the image to a square, so the stretch is
    undone here).
    ``opacity`` 0 shows the image alone, 1 the heatmap alone. The image is first scaled so its long
    side is at most ``max_side`` and (for display) at least ``min_side`` pixels.
    """
    base = fit_long_side(image.convert("RGB"), max_side, min_side)
    grid = np.asarray(grid, dtype=np.float32)
    if grid.ndim != 2:
        raise ValueError(f"grid must be 2-D, got shape {grid.shape}")
    grid = normalise_map(grid) if peak is None else (grid / peak if peak > 0 else np.zeros_like(grid))
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    upsampled = np.asarray(Image.fromarray(grid, mode="F").resize(base.size, resample), dtype=np.float32)
    colours = colormap(upsampled).astype(np.float32)
    opacity = float(np.clip(opacity, 0.0, 1.0))
    blended = (1 - opacity) * np.asarray(base, dtype=np.float32) + opacity * colours
    return Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))


def token_highlights(
    tokens: Sequence[str], weights: Sequence[float], signed: bool = False
) -> list[tuple[str, float]]:
    """``(token, score)`` pairs for ``gr.HighlightedText``: scores scaled to [0, 1] (or [-1, 1] if signed)."""
    values = np.asarray(weights, dtype=np.float32)
    peak = float(np.abs(values).max()) if values.size else 0.0
    scaled = values / peak if peak > 0 else np.zeros_like(values)
    if not signed:
        scaled = np.clip(scaled, 0.0, 1.0)
    return [(token, round(float(score), 4)) for token, score in zip(tokens, scaled)]
