"""The explanation panels the Ask tab's Explain section and the Errors tab both draw.

The attribution method choice and its integrated-gradient budget, the heatmap image widget, the
pooling-weight view (heatmap, highlighted tokens, caption) and the attribution view (heatmap, token
chips on the same colour scale, legend and the completeness check in words). Painting itself is
:mod:`vqa_demo.ui.explain_render`'s.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from vqa_demo.config import COND_GEN_SCORING_WORDS
from vqa_demo.explain.attribution import METHODS
from vqa_demo.explain.heatmaps import heatmap_overlay
from vqa_demo.model.family import PatchGrid
from vqa_demo.prediction import AttentionMap
from vqa_demo.ui.answer_state import AskResult
from vqa_demo.ui.explain_render import (
    DISPLAY_SIDE,
    VIEWS,
    Explanation,
    attribution_explanation,
    display_token,
    legend_html,
    paint,
    pooling_explanation,
    tokens_html,
)
from vqa_demo.ui.plots import option_label

METHOD_LABELS = {"Integrated gradients": "integrated_gradients", "Saliency (gradient)": "saliency"}
assert set(METHOD_LABELS.values()) == set(METHODS)
# Integrated gradients take 4x the steps, up to this cap, while |error| > TOLERANCE x |score change|
# (on the default, 64 steps usually reach it; 128 steps of a variant take about 20 s on 2 busy cores).
MAX_STEPS, TOLERANCE = 128, 0.05


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


def attention_view(
    image, attention: AttentionMap, opacity: float, row: str | None = None
) -> tuple[Any, list, str]:
    """(heatmap image, highlighted tokens, caption) from a prediction's pooling weights.

    For ``gr.HighlightedText``: image and tokens are divided by one shared peak (the largest weight
    over patches and tokens together), so their brightness compares.
    """
    explanation = pooling_explanation(attention)
    peak = explanation.peak
    tokens = [display_token(t) for t in explanation.tokens]
    highlights = [
        (t, round(float(w) / peak, 4) if peak > 0 else 0.0) for t, w in zip(tokens, explanation.token_values)
    ]
    caption = pooling_caption(attention, row)
    if explanation.image.ndim != 2:
        return None, highlights, caption
    caption += " Brighter patches and redder tokens weigh more, on one scale; one square per image token."
    return (
        # The patch grid, as the Ask tab shows it by default: one square per image token.
        heatmap_overlay(image, explanation.image, opacity, min_side=DISPLAY_SIDE, peak=peak, nearest=True),
        highlights,
        caption,
    )


def with_legend(explanation: Explanation, caption: str) -> str:
    """The colour legend of ``explanation`` above ``caption``."""
    return legend_html(explanation) + "\n\n" + caption


def attribution_view(
    result: AskResult,
    attribution,
    opacity: float,
    grid: PatchGrid | None,
    view: str = VIEWS[0],
    peak: float | None = None,
) -> tuple:
    """(heatmap image, token HTML, legend + caption) of a captum attribution of ``result``'s question.

    ``grid`` is the vision tower's patches on the model input (:meth:`Backbone.patch_grid
    <vqa_demo.model.backbone.Backbone.patch_grid>`); no model call. ``peak`` (optional) is a
    shared top of the colour scale, so two attributions side by side compare.
    """
    explanation = attribution_explanation(attribution, grid, view)
    explanation.shared_peak = peak
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
            "Colour = size of each patch's and token's contribution; a token marked − lowers the score "
            "(hover a token for its signed value)."
        )
        lines.append(completeness_line(attribution))
    else:
        lines.append("Gradient magnitude: how sensitive the score is to each patch and token.")
    display = result.image.display
    image = paint(display, explanation, opacity, view) if display is not None else None
    return image, tokens_html(explanation), with_legend(explanation, "\n\n".join(lines))


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
