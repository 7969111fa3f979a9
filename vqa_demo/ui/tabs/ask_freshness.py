"""The Ask tab never shows an answer to a question it was not asked, and says things where they happen.

- **Old results go** when the image, the question, an option, the number of options or a variant
  tick changes, or an example is picked (also from the Errors tab's *Open in Ask*): the table, the
  chart, the COND_GEN panel, the notes, the heatmaps and the attribution are cleared, the kept
  answer is released, and the status says why. Text, ticks and the image count on a person's
  edits (Gradio's ``input``, ``upload``, ``clear`` and ``select`` events); the option count (set in
  the browser by the +/- buttons) on any change.
- **Image messages sit under the image**: an upload's refusal appears there, a file over the size
  limit is caught in the browser before it is sent (the limit is on the page), and *Answer* after
  a refused file repeats the reason instead of "No image was given".
- **The first answer says it loads the model**: a line under *Answer* while it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.plots import empty_figure
from vqa_demo.ui.status import failure_category
from vqa_demo.ui.tabs.ask import empty_summary

STALE = "ℹ The form changed, so the previous answers were cleared: press **Answer** for new ones."
CHART_PLACEHOLDER = "Each variant's probability per option appears here."
LOADING = "⏳ Loading the model for the first answer: this one takes a few seconds longer."
ANSWERING = "⏳ Answering…"
IMAGE_MISSING = "image_missing"  # vqa_demo.inputs' category for an answer without an image


class Freshness:
    """Clears what an answer left when its inputs change; keeps the last upload refusal for *Answer*.

    ``forget`` releases a kept answer (:func:`vqa_demo.ui.answer_state.forget_answer`).
    """

    def __init__(self, holder: PredictorHolder, forget: Callable[[Any], None]):
        self.holder = holder
        self.forget = forget

    @staticmethod
    def cleared() -> list:
        """The values of :func:`result_outputs`, empty: table, chart, COND_GEN, JSON, answer, notes, explain."""
        no_picker = gr.update(choices=[], value=None, interactive=False)
        explain = [no_picker, None, "", "", no_picker, None, "", "", None]
        chart = empty_figure(CHART_PLACEHOLDER, height=200)
        return [empty_summary(), chart, "", None, None, "", *explain]

    def on_edit(self, result: Any) -> list:
        """``[status, *cleared]`` after a person changed the form; nothing changes while no answer is shown."""
        if result is None:
            return [gr.update() for _ in range(1 + len(self.cleared()))]
        self.forget(result)
        return [STALE, *self.cleared()]

    def on_fill(self, result: Any) -> list:
        """:meth:`on_edit` without the status (the filler writes its own)."""
        return self.on_edit(result)[1:]

    @staticmethod
    def refusal_of(image_status: str | None) -> str:
        """What the image box last said about an upload (kept for *Answer*); empty after a good one."""
        return image_status or ""

    @staticmethod
    def missing_image_reason(refusal: str, raw: Any, status: str) -> str:
        """*Answer* without an image right after a refused file: the refusal, not "No image was given"."""
        if refusal and failure_category(raw) == IMAGE_MISSING:
            return f"{refusal}\n\nThat file was not used: upload another image or pick an example."
        return status

    def starting(self) -> str:
        """The line under *Answer* while it runs: the first one also loads the model."""
        return ANSWERING if self.holder.loaded else LOADING


def result_outputs(outputs, view, form) -> list:
    """The components :meth:`Freshness.cleared` empties, in its order."""
    return [
        outputs.summary,
        outputs.chart,
        outputs.cond_gen,
        outputs.raw,
        outputs.result,
        form.notes,
        view.attn_variant,
        view.heatmap,
        view.tokens,
        view.caption,
        view.attr_variant,
        view.attr_image,
        view.attr_tokens,
        view.attr_caption,
        view.attribution,
    ]


def wire_freshness(freshness: Freshness, form, outputs, view, answer_event, fill_events=()) -> None:
    """Clear on edits and on ``fill_events`` (other tabs filling the form); route image messages."""
    cleared = result_outputs(outputs, view, form)
    quiet = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
    edits = [form.question.input, form.image.upload, form.image.clear, form.gallery.select]
    edits += [o.input for o in form.options] + [v.input for v in form.variants]
    # The +/- buttons run in the browser; the option count they set is the edit to watch.
    edits += [form.count.change]
    for trigger in edits:
        trigger(
            freshness.on_edit, outputs.result, [form.status, *cleared], trigger_mode="always_last", **quiet
        )
    for event in fill_events:
        event.then(freshness.on_fill, outputs.result, cleared, **quiet)
    # What the image box says about the current picture: a good upload, a pick or a clear resets it.
    for trigger in (form.gallery.select, form.image.clear):
        trigger(lambda: "", None, form.image_status, **quiet)
    form.image_status.change(freshness.refusal_of, form.image_status, form.refusal, **quiet)
    answer_event.then(lambda: "", None, form.progress_note, **quiet).then(
        freshness.missing_image_reason, [form.refusal, outputs.raw, form.status], form.status, **quiet
    )
