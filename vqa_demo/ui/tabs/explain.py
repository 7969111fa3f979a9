"""The Explain section under the answers: pooling-weight heatmaps and on-demand captum attributions.

Heatmaps come for free with an answer (the attentive variants return their pooling weights); the
opacity slider and the view switch re-paint them without running the model. Attributions run the
model again with gradients, so they are computed only when asked, with a progress bar; integrated
gradients raise their steps until the completeness error is small, and say so when it stays large.
Image and tokens have scales of their own, stated by one legend (:mod:`vqa_demo.ui.explain_render`).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import gradio as gr

from vqa_demo.ui.answer_state import AskResult, image_gone
from vqa_demo.ui.explain_panels import (
    METHOD_LABELS,
    attribution_view,
    compute_attribution,
    method_of,
    opacity_slider,
    pooling_panels,
    steps_slider,
    steps_update,
    with_legend,
)
from vqa_demo.ui.explain_render import VIEWS
from vqa_demo.ui.holder import ModelUnavailable, PredictorHolder
from vqa_demo.ui.image_box import image_box
from vqa_demo.ui.model_card import ModelCard
from vqa_demo.ui.status import status_error

log = logging.getLogger(__name__)


class ExplainCallbacks:
    """Event handlers of the Explain section; ``result`` is the Ask tab's :class:`AskResult` state."""

    def __init__(self, holder: PredictorHolder, card: ModelCard | None = None):
        self.holder = holder
        self.card = card

    def ranked(self, names: list[str]) -> list[str]:
        """Meaningful variants first (best validation accuracy first), chance-level ones last."""
        standings = self.card.standings if self.card else {}

        def key(name: str) -> tuple:
            standing = standings.get(name)
            if standing is None:
                return (1, 0.0)
            return (2 if standing.chance_level else 0, -standing.accuracy)

        return sorted(names, key=key)

    def choices(self, names: list[str]) -> list[tuple[str, str]]:
        """Dropdown entries ``(label, name)``; a chance-level variant's label says so."""
        chance = {n for n in names if self.card and self.card.is_chance_level(n)}
        return [(f"{n} (chance level)" if n in chance else n, n) for n in names]

    @staticmethod
    def attentive_variants(result: AskResult | None) -> list[str]:
        if result is None:
            return []
        return [n for n, p in result.predictions.items() if p.attention is not None]

    def refresh(self, result: AskResult | None, opacity: float, view: str = VIEWS[0]) -> tuple:
        """After an answer: fill the pickers (best meaningful variant first), paint its heatmap, clear the old attribution."""
        attentive = self.ranked(self.attentive_variants(result))
        answered = self.ranked(list(result.predictions) if result else [])
        first = attentive[0] if attentive else None
        heatmap, tokens, caption = self.render_attention(result, first, opacity, view)
        return (
            gr.update(choices=self.choices(attentive), value=first, interactive=bool(attentive)),
            heatmap,
            tokens,
            caption,
            gr.update(
                choices=self.choices(answered),
                value=answered[0] if answered else None,
                interactive=bool(answered),
            ),
            None,
            "",
            "",
            None,
        )

    def render_attention(
        self, result: AskResult | None, variant: str | None, opacity: float, view: str = VIEWS[0]
    ) -> tuple:
        """(heatmap image, token HTML, legend + caption) for ``variant``'s pooling weights."""
        if result is None:
            return None, "", "Answer a question first."
        if not variant or variant not in result.predictions or result.predictions[variant].attention is None:
            return (
                None,
                "",
                "No attentive variant answered: tick an *-attentive* variant to see its pooling weights.",
            )
        display = result.image.display  # read once: the memory may drop it meanwhile
        if display is None:
            return None, "", image_gone(result)
        attention = result.predictions[variant].attention
        ((heatmap, tokens, caption),), legend = pooling_panels(display, [attention], opacity, view)
        return heatmap, tokens, with_legend(legend, caption)

    def attribute(
        self,
        result: AskResult | None,
        variant: str | None,
        method_label: str,
        steps: float,
        opacity: float,
        view: str = VIEWS[0],
        progress=gr.Progress(),  # noqa: B008 (Gradio injects the tracker through this default)
    ) -> tuple:
        """Captum attribution of ``variant``'s chosen option: (pixel heatmap, token HTML, legend + caption)."""
        if result is None or not variant or variant not in result.predictions:
            message = "Answer a question first, then pick one of the variants that answered."
            return None, "", status_error(message), None
        pixel_values = result.image.pixel_values  # read once: the memory may drop it meanwhile
        if pixel_values is None:
            return None, "", status_error(image_gone(result)), None
        method = method_of(method_label)
        prediction = result.predictions[variant]
        progress(0, desc="Computing attribution…")
        report = lambda fraction: progress(fraction, desc="Computing attribution…")  # noqa: E731
        try:
            predictor = self.holder.get()
            attribution = compute_attribution(
                predictor,
                pixel_values,
                result.question,
                result.options,
                variant,
                prediction.choice,
                method,
                int(steps),
                on_progress=report,
            )
            grid = predictor.backbone.patch_grid(pixel_values)
        except ModelUnavailable as error:
            return None, "", status_error(str(error)), None
        except Exception as error:  # report, do not crash the session
            log.exception("attribution failed")
            return None, "", status_error(f"Attribution failed ({type(error).__name__}: {error})."), None
        stored = (attribution, grid)
        return (*attribution_view(result, attribution, opacity, grid, view), stored)

    def repaint_attribution(self, result: AskResult | None, stored, opacity: float, view: str) -> tuple:
        """Repaint the kept attribution for a new opacity or view (no model call); nothing when there is none."""
        if result is None or stored is None:
            return gr.update(), gr.update(), gr.update()
        attribution, grid = stored
        return attribution_view(result, attribution, opacity, grid, view)


