"""The explanation panels the Ask tab's Explain section and the Errors tab both draw.

The attribution method choice and its integrated-gradient budget (:func:`compute_attribution`, one
code path for both tabs), the pooling-weight panels and the attribution panels: per explanation a
heatmap, token chips and a caption, and one legend for all the panels drawn side by side, on scales
they share. Painting itself is :mod:`vqa_demo.ui.explain_render`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
from PIL import Image

from vqa_demo.config import COND_GEN_SCORING_WORDS
from vqa_demo.prediction import AttentionMap
from vqa_demo.ui.answer_state import AskResult
from vqa_demo.ui.explain_render import (
    VIEWS,
    attribution_explanation,
    pooling_explanation,
    render_side_by_side,
)
from vqa_demo.ui.plots import option_label

if TYPE_CHECKING:
    from vqa_demo.model.family import PatchGrid

# Radio label -> :data:`~vqa_demo.explain.attribution.METHODS` name (the same set: tested).
METHOD_LABELS = {"Integrated gradients": "integrated_gradients", "Saliency (gradient)": "saliency"}
# Integrated gradients take 4x the steps, up to this cap, while |error| > TOLERANCE x |score change|
# (on the default, 64 steps usually reach it; 128 steps of a variant take about 20 s on 2 busy cores).
MAX_STEPS, TOLERANCE = 128, 0.05
# A value covers the picture at opacity x |value| / top of its scale, so the default is high: the top
# of the scale shows strongly while small values stay faint and zero leaves the picture as it is.
OPACITY, OPACITY_LABEL = 0.8, "Heatmap opacity at the top of the scale"


def opacity_slider(**kwargs) -> gr.Slider:
    """The heatmap opacity slider both tabs show."""
    return gr.Slider(0, 1, value=OPACITY, step=0.05, label=OPACITY_LABEL, **kwargs)


def steps_slider(**kwargs) -> gr.Slider:
    """The integrated-gradient steps slider both tabs show (the start; raised while incomplete)."""
    return gr.Slider(
        4,
        64,
        value=16,
        step=4,
        label=f"Integrated-gradient steps (raised up to {MAX_STEPS} if needed)",
        **kwargs,
    )


def method_of(label: str) -> str:
    """The :data:`~vqa_demo.explain.attribution.METHODS` name of a method radio label (integrated gradients if unknown)."""
    return METHOD_LABELS.get(label, "integrated_gradients")


def steps_update(label: str) -> dict:
    """The steps slider only means something for integrated gradients."""
    return gr.update(interactive=METHOD_LABELS.get(label) == "integrated_gradients")


def pooling_caption(attention: AttentionMap, row: str | None = None) -> str:
    """What the pooling weights are, in words: the image's and the text's shares, or, where the
    pooled states hold no image positions (BLIP, ViLT), what they are and why no patch has a weight."""
    if attention.image_grid.size == 0:
        states = attention.pooled_states or (
            "The pooled states are text positions only; each one has read the image inside the model"
        )
        return (
            f"{states}. So no image patch has a pooling weight of its own and there is no heatmap: "
            f"the weights are over the {attention.row} row's text tokens only."
        )
    caption = (
        f"Pooling weight on the image: **{attention.image_mass:.0%}**, on the text: "
        f"**{1 - attention.image_mass:.0%}** (row: {row or attention.row})."
    )
    if np.ndim(attention.image_grid) != 2:
        caption += " The image tokens do not form a square grid, so no heatmap."
    return caption


def pooling_panels(
    display: Image.Image | None,
    attentions: Sequence[AttentionMap],
    opacity: float,
    view: str = VIEWS[0],
    rows: Sequence[str | None] | None = None,
) -> tuple[list[tuple[Any, str, str]], str]:
    """``([(heatmap, token chips, caption)] per map, one legend)`` of pooling weights on one shared scale.

    ``rows`` names each map's prompt row in its caption (default: the map's own ``row``).
    """
    panels, legend = render_side_by_side(display, [pooling_explanation(a) for a in attentions], opacity, view)
    rows = rows or [None] * len(attentions)
    return [(*panel, pooling_caption(a, row)) for panel, a, row in zip(panels, attentions, rows)], legend


def with_legend(legend: str, caption: str) -> str:
    """``legend`` above ``caption``, for a panel that shows its own legend."""
    return legend + "\n\n" + caption


def attribution_caption(result: AskResult, attribution) -> str:
    """What ``attribution`` attributes (variant, score, option, method, time) and its completeness check."""
    what = "score"
    if attribution.log_likelihood:
        rule = attribution.score_rule or "loglik_sum"
        # the cosine rule's generated text has no gradient: its attribution is the summed log-likelihood
        what = COND_GEN_SCORING_WORDS["loglik_sum" if rule == "cosine" else rule]
    lines = [
        f"Attribution of **{attribution.variant}**'s {what} for "
        f"**{option_label(attribution.target, result.options[attribution.target], 40)}** "
        f"({attribution.score:.3f}) · {attribution.method.replace('_', ' ')} · {attribution.seconds:.1f} s.",
    ]
    if attribution.log_likelihood and attribution.suffix_start is None:
        lines.append(
            "The answer's own tokens are not coloured: this model's answer decoder reads the encoded "
            "question, so the attribution covers the image and the question tokens."
        )
    if attribution.method == "integrated_gradients":
        lines.append(
            "Red patches and tokens raise this option's score, blue ones lower it (a token marked − "
            "lowers it; hover a token for its value)."
        )
        lines.append(completeness_line(attribution))
    else:
        lines.append("Gradient magnitude: how sensitive the score is to each patch and token.")
    return "\n\n".join(lines)


def attribution_panels(
    result: AskResult, attributions: Sequence, opacity: float, grid: PatchGrid | None, view: str = VIEWS[0]
) -> tuple[list[tuple[Any, str, str]], str]:
    """``([(heatmap, token chips, caption)] per attribution, one legend)``, all on one shared scale.

    ``grid`` is the vision tower's patches on the model input (:meth:`Backbone.patch_grid
    <vqa_demo.model.backbone.Backbone.patch_grid>`); no model call.
    """
    explanations = [attribution_explanation(a, grid, view) for a in attributions]
    panels, legend = render_side_by_side(result.image.display, explanations, opacity, view)
    return [(*panel, attribution_caption(result, a)) for panel, a in zip(panels, attributions)], legend


def attribution_view(
    result: AskResult, attribution, opacity: float, grid: PatchGrid | None, view: str = VIEWS[0]
) -> tuple:
    """(heatmap image, token HTML, legend + caption) of one captum attribution of ``result``'s question."""
    ((image, tokens, caption),), legend = attribution_panels(result, [attribution], opacity, grid, view)
    return image, tokens, with_legend(legend, caption)


def compute_attribution(
    predictor,
    pixel_values,
    question: str,
    options: list[str],
    variant: str,
    target: int,
    method: str,
    steps: int,
    on_progress=None,
):
    """The attribution of ``variant``'s score for option ``target``, as both tabs compute it.

    ``pixel_values float[3, H, W]``. Integrated gradients start at ``steps`` and take 4x the steps
    (up to :data:`MAX_STEPS`) while the completeness error exceeds :data:`TOLERANCE`.
    """
    from vqa_demo.explain.attribution import attribute, attribute_until_complete  # captum, the model code

    if method == "integrated_gradients":
        return attribute_until_complete(
            predictor,
            pixel_values,
            question,
            options,
            variant,
            target,
            n_steps=int(steps),
            max_steps=MAX_STEPS,
            tolerance=TOLERANCE,
            on_progress=on_progress,
        )
    (attribution,) = attribute(
        predictor,
        [pixel_values],
        [question],
        [options],
        variant,
        targets=[target],
        method=method,
        on_progress=on_progress,
    )
    return attribution


def completeness_line(attribution) -> str:
    """The completeness check in words: attributions should add up to score - baseline score."""
    change = attribution.score - attribution.baseline_score
    error = attribution.relative_error
    text = (
        f"Completeness: the attributions add up to {change + attribution.convergence_delta:+.3g} against a score "
        f"change of {change:+.3g} from the baseline ({attribution.baseline_score:.3g} → {attribution.score:.3g}); "
        f"error {attribution.convergence_delta:+.3g} = {error:.1%} of the change at {attribution.n_steps} steps."
    )
    if error > TOLERANCE:
        text = (
            f"⚠ **Unreliable attribution**: the completeness error stays at {error:.0%} of the score change "
            f"even at {attribution.n_steps} steps, so these colours do not add up to the score. {text}"
        )
    return text
