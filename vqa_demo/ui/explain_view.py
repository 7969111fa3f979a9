"""The Explain section under the answers: pooling-weight heatmaps and on-demand captum attributions.

Heatmaps come for free with an answer (the attentive variants return their pooling weights); the
opacity slider re-paints them without running the model. Attributions run the model again with
gradients, so they are computed only when asked, with a progress bar.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import gradio as gr
import numpy as np

from vqa_demo.explain import METHODS, attribute, heatmap_overlay, token_highlights
from vqa_demo.ui.ask import AskResult, status_error
from vqa_demo.ui.holder import ModelUnavailable, PredictorHolder
from vqa_demo.ui.plots import option_label

log = logging.getLogger(__name__)

DISPLAY_SIDE = 384  # small images are enlarged to this long side before painting

METHOD_LABELS = {"Integrated gradients": "integrated_gradients", "Saliency (gradient)": "saliency"}
assert set(METHOD_LABELS.values()) == set(METHODS)


def display_token(token: str) -> str:
    """Make invisible tokens visible in highlighted text."""
    return token.replace("\n", "↵ ")


def attention_view(image, attention: dict, opacity: float) -> tuple[Any, list, str]:
    """(heatmap image, highlighted tokens, caption) from a prediction's ``extras["attention"]``."""
    grid = np.asarray(attention["image_grid"], dtype=np.float32)
    tokens = [display_token(t) for t in attention["tokens"]]
    highlights = token_highlights(tokens, attention["token_weights"])
    caption = (
        f"Pooling weight on the image: **{attention['image_mass']:.0%}**, on the text: "
        f"**{1 - attention['image_mass']:.0%}** (row: {attention.get('row', 'prompt')}). "
        "Brighter patches and redder tokens weigh more."
    )
    if grid.ndim != 2:
        return None, highlights, caption + " The image tokens do not form a square grid, so no heatmap."
    return heatmap_overlay(image, grid, opacity, min_side=DISPLAY_SIDE), highlights, caption


def image_gone(result: AskResult) -> str | None:
    """Why ``result``'s image can no longer be explained (None while its copies are kept)."""
    if result.image.available:
        return None
    return "This answer's image is no longer kept (answers are kept for a limited time): answer again."


class ExplainCallbacks:
    """Event handlers of the Explain section; ``result`` is the Ask tab's :class:`AskResult` state."""

    def __init__(self, holder: PredictorHolder):
        self.holder = holder

    @staticmethod
    def attentive_variants(result: AskResult | None) -> list[str]:
        if result is None:
            return []
        return [n for n, p in result.predictions.items() if "attention" in p.extras]

    def refresh(self, result: AskResult | None, opacity: float) -> tuple:
        """After an answer: fill the variant pickers and paint the first attentive variant's heatmap."""
        attentive = self.attentive_variants(result)
        answered = list(result.predictions) if result else []
        first = attentive[0] if attentive else None
        heatmap, tokens, caption = self.render_attention(result, first, opacity)
        return (
            gr.update(choices=attentive, value=first, interactive=bool(attentive)),
            heatmap,
            tokens,
            caption,
            gr.update(choices=answered, value=answered[0] if answered else None, interactive=bool(answered)),
        )

    def render_attention(self, result: AskResult | None, variant: str | None, opacity: float) -> tuple:
        if result is None:
            return None, None, "Answer a question first."
        if (
            not variant
            or variant not in result.predictions
            or "attention" not in result.predictions[variant].extras
        ):
            return (
                None,
                None,
                "No attentive variant answered: tick an *-attentive* variant to see its pooling weights.",
            )
        if gone := image_gone(result):
            return None, None, gone
        return attention_view(result.image.display, result.predictions[variant].extras["attention"], opacity)

    def attribute(
        self,
        result: AskResult | None,
        variant: str | None,
        method_label: str,
        steps: float,
        opacity: float,
        progress=gr.Progress(),  # noqa: B008 (Gradio injects the tracker through this default)
    ) -> tuple:
        """Captum attribution of ``variant``'s chosen option: (pixel heatmap, token highlights, caption)."""
        if result is None or not variant or variant not in result.predictions:
            message = "Answer a question first, then pick one of the variants that answered."
            return None, None, status_error(message)
        pixel_values = result.image.pixel_values  # read once: the memory may drop it meanwhile
        if pixel_values is None:
            return None, None, status_error(image_gone(result))
        method = METHOD_LABELS.get(method_label, "integrated_gradients")
        prediction = result.predictions[variant]
        progress(0, desc="Computing attribution…")
        try:
            predictor = self.holder.get()
            (attribution,) = attribute(
                predictor,
                [pixel_values],
                [result.question],
                [result.options],
                variant,
                targets=[prediction.choice],
                method=method,
                n_steps=int(steps),
                on_progress=lambda fraction: progress(fraction, desc="Computing attribution…"),
            )
        except ModelUnavailable as error:
            return None, None, status_error(str(error))
        except Exception as error:  # report, do not crash the session
            log.exception("attribution failed")
            return None, None, status_error(f"Attribution failed ({type(error).__name__}: {error}).")
        return self.attribution_view(result, attribution, opacity)

    @staticmethod
    def attribution_view(result: AskResult, attribution, opacity: float) -> tuple:
        display = result.image.display
        image = (
            heatmap_overlay(display, attribution.pixel_magnitude, opacity, min_side=DISPLAY_SIDE)
            if display is not None
            else None
        )
        tokens = [display_token(t) for t in attribution.tokens]
        signed = attribution.method == "integrated_gradients"
        highlights = token_highlights(tokens, attribution.token_scores, signed=signed)
        if attribution.suffix_start is not None:
            highlights.insert(attribution.suffix_start, ("  ⟶ scored answer: ", None))
        what = "summed log-likelihood" if attribution.suffix_start is not None else "score"
        lines = [
            f"Attribution of **{attribution.variant}**'s {what} for "
            f"**{option_label(attribution.target, result.options[attribution.target], 40)}** "
            f"({attribution.score:.3f}) · {attribution.method.replace('_', ' ')} · {attribution.seconds:.1f} s.",
        ]
        if signed:
            lines.append(
                "Red tokens raise the score, blue ones lower it; the heatmap shows |attribution| per pixel."
            )
        else:
            lines.append("Gradient magnitude: how sensitive the score is to each pixel and token.")
        if attribution.convergence_delta is not None:
            lines.append(
                f"Completeness error (sum of attributions vs. score change from the baseline): "
                f"{attribution.convergence_delta:+.3g}; more steps make it smaller."
            )
        return image, highlights, "\n\n".join(lines)


