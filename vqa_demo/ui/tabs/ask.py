"""The Ask tab: an image, a question, 2 to 8 options and a choice of variants -> every variant's answer.

The callbacks are methods of :class:`AskCallbacks` and return plain values (or ``gr.update``), so
tests call them directly with a fake predictor. The image payload is admitted by
:class:`~vqa_demo.ui.image_source.ImageAdmission` (run by the events themselves, see
:func:`~vqa_demo.ui.image_source.admitting_event`), then all user
input passes through :func:`~vqa_demo.inputs.prepare_image` / :func:`~vqa_demo.inputs.prepare_question`;
a problem becomes one sentence in the status box (replaced on every answer, so nothing lingers) and a
``{"error": {"category", "message"}}`` object in the raw-scores JSON for API callers; the model is
not called.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS
from vqa_demo.config import OPTION_LETTERS as LETTERS
from vqa_demo.inputs import InputError, check_option_count, prepare_image, prepare_question
from vqa_demo.inputs.decode_worker import DecodeWorker
from vqa_demo.inputs.image import inspect_image, read_image_file
from vqa_demo.ui.answer_state import AskResult, forget_answer
from vqa_demo.ui.assets import Example
from vqa_demo.ui.holder import ModelUnavailable, PredictorHolder
from vqa_demo.ui.image_box import image_alert_html, image_box
from vqa_demo.ui.image_source import ImageAdmission, RefusedImage, admitting_event
from vqa_demo.ui.model_card import ModelCard
from vqa_demo.ui.plots import empty_figure, option_label, probabilities_figure
from vqa_demo.ui.server_settings import AppConfig
from vqa_demo.ui.session_memory import TRIM_AFTER_BYTES, AnswerMemory, keep_image, return_freed_memory
from vqa_demo.ui.status import error_json, status_error, status_ok
from vqa_demo.ui.tabs.ask_arguments import (
    DEFAULT_OPTIONS,
    BadArgument,
    named_endpoint,
    pass_through,
    requested_count,
    requested_variants,
)
from vqa_demo.ui.tabs.option_buttons import wire_option_buttons
from vqa_demo.ui.tabs.variant_ticks import VariantTicks

if TYPE_CHECKING:
    from vqa_demo.predictor import VariantPrediction

log = logging.getLogger(__name__)

# "score share": the softmax of the decision rule's own scores, not a calibrated probability
SUMMARY_COLUMNS = ["variant", "answer", "score share", "time (ms)", "note"]


# Why an answer was refused, besides the input categories of vqa_demo.inputs and the argument
# categories of vqa_demo.ui.tabs.ask_arguments (API callers branch on it).
NO_VARIANT, VARIANT_INCOMPATIBLE = "no_variant", "variant_incompatible"
MODEL_UNAVAILABLE, PREDICTION_FAILED = "model_unavailable", "prediction_failed"


def empty_summary() -> pd.DataFrame:
    return pd.DataFrame(columns=SUMMARY_COLUMNS)


def summary_table(
    options: list[str],
    predictions: dict[str, VariantPrediction],
    skipped: dict[str, str],
    chance_level: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """One row per variant: chosen option, its probability, time per example, remarks."""
    rows = []
    for name, p in predictions.items():
        remarks = ["chance level on validation"] if name in chance_level else []
        note = "; ".join(remarks + (["prompt text was truncated"] if p.truncated else []))
        rows.append(
            [
                name,
                option_label(p.choice, options[p.choice], 40),
                f"{p.probabilities[p.choice]:.1%}",
                round(p.seconds * 1000, 1),
                note,
            ]
        )
    rows += [[name, "—", "", "", f"skipped: {reason}"] for name, reason in skipped.items()]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def cond_gen_markdown(options: list[str], predictions: dict[str, VariantPrediction]) -> str:
    """COND_GEN's generated text and its per-option cosine and log-likelihood scores, as Markdown."""
    blocks = []
    for name, p in predictions.items():
        details = p.cond_gen
        if details is None:
            continue
        generated = details.generated_text or "(nothing)"
        cosine_choice = details.cosine_choice
        lines = [
            f"**{name}** generated “{generated}” · nearest option by cosine: "
            f"**{option_label(cosine_choice, options[cosine_choice], 40)}** · "
            f"decided by `{details.scoring}`: **{option_label(p.choice, options[p.choice], 40)}**",
            "",
            "| option | cosine | log-lik (mean/token) | log-lik (sum) | log-lik (per char) |",
            "|---|---:|---:|---:|---:|",
        ]
        for k, option in enumerate(options):
            mark = " ✔" if k == p.choice else ""
            per_char = f"{details.loglik_char[k]:.3f}" if details.loglik_char is not None else "–"
            lines.append(
                f"| {option_label(k, option, 40)}{mark} | {details.cosine[k]:.3f} | "
                f"{details.loglik_mean[k]:.3f} | {details.loglik_sum[k]:.2f} | {per_char} |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def raw_scores(options: list[str], predictions: dict[str, VariantPrediction]) -> dict[str, Any]:
    """The JSON the API returns: per variant, the choice, its text and every score."""
    out: dict[str, Any] = {}
    for name, p in predictions.items():
        data = p.to_dict()
        extras = data.pop("extras")
        extras.pop("attention", None)
        out[name] = {**data, "answer": options[p.choice], **extras}
    return out


class AskCallbacks:
    """The Ask tab's event handlers, bound to the shared predictor holder."""

    def __init__(
        self,
        holder: PredictorHolder,
        config: AppConfig,
        examples: list[Example] | None = None,
        card: ModelCard | None = None,
    ):
        self.holder = holder
        self.config = config
        self.examples = examples or []
        self.card = card
        self.ticks = VariantTicks(holder, card)
        self.images = ImageAdmission([config.examples_dir, config.validation_dir], config.max_image_bytes)
        self.decoder = DecodeWorker(config.decode_seconds)
        self.memory = AnswerMemory(
            config.session_ttl, config.session_memory_bytes, sweep_every=min(60.0, config.session_ttl / 4)
        )

    # -- option rows and variant availability ----------------------------------------------------
    @staticmethod
    def clamp_count(count: Any) -> int:
        try:
            value = int(count)
        except (TypeError, ValueError):
            value = DEFAULT_OPTIONS
        return max(MIN_OPTIONS, min(MAX_OPTIONS, value))

    def option_updates(self, count: int) -> list[dict]:
        """Rows past ``count`` are hidden and emptied: *+ Add option* then shows an empty row, not the removed text."""
        return [
            gr.update(visible=True) if i < count else gr.update(visible=False, value="")
            for i in range(MAX_OPTIONS)
        ]

    @staticmethod
    def button_updates(count: int) -> list[dict]:
        """+ and - are disabled where they would do nothing (at 8 and at 2 options)."""
        return [gr.update(interactive=count < MAX_OPTIONS), gr.update(interactive=count > MIN_OPTIONS)]

    def change_count(self, count: Any, delta: int) -> list:
        """Add (+1) or remove (-1) an option row: the new count, row, checkbox and +/- button updates.

        The browser runs these outcomes (:mod:`vqa_demo.ui.tabs.option_buttons`), so they depend on
        ``count`` and ``delta`` alone.
        """
        old = self.clamp_count(count)
        new = self.clamp_count(old + delta)
        return [new, *self.option_updates(new), *self.ticks.updates(new, old), *self.button_updates(new)]

    def pick_example(self, index: int, current: Any = None) -> list:
        """Fill the form from example ``index``: image, question, options (unused rows emptied).

        ``current`` is the form's option count before; ticks of variants that fit both are kept.
        """
        if not 0 <= index < len(self.examples):
            unchanged = 3 + MAX_OPTIONS + len(self.holder.infos) + len(self.button_updates(DEFAULT_OPTIONS))
            return [gr.update() for _ in range(unchanged)]
        example = self.examples[index]
        count = self.clamp_count(len(example.options) or DEFAULT_OPTIONS)
        values = list(example.options[:MAX_OPTIONS]) + [""] * (
            MAX_OPTIONS - len(example.options[:MAX_OPTIONS])
        )
        return [
            str(example.image_path),
            example.question,
            count,
            *[gr.update(value=v, visible=i < count) for i, v in enumerate(values)],
            *self.ticks.updates(count, None if current is None else self.clamp_count(current)),
            *self.button_updates(count),
        ]

    def on_example_select(self, current: Any, evt: gr.SelectData) -> list:
        """A gallery click; an index the gallery cannot have sent (a crafted event) changes nothing."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) and evt.index else evt.index
        valid = isinstance(index, int) and not isinstance(index, bool)
        return self.pick_example(index if valid else -1, current)

    def check_upload(self, image: Any) -> tuple:
        """A new upload is checked at once: ``(image update, status)``.

        A file that is not a usable image (a text file renamed ``.png``, a bomb header, a JPEG of
        thousands of scans) is cleared with the reason, instead of showing a broken picture until
        *Answer* is pressed; a good upload clears the status left by an earlier refusal. Only the
        header is read here (no pixel is decoded): *Answer* decodes the image, once.
        """
        if image is None:
            return gr.update(), ""
        try:
            if isinstance(image, RefusedImage):
                raise image.error
            inspect_image(image, max_bytes=self.config.max_image_bytes)
        except InputError as error:
            # A plain None clears the picture; an update would rebuild the component for this session.
            return None, status_error(error.message)
        return gr.update(), ""

    def prepared_image(self, image: Any):
        """The admitted image decoded (in :attr:`decoder`, under its time budget) and checked.

        Raises :class:`InputError` as :func:`~vqa_demo.inputs.prepare_image` does.
        """
        if isinstance(image, RefusedImage):
            raise image.error
        if image is None:
            raise InputError("image_missing", "No image was given: upload an image and try again.")
        if not isinstance(image, (str, Path, bytes)):  # a PIL image or array from a Python caller
            return prepare_image(image, max_bytes=self.config.max_image_bytes)
        data = image if isinstance(image, bytes) else read_image_file(image, self.config.max_image_bytes)
        inspect_image(data, max_bytes=self.config.max_image_bytes)  # header checks: no worker needed
        return self.decoder.prepare(data, max_bytes=self.config.max_image_bytes)

    # -- answering --------------------------------------------------------------------------------
    def answer(self, image: Any, question: str | None, count: Any, *values: Any) -> tuple:
        """Answer with the ticked variants.

        ``values`` are the 8 option texts, then one tick per variant (in ``holder.infos`` order).
        Returns ``(status, summary, chart, cond_gen, raw scores, result)``.
        """
        started = time.perf_counter()
        try:
            count = requested_count(count)
            # The form keeps k in range; an API caller's k=1 or k=9 is refused, not clamped.
            check_option_count(count, min_options=MIN_OPTIONS, max_options=MAX_OPTIONS)
            requested = requested_variants(self.holder.names, list(values[MAX_OPTIONS:]))
            prepared_question = prepare_question(
                question, list(values[:MAX_OPTIONS])[:count], min_options=MIN_OPTIONS, max_options=MAX_OPTIONS
            )
            prepared_image = self.prepared_image(image)
        except (InputError, BadArgument) as error:
            return self._failure(error.message, error.category)
        options = prepared_question.options
        skipped = {
            name: reason
            for name in requested
            if (reason := self.holder.info(name).incompatibility(len(options)))
        }
        runnable = [name for name in requested if name not in skipped]
        if not runnable:
            if skipped:
                return self._failure(
                    "None of the ticked variants can answer this: " + "; ".join(skipped.values()),
                    VARIANT_INCOMPATIBLE,
                )
            return self._failure("Tick at least one variant to answer with.", NO_VARIANT)
        try:
            predictor = self.holder.get()
            kept = keep_image(prepared_image.image, predictor.pixel_values)
            decoded_bytes = 3 * prepared_image.image.width * prepared_image.image.height
            image_notes, prepared_image = prepared_image.notes, None  # frees the full-resolution pixels
            if decoded_bytes >= TRIM_AFTER_BYTES:
                return_freed_memory()
            predictions = predictor.predict(kept.pixel_values, prepared_question.question, options, runnable)
        except ModelUnavailable as error:
            return self._failure(str(error), MODEL_UNAVAILABLE)
        except Exception as error:  # a model failure must not leave the UI without an answer
            log.exception("prediction failed")
            return self._failure(f"Answering failed ({type(error).__name__}: {error}).", PREDICTION_FAILED)
        seconds = time.perf_counter() - started
        notes = image_notes + prepared_question.notes + [f"{n} skipped: {r}" for n, r in skipped.items()]
        result = AskResult(
            self.memory.admit(kept), prepared_question.question, options, predictions, seconds, notes
        )
        figure = probabilities_figure(
            options,
            {n: p.probabilities for n, p in predictions.items()},
            {n: p.choice for n, p in predictions.items()},
        )
        message = f"Answered with {len(predictions)} variant{'s' if len(predictions) > 1 else ''} in {seconds:.2f} s."
        return (
            status_ok(message, notes),
            summary_table(options, predictions, skipped, self.ticks.chance_level_names()),
            figure,
            cond_gen_markdown(options, predictions),
            raw_scores(options, predictions),
            result,
        )

    def api_endpoint(self):
        """:meth:`answer` under the ``/answer`` API's parameter names (:func:`named_endpoint`)."""
        return named_endpoint(self.answer, self.holder.names)

    @staticmethod
    def _failure(message: str, category: str) -> tuple:
        # No gr.Warning toast: toasts from earlier refusals stayed on screen after the input was
        # fixed, while the status box is replaced by every answer.
        return status_error(message), empty_summary(), None, "", error_json(message, category), None


def admit_any_shape(image: gr.Image) -> None:
    """Let ``image`` take every payload, whatever its shape, for :func:`admitting_event` to admit.

    Gradio validates an Image payload against ``ImageData`` first (a bare string or a list then
    fails with a bare "Error"). The admission itself is not attached here: a ``gr.update`` for the
    image rebuilds the component for its session from its constructor arguments, which would drop
    it. Instance overrides, not a subclass: Gradio writes a .pyi stub next to any module that defines
    a component class.
    """
    schema = image.api_info()  # the API description still comes from ImageData
    image.api_info = lambda: schema
    image.data_model = None


def build_ask_inputs(callbacks: AskCallbacks):
    """Lay out the question form; returns the components the events need (a small namespace)."""
    ns = SimpleNamespace()
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            ns.image = image_box("ask-image", "upload", height=340, label="Image")
            admit_any_shape(ns.image)
            # Messages about the image sit under it (vqa_demo.ui.tabs.ask_freshness).
            ns.image_status = gr.Markdown(elem_classes="status-box", elem_id="image-status")
            ns.image_alert = gr.HTML(
                image_alert_html(callbacks.config.max_image_bytes), elem_id="image-alert"
            )
            ns.refusal = gr.State("")
            if callbacks.examples:
                gr.Markdown("**Examples** · click one to fill the form", elem_classes="section-title")
            ns.gallery = gr.Gallery(
                value=[(str(e.image_path), e.caption) for e in callbacks.examples] or None,
                label="Examples",
                show_label=False,
                columns=5,
                height="auto",
                allow_preview=False,
                visible=bool(callbacks.examples),
                elem_id="examples-gallery",
                interactive=False,
                buttons=[],
                object_fit="contain",
            )
        with gr.Column(scale=6, min_width=360):
            ns.question = gr.Textbox(
                label="Question", lines=2, placeholder="Ask something about the image", elem_id="question"
            )
            ns.count = gr.Number(
                value=DEFAULT_OPTIONS, precision=0, visible=False, label="number of options (K)"
            )
            ns.count.preprocess = pass_through
            ns.options = []
            with gr.Group():
                for i in range(MAX_OPTIONS):
                    ns.options.append(
                        gr.Textbox(
                            value="",
                            label=f"Option {LETTERS[i]}",
                            visible=i < DEFAULT_OPTIONS,
                            placeholder=f"Option {LETTERS[i]}",
                            elem_id=f"option-{LETTERS[i]}",
                        )
                    )
            with gr.Row(elem_classes="option-buttons"):
                ns.add = gr.Button("+ Add option", size="sm", elem_id="add-option")
                ns.remove = gr.Button("- Remove option", size="sm", elem_id="remove-option")
            gr.Markdown("**Variants**", elem_classes="section-title")
            ns.variants = []
            with gr.Row(elem_classes="variant-row"):
                for info in callbacks.holder.infos:
                    ns.variants.append(
                        gr.Checkbox(
                            value=callbacks.ticks.default_tick(info.name),
                            label=info.name,
                            info=callbacks.ticks.variant_info(info.name),
                            min_width=200,
                            elem_id=f"tick-{info.name}",
                        )
                    )
            if not callbacks.holder.infos:
                gr.Markdown(status_error(callbacks.holder.problem or "No variant checkpoints were found."))
            elif callbacks.holder.skipped:
                gr.Markdown("⚠ " + callbacks.holder.skipped_text, elem_id="skipped-variants")
            ns.submit = gr.Button("Answer", variant="primary", size="lg", elem_id="answer-button")
            ns.progress_note = gr.Markdown(elem_id="answer-progress")
            ns.status = gr.Markdown(label="Status", elem_classes="status-box", elem_id="ask-status")
            ns.notes = gr.Markdown(elem_classes="domain-note", elem_id="answer-notes")
    return ns


def build_ask_outputs(callbacks: AskCallbacks):
    ns = SimpleNamespace()
    ns.summary = gr.Dataframe(
        value=empty_summary(), label="Answers", interactive=False, wrap=True, elem_id="summary-table"
    )
    # The first Plotly figure of a process takes about a second (plotly loads its validators
    # lazily), and the browser fetches plotly.js only when it first shows a plot: one throw-away
    # figure now and a placeholder plot on the page pay both before the first answer.
    probabilities_figure(["A", "B"], {"cond_gen": [0.5, 0.5]}, {"cond_gen": 0})
    ns.chart = gr.Plot(
        value=empty_figure("Each variant's score share per option appears here.", height=200),
        label="Score share of each option, per variant (softmax of its scores; chosen option outlined)",
        elem_id="scores-chart",
    )
    ns.cond_gen = gr.Markdown(label="COND_GEN details", elem_classes="cond-gen-box", elem_id="cond-gen")
    with gr.Accordion("Raw scores (JSON)", open=False):
        ns.raw = gr.JSON(label="Per-variant scores")
    ttl = callbacks.config.session_ttl
    ns.result = gr.State(None, time_to_live=ttl if ttl > 0 else None, delete_callback=forget_answer)
    return ns


def wire_ask(callbacks: AskCallbacks, form, out, starting: Callable[[], str] | None = None) -> Any:
    """Connect the form's events; returns the Answer event (for chaining the explanation).

    ``starting`` (optional) writes the line under *Answer* first, so it is there before the answer runs.
    """
    rows_ticks_buttons = [*form.options, *form.variants, form.add, form.remove]
    wire_option_buttons(callbacks.change_count, form)
    form.gallery.select(
        callbacks.on_example_select,
        form.count,
        [form.image, form.question, form.count, *rows_ticks_buttons],
        queue=False,
        api_visibility="private",
    )
    # preprocess=False: the callbacks admit the image themselves (admitting_event), so no state of
    # the component decides whether the checks run. Messages about the image sit under it.
    form.image.upload(
        admitting_event(callbacks.check_upload, callbacks.images, [form.image]),
        form.image,
        [form.image, form.image_status],
        api_visibility="private",
        preprocess=False,
    )
    inputs = [form.image, form.question, form.count, *form.options, *form.variants]
    trigger = form.submit.click
    if starting is not None:
        trigger = form.submit.click(
            starting, None, form.progress_note, queue=False, api_visibility="private", show_progress="hidden"
        ).then
    return trigger(
        admitting_event(callbacks.api_endpoint(), callbacks.images, inputs),
        inputs,
        [form.status, out.summary, out.chart, out.cond_gen, out.raw, out.result],
        api_name="answer",
        concurrency_id="model",
        concurrency_limit=1,
        preprocess=False,
    )