def build_explain(callbacks: ExplainCallbacks):
    """Lay out the Explain section; returns its components."""
    ns = SimpleNamespace()
    gr.Markdown("### Explain the answer", elem_classes="section-title")
    with gr.Row():
        ns.view = gr.Radio(
            list(VIEWS),
            value=VIEWS[0],
            label="Image view (patch grid: one square per image token; smooth: interpolated)",
            elem_id="heat-view",
            scale=3,
        )
        ns.opacity = opacity_slider(scale=2)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            gr.Markdown("**Attentive pooling weights** (free with every answer)")
            ns.attn_variant = gr.Dropdown(label="Attentive variant", choices=[], interactive=False)
            ns.heatmap = image_box("attention-heatmap", "heatmap", height=320)
            ns.caption = gr.Markdown(elem_classes="small-note", elem_id="attention-caption")
            ns.tokens = gr.HTML(elem_id="attention-tokens")
        with gr.Column(scale=1):
            gr.Markdown("**Attribution** (captum; runs the model again with gradients)")
            with gr.Row():
                ns.attr_variant = gr.Dropdown(label="Variant", choices=[], interactive=False, scale=2)
                ns.method = gr.Radio(
                    list(METHOD_LABELS), value="Integrated gradients", label="Method", scale=3
                )
            ns.steps = steps_slider()
            ns.attr_button = gr.Button(
                "Compute attribution", variant="secondary", elem_id="attribution-button"
            )
            ns.attr_image = image_box("attribution-heatmap", "heatmap", height=320)
            ns.attr_caption = gr.Markdown(elem_classes="small-note", elem_id="attribution-caption")
            ns.attr_tokens = gr.HTML(elem_id="attribution-tokens")
    ns.attribution = gr.State(None)
    return ns


def wire_explain(callbacks: ExplainCallbacks, view, result_state, answer_event) -> None:
    """Every answer repaints the heatmap and clears the previous attribution; view changes repaint both."""
    attribution_outputs = [view.attr_image, view.attr_tokens, view.attr_caption, view.attribution]
    answer_event.then(
        callbacks.refresh,
        [result_state, view.opacity, view.view],
        [view.attn_variant, view.heatmap, view.tokens, view.caption, view.attr_variant, *attribution_outputs],
        api_visibility="private",
    )
    for trigger in (view.attn_variant.change, view.opacity.change, view.view.change):
        trigger(
            callbacks.render_attention,
            [result_state, view.attn_variant, view.opacity, view.view],
            [view.heatmap, view.tokens, view.caption],
            api_visibility="private",
            show_progress="hidden",
            trigger_mode="always_last",  # dragging the slider repaints once it settles, not per pixel
        )
    for trigger in (view.opacity.change, view.view.change):
        trigger(
            callbacks.repaint_attribution,
            [result_state, view.attribution, view.opacity, view.view],
            [view.attr_image, view.attr_tokens, view.attr_caption],
            api_visibility="private",
            show_progress="hidden",
            trigger_mode="always_last",
        )
    view.method.change(
        steps_update,
        view.method,
        view.steps,
        queue=False,
        api_visibility="private",
    )
    view.attr_button.click(
        callbacks.attribute,
        [result_state, view.attr_variant, view.method, view.steps, view.opacity, view.view],
        attribution_outputs,
        api_visibility="private",
        concurrency_id="model",
        concurrency_limit=1,
    )
