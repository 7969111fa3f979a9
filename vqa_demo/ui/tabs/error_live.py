"""The Errors tab's live part: answer the selected example now, repaint its side-by-side views for
another variant or opacity, and attribute the gold and the chosen option on demand.

The explanation itself is :mod:`vqa_demo.ui.tabs.error_explain`'s; these handlers find the example, check
that it can be answered, and turn failures into one status sentence.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.explain_panels import method_of
from vqa_demo.ui.explain_render import VIEWS
from vqa_demo.ui.holder import ModelUnavailable, PredictorHolder
from vqa_demo.ui.status import status_error, status_ok
from vqa_demo.ui.tabs.error_explain import LiveRun, attribute_both, attribution_views, live_run, side_views

log = logging.getLogger(__name__)


class LiveErrorCallbacks:
    """Event handlers that run (or repaint) the model on the selected example; plain data or ``gr.update``.

    ``by_index`` maps an example's ``index`` to its stored record (the Errors tab's, shared).
    """

    def __init__(self, holder: PredictorHolder, assets: AppAssets, by_index: dict[Any, dict]):
        self.holder = holder
        self.assets = assets
        self.by_index = by_index

    def live(self, sample: dict | None, variant: str | None, opacity: float, view: str = VIEWS[0]) -> tuple:
        """Answer the selected example now: (run, status, seven side-by-side views, seven cleared attribution views)."""
        cleared = (None, "", "", None, "", "", "")
        record = self.by_index.get(sample.get("index")) if sample else None
        if record is None:
            return (
                None,
                status_error("Pick an example first."),
                *side_views(None, None, opacity),
                *cleared,
            )
        image = self.assets.validation_image(record.get("file_name"))
        if image is None:
            message = status_error(f"The image {record.get('file_name')!r} is not in the validation folder.")
            return None, message, *side_views(None, None, opacity), *cleared
        k = len(record["options"])
        names = [n for n in sample.get("variants") or [] if n in self.holder.names]
        names = [n for n in names if self.holder.info(n).incompatibility(k) is None]
        if not names:
            message = status_error("None of the selected variants is loaded: tick one that the app serves.")
            return None, message, *side_views(None, None, opacity), *cleared
        try:
            run = live_run(self.holder.get(), record, image, names)
        except ModelUnavailable as error:
            return None, status_error(str(error)), *side_views(None, None, opacity), *cleared
        except Exception as error:  # report, do not crash the session
            log.exception("live run failed")
            message = status_error(f"Answering the example failed ({type(error).__name__}: {error}).")
            return None, message, *side_views(None, None, opacity), *cleared
        changed = [
            n for n, p in run.predictions.items() if p.choice != record["variants"].get(n, {}).get("choice")
        ]
        note = (
            f"Changed since the stored run: {', '.join(changed)}."
            if changed
            else "Same choices as the stored run."
        )
        seconds = sum(p.seconds for p in run.predictions.values())
        status = status_ok(f"Answered now by {len(run.predictions)} variants in {seconds:.2f} s. {note}")
        return run, status, *side_views(run, variant, opacity, view), *cleared

    @staticmethod
    def render(run: LiveRun | None, variant: str | None, opacity: float, view: str = VIEWS[0]) -> tuple:
        """Repaint the side-by-side views for another variant, opacity or view (no model call)."""
        return side_views(run, variant, opacity, view)

    @staticmethod
    def repaint(stored: tuple | None, opacity: float, view: str) -> tuple:
        """Repaint the kept attributions for another opacity or view (no model call); nothing when none."""
        if stored is None:
            return (gr.update(),) * 7
        return attribution_views(stored, opacity, view)

    def attribute(
        self,
        run: LiveRun | None,
        variant: str | None,
        method_label: str,
        steps: float,
        opacity: float,
        view: str = VIEWS[0],
        progress=gr.Progress(),  # noqa: B008 (Gradio injects the tracker through this default)
    ) -> tuple:
        """Captum attributions of the gold and the chosen option: (image, tokens, caption) x 2, one legend, and
        the attributions kept for :meth:`repaint`."""
        if run is None or not variant or variant not in run.predictions:
            message = status_error("Select an example and a variant first.")
            return None, "", message, None, "", message, "", None
        method = method_of(method_label)
        progress(0, desc="Computing attributions…")
        try:
            return attribute_both(
                self.holder.get(),
                run,
                variant,
                method,
                int(steps),
                opacity,
                view,
                on_progress=lambda fraction: progress(fraction, desc="Computing attributions…"),
            )
        except ModelUnavailable as error:
            return None, "", status_error(str(error)), None, "", "", "", None
        except Exception as error:  # report, do not crash the session
            log.exception("attribution failed")
            message = status_error(f"Attribution failed ({type(error).__name__}: {error}).")
            return None, "", message, None, "", "", "", None
