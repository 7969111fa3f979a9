"""Build the whole Gradio app (``gr.Blocks``) without launching it and without loading the model.

The predictor is shared by all sessions and loaded on the first request that needs it (or injected,
for tests). Events that run the model share one concurrency slot: peft's active adapter is global.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from vqa_demo.ui.answer_notes import AnswerNotes
from vqa_demo.ui.answer_state import forget_answer
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.cached_image import install as whole_image_saves
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.model_card import build_model_card, card_markdown, card_title
from vqa_demo.ui.server_settings import AppConfig
from vqa_demo.ui.tabs.ask import AskCallbacks, build_ask_inputs, build_ask_outputs, wire_ask
from vqa_demo.ui.tabs.ask_freshness import Freshness, wire_freshness
from vqa_demo.ui.tabs.compare import build_compare_tab
from vqa_demo.ui.tabs.error_browser import ErrorBrowser
from vqa_demo.ui.tabs.errors import build_errors_tab, build_link_inputs, wire_links, wire_open_in_ask
from vqa_demo.ui.tabs.explain import ExplainCallbacks, build_explain, wire_explain
from vqa_demo.ui.url_state import wire_url_state
from vqa_demo.ui.zerogpu import Decorator, decorate_model_events, on_zerogpu, spaces_gpu

if TYPE_CHECKING:
    from vqa_demo.predictor import Predictor

HEADER = """# Multiple-choice VQA workbench
Ask a question about a picture and give 2 to 8 possible answers. Each variant of the model (trained
to answer in its own way) picks one and says how sure it is, and *Explain* shows which parts of the
picture and the question drove the choice. **Compare** shows how often each variant is right on
held-out questions; **Errors** lists the questions they get wrong. The model card below says more."""


def build_demo(
    config: AppConfig | None = None,
    predictor: Predictor | None = None,
    holder: PredictorHolder | None = None,
    gpu_decorator: Decorator | None = None,
) -> gr.Blocks:
    """The app for ``config`` (default: from the environment). Pass ``predictor`` (or a ``holder``) to skip loading.

    ``gpu_decorator(function, duration)`` wraps the functions of the events that run the model
    (default: ``spaces.GPU`` on a ZeroGPU Space, none elsewhere; see :mod:`vqa_demo.ui.zerogpu`).
    """
    config = config or AppConfig.from_env()
    whole_image_saves()  # a picture returned twice must never reach the browser cut short
    if holder is None:
        holder = (
            PredictorHolder(predictor=predictor)
            if predictor is not None
            else PredictorHolder.from_config(config)
        )
    assets = AppAssets.load(config)
    card = build_model_card(
        holder.infos, assets.comparison, holder.checkpoints, config.base, config.precision, config.device
    )
    ask = AskCallbacks(holder, config, assets.examples, card)
    explain = ExplainCallbacks(holder, card)
    notes = AnswerNotes(holder, card)
    errors = ErrorBrowser(holder, assets)
    gpu_decorator = gpu_decorator or (spaces_gpu if on_zerogpu() else None)
    if gpu_decorator is not None:
        decorate_model_events(ask, explain, errors, gpu_decorator)
    with gr.Blocks(title=config.title, delete_cache=config.delete_cache) as demo:
        gr.Markdown(HEADER, elem_id="app-header")
        url_note = gr.Markdown(visible=False, elem_id="url-note", elem_classes="status-box")
        url_query = gr.Textbox(visible="hidden", elem_id="url-query")
        link_inputs = build_link_inputs()
        with gr.Tabs() as tabs:
            with gr.Tab("Ask", id="ask") as ask_tab:
                # Closed: the examples, the upload and Answer belong on the first screen.
                with gr.Accordion(card_title(card), open=False, elem_id="model-card"):
                    gr.Markdown(card_markdown(card))
                form = build_ask_inputs(ask)
                outputs = build_ask_outputs(ask)
                view = build_explain(explain)
            with gr.Tab("Compare", id="compare") as compare_tab:
                compare = build_compare_tab(assets)
            with gr.Tab("Errors", id="errors") as errors_tab:
                errors_view = build_errors_tab(errors)
        freshness = Freshness(holder, forget_answer)
        answer_event = wire_ask(ask, form, outputs, freshness.starting)
        answer_event.then(notes.render, outputs.result, form.notes, api_visibility="private")
        wire_explain(explain, view, outputs.result, answer_event)
        opened = wire_open_in_ask(errors, errors_view, form, tabs, ask.ticks.variant_info)
        wire_freshness(freshness, form, outputs, view, answer_event, [opened] if opened else [])
        # Large values (the Errors rows, the charts) go when their tab is first shown, not in /config.
        lazies = {"compare": compare["lazy"]}
        compare["lazy"].wire(compare_tab)
        if errors_view is not None:
            lazies["errors"] = errors_view.lazy
            errors_view.lazy.wire(errors_tab)
        linked = wire_links(errors, errors_view, tabs, link_inputs, compare.get("mcnemar"))
        tab_items = {"ask": ask_tab, "compare": compare_tab, "errors": errors_tab}
        switches = {"ask": [opened] if opened else [], "errors": linked}
        wire_url_state(demo, tabs, tab_items, url_note, url_query, errors_view, lazies, switches)
    # Files this app put in Gradio's cache (uploads, served outputs) are the only cached ones admitted.
    ask.images.watch(demo)
    # api_open=False: Gradio otherwise (off Spaces) accepts direct POSTs to /gradio_api/run/<name>
    # that skip the queue, its size limit and the one-at-a-time model slot.
    demo.queue(max_size=config.queue_size, default_concurrency_limit=1, api_open=False)
    # Kept for tests and launchers that want to reach the pieces.
    demo.vqa_holder, demo.vqa_assets, demo.vqa_config, demo.vqa_card = holder, assets, config, card
    demo.vqa_memory, demo.vqa_decoder = ask.memory, ask.decoder
    return demo