def build_explain(callbacks: ExplainCallbacks):
    """Lay out the Explain section; returns its components."""
    ns = SimpleNamespace()
    gr.Markdown("### Explain the answer", elem_classes="section-title")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            gr.Markdown("**Attentive pooling weights** (free with every answer)")
            with gr.Row():
                ns.attn_variant = gr.Dropdown(
                    label="Attentive variant", choices=[], interactive=False, scale=2
                )
                ns.opacity = gr.Slider(0, 1, value=0.55, step=0.05, label="Heatmap opacity", scale=2)
            ns.heatmap = gr.Image(
                label="Pooling weights over the image",
                type="pil",
                interactive=False,
                height=320,
                elem_id="attention-heatmap",
                format="png",
                elem_classes="fill-image",
            )
            ns.tokens = gr.HighlightedText(
                label="Pooling weights over the text tokens",
                show_legend=False,
                elem_id="attention-tokens",
                combine_adjacent=False,
            )
            ns.caption = gr.Markdown(elem_classes="small-note")
        with gr.Column(scale=1):
            gr.Markdown("**Attribution** (captum; runs the model again with gradients)")
            with gr.Row():
                ns.attr_variant = gr.Dropdown(label="Variant", choices=[], interactive=False, scale=2)
                ns.method = gr.Radio(
                    list(METHOD_LABELS), value="Integrated gradients", label="Method", scale=3
                )
            ns.steps = gr.Slider(4, 64, value=16, step=4, label="Integrated-gradient steps")
            ns.attr_button = gr.Button(
                "Compute attribution", variant="secondary", elem_id="attribution-button"
            )
            ns.attr_image = gr.Image(
                label="Pixel attribution",
                type="pil",
                interactive=False,
                height=320,
                elem_id="attribution-heatmap",
                format="png",
                elem_classes="fill-image",
            )
            ns.attr_tokens = gr.HighlightedText(
                label="Token attribution", show_legend=False, elem_id="attribution-tokens"
            )
            ns.attr_caption = gr.Markdown(elem_classes="small-note")
    return ns


def wire_explain(callbacks: ExplainCallbacks, view, result_state, answer_event) -> None:
    answer_event.then(
        callbacks.refresh,
        [result_state, view.opacity],
        [view.attn_variant, view.heatmap, view.tokens, view.caption, view.attr_variant],
        api_visibility="private",
    )
    for trigger in (view.attn_variant.change, view.opacity.change):
        trigger(
            callbacks.render_attention,
            [result_state, view.attn_variant, view.opacity],
            [view.heatmap, view.tokens, view.caption],
            api_visibility="private",
            show_progress="hidden",
            trigger_mode="always_last",  # dragging the slider repaints once it settles, not per pixel
        )
    view.attr_button.click(
        callbacks.attribute,
        [result_state, view.attr_variant, view.method, view.steps, view.opacity],
        [view.attr_image, view.attr_tokens, view.attr_caption],
        api_visibility="private",
        concurrency_id="model",
        concurrency_limit=1,
    )
