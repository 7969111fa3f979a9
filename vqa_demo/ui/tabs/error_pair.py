"""One Errors example under two variants, side by side on one shared scale.

Two readings of the same example: each variant's pooling weights for the option it chose (no model
call; heads without pooling weights say so), or captum's attribution of each variant's score for the
gold option (the same target for both, so the two maps answer the same question: what pushed this
variant towards, or away from, the right answer). Both are drawn by the Ask tab's renderer, and one
legend reads both sides. What was computed is kept, so opacity and view repaint without the model.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from vqa_demo.config import OPTION_LETTERS
from vqa_demo.ui.explain_panels import attribution_panels, compute_attribution, method_of, pooling_panels
from vqa_demo.ui.explain_render import VIEWS
from vqa_demo.ui.holder import ModelUnavailable, PredictorHolder
from vqa_demo.ui.status import status_error
from vqa_demo.ui.tabs.error_explain import LiveRun

log = logging.getLogger(__name__)

POOLING, ATTRIBUTION = "Pooling weights of each one's choice", "Attribution of the gold option"
READINGS = (POOLING, ATTRIBUTION)
EMPTY = (None, "", "", None, "", "", "")


def message_views(message: str) -> tuple:
    """The seven views with ``message`` under both sides."""
    return None, "", message, None, "", message, ""


def pooling_views(run: LiveRun, names: list[str], opacity: float, view: str) -> tuple:
    """Each variant's pooling weights for the option it chose, on one scale (no model call)."""
    attentions = [run.predictions[name].attention for name in names]
    missing = [name for name, attention in zip(names, attentions) if attention is None]
    if missing:
        return message_views(
            f"{' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} no pooling weights (only "
            f"attentive heads pool with weights): choose “{ATTRIBUTION}” to compare what drove them."
        )
    panels, legend = pooling_panels(run.image, attentions, opacity, view)
    captions = [
        f"**{name}** chose {OPTION_LETTERS[run.predictions[name].choice]}. {caption}"
        for name, (_, _, caption) in zip(names, panels)
    ]
    return (*panels[0][:2], captions[0], *panels[1][:2], captions[1], legend)


def attribution_pair_views(stored: tuple, opacity: float, view: str) -> tuple:
    """The seven views of kept attributions ``(result, attributions, grid, names)``; no model call."""
    result, attributions, grid, _ = stored
    # Attribution captions name their variant and the option they attribute.
    panels, legend = attribution_panels(result, attributions, opacity, grid, view)
    return (*panels[0], *panels[1], legend)


def pair_views(kept: tuple | None, run: LiveRun | None, opacity: float, view: str) -> tuple:
    """Repaint what :meth:`PairCallbacks.show` kept for another opacity or view; nothing when none."""
    if kept is None or run is None:
        return (gr.update(),) * 7
    reading, payload = kept
    if reading == POOLING:
        return pooling_views(run, payload, opacity, view)
    return attribution_pair_views(payload, opacity, view)


class PairCallbacks:
    """Event handlers of the Errors tab's two-variant comparison; plain data or ``gr.update``."""

    def __init__(self, holder: PredictorHolder):
        self.holder = holder

    @staticmethod
    def choices(run: LiveRun | None) -> tuple:
        """Both dropdowns' choices, the variants that answered the example now, the first two picked."""
        names = list(run.predictions) if run is not None else []
        first = names[0] if names else None
        second = names[1] if len(names) > 1 else first
        return gr.update(choices=names, value=first), gr.update(choices=names, value=second), *EMPTY, None

    def show(
        self,
        run: LiveRun | None,
        first: str | None,
        second: str | None,
        reading: str,
        method_label: str,
        steps: float,
        opacity: float,
        view: str = VIEWS[0],
        progress=gr.Progress(),  # noqa: B008 (Gradio injects the tracker through this default)
    ) -> tuple:
        """The seven views of ``first`` and ``second`` on the selected example, and what to keep for repaints."""
        if run is None:
            return *message_views(status_error("Select an example first.")), None
        names = [first, second]
        if any(name not in run.predictions for name in names):
            return *message_views(status_error("Choose two variants that answered this example.")), None
        if first == second:
            return *message_views(status_error("Choose two different variants.")), None
        if reading == POOLING:
            return *pooling_views(run, names, opacity, view), (POOLING, names)
        try:
            predictor = self.holder.get()
            result = run.as_ask_result(predictor)
            pixel_values = result.image.pixel_values
            attributions = []
            for done, name in enumerate(names):
                progress(done / 2, desc=f"Attributing {name}…")
                attributions.append(
                    compute_attribution(
                        predictor,
                        pixel_values,
                        run.question,
                        run.options,
                        name,
                        run.gold,
                        method_of(method_label),
                        int(steps),
                        lambda fraction, done=done: progress((done + fraction) / 2, desc="Attributing…"),
                    )
                )
        except ModelUnavailable as error:
            return *message_views(status_error(str(error))), None
        except Exception as error:  # report, do not crash the session
            log.exception("attributing two variants failed")
            return *message_views(
                status_error(f"Attribution failed ({type(error).__name__}: {error}).")
            ), None
        stored: Any = (result, attributions, predictor.backbone.patch_grid(pixel_values), names)
        return *attribution_pair_views(stored, opacity, view), (ATTRIBUTION, stored)
