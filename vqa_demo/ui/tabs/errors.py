"""Layout and wiring of the Errors tab (the handlers are :class:`~vqa_demo.ui.tabs.error_browser.ErrorBrowser`'s and
its ``rerun``, :class:`~vqa_demo.ui.tabs.error_live.LiveErrorCallbacks`)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from vqa_demo.ui.explain_panels import METHOD_LABELS, opacity_slider, steps_slider, steps_update
from vqa_demo.ui.explain_render import VIEWS
from vqa_demo.ui.image_box import image_box
from vqa_demo.ui.lazy import LazyValues
from vqa_demo.ui.status import status_error
from vqa_demo.ui.tabs.error_browser import TABLE_COLUMNS, TABLE_TYPES, ErrorBrowser
from vqa_demo.ui.tabs.error_data import ALL_FAMILIES, ANY_POSITION, MISSED_BY_ALL, MISSED_BY_ANY
from vqa_demo.ui.tabs.error_links import LinkCallbacks
from vqa_demo.ui.tabs.error_pair import READINGS, pair_views


def build_filters(browser: ErrorBrowser) -> SimpleNamespace:
    ns = SimpleNamespace()
    ns.variants = gr.CheckboxGroup(
        browser.variant_choices,
        value=browser.default_variants,
        label="Variants",
        info="Validation accuracy after each name. Chance-level variants (an exact test cannot tell them from guessing) "
        "start unticked, unless all are, so their guesses do not bury the informative mistakes.",
        elem_id="errors-variants",
    )
    with gr.Row(equal_height=True):
        ns.family = gr.Dropdown(browser.family_choices, value=ALL_FAMILIES, label="Family", scale=2)
        ns.position = gr.Dropdown(
            browser.position_choices, value=ANY_POSITION, label="Gold position", scale=1
        )
        ns.missed_by = gr.Radio(
            [MISSED_BY_ANY, MISSED_BY_ALL], value=MISSED_BY_ANY, label="Missed by", scale=2
        )
        ns.disagree = gr.Checkbox(label="Only where the selected variants disagree", value=False, scale=2)
    with gr.Row(equal_height=True):
        ns.low = gr.Slider(0, 1, value=0, step=0.05, label="Wrong answer's score share from", scale=2)
        ns.high = gr.Slider(0, 1, value=1, step=0.05, label="to", scale=2)
        with gr.Column(scale=2, min_width=240):
            ns.caption = gr.Markdown("Loading the mistakes…", elem_id="errors-count")
            ns.unlink = gr.Button(
                "Show every mistake again", size="sm", visible=False, elem_id="errors-unlink"
            )
            ns.download = gr.DownloadButton(
                "Export these rows as CSV", size="sm", interactive=False, elem_id="errors-export"
            )
    return ns


def build_browse(ns: SimpleNamespace) -> None:
    # The rows arrive when the tab is first shown (vqa_demo.ui.lazy): not in the page's config.
    with gr.Tabs(elem_id="errors-views") as ns.views:
        with gr.Tab("Table", id="table"):
            ns.table = gr.Dataframe(
                headers=TABLE_COLUMNS,
                interactive=False,
                wrap=True,
                max_height=420,
                datatype=TABLE_TYPES,
                elem_id="errors-table",
                column_widths=["8%", "5%", "9%", "30%", "14%", "27%", "7%"],
            )
        with gr.Tab("Gallery (most confident mistakes first)", id="gallery"):
            ns.gallery = gr.Gallery(
                columns=6,
                height=420,
                allow_preview=False,
                show_label=False,
                elem_id="errors-gallery",
                object_fit="contain",
                interactive=False,
                buttons=[],
            )
        with gr.Tab("Confusion of positions", id="confusion"):
            ns.confusion = gr.Plot(
                label="Gold position (rows) vs chosen position (columns), selected variants",
                elem_id="errors-confusion",
            )


def build_example(ns: SimpleNamespace) -> None:
    gr.Markdown("### The selected example", elem_classes="section-title")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            ns.image = image_box("errors-image", "picture", height=280, label="Example")
            ns.open_in_ask = gr.Button(
                "Open in Ask (edit and re-run)", interactive=False, elem_id="errors-open-in-ask"
            )
        with gr.Column(scale=3):
            ns.details = gr.Markdown(
                "Select an example in the table or the gallery.", elem_id="errors-details"
            )
    ns.stored = gr.Plot(
        label="Stored probabilities of the selected variants (gold marked ✓, choices outlined)",
        elem_id="errors-stored-chart",
    )
    build_whatif(ns)
    with gr.Row(equal_height=True):
        ns.variant = gr.Dropdown(
            label="Explain the variant", choices=[], interactive=False, scale=2, elem_id="errors-variant"
        )
        ns.view = gr.Radio(list(VIEWS), value=VIEWS[0], label="Image view", scale=2, elem_id="errors-view")
        ns.opacity = opacity_slider(scale=2)
    ns.live_status = gr.Markdown(elem_classes="status-box", elem_id="errors-live-status")
    # One legend above the two sides: they share its scales (the Ask tab's renderer draws them).
    ns.sides = side_by_side("pooling weights", "errors-heatmap", "errors-pooling-legend")
    with gr.Row(equal_height=True):
        ns.method = gr.Radio(
            list(METHOD_LABELS),
            value="Integrated gradients",
            label="Attribution method",
            scale=2,
            elem_id="errors-method",
        )
        ns.steps = steps_slider(scale=2, elem_id="errors-steps")
        ns.attribute = gr.Button("Attribute both options", scale=1, elem_id="errors-attribute")
    # Hidden until asked for: four empty frames under every example would push it off the screen.
    with gr.Column(visible=False) as ns.attribution_row:
        ns.attributions = side_by_side("attribution", "errors-attribution", "errors-attribution-legend")
    build_pair(ns)


def build_pair(ns: SimpleNamespace) -> None:
    """The selected example under two variants, on one scale (:mod:`vqa_demo.ui.tabs.error_pair`)."""
    with gr.Accordion("Two variants side by side, on one scale", open=False, elem_id="errors-pair"):
        with gr.Row(equal_height=True):
            ns.pair_first = gr.Dropdown(label="Left", choices=[], scale=2, elem_id="errors-pair-first")
            ns.pair_second = gr.Dropdown(label="Right", choices=[], scale=2, elem_id="errors-pair-second")
            ns.pair_reading = gr.Radio(
                list(READINGS), value=READINGS[0], label="Show", scale=3, elem_id="errors-pair-reading"
            )
            ns.pair_show = gr.Button("Show both", scale=1, elem_id="errors-pair-show")
        gr.Markdown("An attribution uses the method and steps chosen above.", elem_classes="small-note")
        ns.pair = side_by_side(
            "", "errors-pair", "errors-pair-legend", sides=("Left variant", "Right variant")
        )
    ns.pair_kept = gr.State(None)


def build_whatif(ns: SimpleNamespace) -> None:
    """The edit box: the example's question and options to change, and every variant's scores on the edit."""
    with gr.Accordion("What if: edit the question or the options and score every variant again", open=False,
                      elem_id="errors-whatif"):  # fmt: skip
        with gr.Row(equal_height=False):
            ns.edit_question = gr.Textbox(label="Question", lines=2, scale=3, elem_id="errors-edit-question")
            ns.edit_options = gr.Textbox(
                label="Options, one per line (A, B, ... in this order)",
                lines=5,
                max_lines=8,
                scale=2,
                elem_id="errors-edit-options",
            )
        ns.edit_score = gr.Button("Score the edit", elem_id="errors-edit-score")
        ns.edit_status = gr.Markdown(elem_classes="status-box", elem_id="errors-edit-status")
        ns.edit_table = gr.Dataframe(
            interactive=False, wrap=True, elem_id="errors-edit-table", label="Score shares on the edit"
        )


def side_by_side(
    what: str, elem: str, legend_id: str, sides: tuple[str, str] = ("Gold option", "Chosen option")
) -> list:
    """Two sides' (heatmap, token chips, caption) in two columns under one legend (by default the gold
    and the chosen option, DOM ids ``{elem}-gold`` and ``{elem}``; otherwise ``{elem}-left`` and
    ``{elem}-right``); returns the seven components in :func:`~vqa_demo.ui.tabs.error_explain.side_views`'s order."""
    components = []
    legend = gr.HTML(elem_id=legend_id)
    ids = (
        (f"{elem}-gold", elem)
        if sides == ("Gold option", "Chosen option")
        else (f"{elem}-left", f"{elem}-right")
    )
    with gr.Row(equal_height=False):
        for side, elem_id in zip(sides, ids):
            with gr.Column():
                gr.Markdown(f"**{side}: {what}**" if what else f"**{side}**")
                image = image_box(elem_id, "heatmap", height=280)
                tokens = gr.HTML(elem_id=f"{elem_id}-tokens")
                caption = gr.Markdown(elem_classes="small-note", elem_id=f"{elem_id}-caption")
                components += [image, tokens, caption]
    return [*components, legend]


def build_errors_tab(browser: ErrorBrowser) -> SimpleNamespace | None:
    """Lay out and wire the Errors tab; returns its components (None when there is nothing to browse)."""
    if not browser.records:
        gr.Markdown(
            status_error(
                "No predictions.jsonl in the assets' evaluation folder, so there is nothing to browse."
            )
            + "\n\n"
            + "; ".join(browser.assets.notes)
        )
        return None
    ns = build_filters(browser)
    ns.browser = browser
    build_browse(ns)
    build_example(ns)
    ns.rows, ns.ranked = gr.State([]), gr.State([])
    ns.sample, ns.run, ns.kept, ns.link = gr.State(None), gr.State(None), gr.State(None), gr.State(None)
    # Rendered but never shown: the selected example's number for the address bar (vqa_demo.ui.url_state).
    ns.example_id = gr.Textbox("", visible="hidden", elem_id="errors-example-id")
    ns.filters = filters = [ns.variants, ns.family, ns.position, ns.low, ns.high, ns.disagree, ns.missed_by]
    ns.filtered = filtered = [ns.table, ns.gallery, ns.rows, ns.ranked, ns.caption, ns.download, ns.confusion]
    ns.lazy = LazyValues(lambda: list(browser.initial()))
    for component in filtered:
        ns.lazy.add(component)
    for component in filters:
        # change, not release/blur: a typed or dragged confidence applies at once (always_last
        # drops the intermediate values of a drag).
        component.change(
            browser.filter,
            [*filters, ns.link],
            filtered,
            api_visibility="private",
            queue=False,
            trigger_mode="always_last",
            show_progress="hidden",
        )
    ns.picked = picked = [ns.sample, ns.image, ns.details, ns.stored, ns.variant, ns.open_in_ask]
    ns.live = live = dict(
        fn=browser.rerun.live,
        inputs=[ns.sample, ns.variant, ns.opacity, ns.view],
        outputs=[ns.run, ns.live_status, *ns.sides, *ns.attributions],
    )
    ns.picks = []
    for event in (
        ns.table.select(browser.pick_row, [ns.variants], picked, api_visibility="private"),
        ns.gallery.select(browser.pick_gallery, [ns.ranked, ns.variants], picked, api_visibility="private"),
    ):
        ns.picks.append(event)
        answered = event.then(**live, api_visibility="private", concurrency_id="model", concurrency_limit=1)
        answered.then(
            browser.pair.choices,
            [ns.run],
            [ns.pair_first, ns.pair_second, *ns.pair, ns.pair_kept],
            api_visibility="private",
            queue=False,
        )
    for event in ns.picks:
        event.then(
            browser.whatif.fill,
            [ns.sample],
            [ns.edit_question, ns.edit_options, ns.edit_status, ns.edit_table],
            api_visibility="private",
            queue=False,
        )
    ns.edit_score.click(
        browser.whatif.score,
        [ns.run, ns.edit_question, ns.edit_options],
        [ns.edit_status, ns.edit_table],
        api_visibility="private",
        concurrency_id="model",
        concurrency_limit=1,
    )
    for trigger in (ns.variant.input, ns.opacity.release, ns.view.change):
        trigger(
            browser.rerun.render,
            [ns.run, ns.variant, ns.opacity, ns.view],
            ns.sides,
            api_visibility="private",
            show_progress="hidden",
        )
    for trigger in (ns.table.select, ns.gallery.select, ns.variant.input):
        trigger(
            lambda: [gr.update(visible=False), None, "", "", None, "", "", "", None],
            None,
            [ns.attribution_row, *ns.attributions, ns.kept],
            api_visibility="private",
            queue=False,
        )
    ns.pair_show.click(
        browser.pair.show,
        [ns.run, ns.pair_first, ns.pair_second, ns.pair_reading, ns.method, ns.steps, ns.opacity, ns.view],
        [*ns.pair, ns.pair_kept],
        api_visibility="private",
        concurrency_id="model",
        concurrency_limit=1,
    )
    for trigger in (ns.opacity.release, ns.view.change):
        trigger(pair_views, [ns.pair_kept, ns.run, ns.opacity, ns.view], ns.pair, api_visibility="private",
                show_progress="hidden")  # fmt: skip
    for trigger in (ns.opacity.release, ns.view.change):
        trigger(
            browser.rerun.repaint,
            [ns.kept, ns.opacity, ns.view],
            ns.attributions,
            api_visibility="private",
            show_progress="hidden",
        )
    ns.method.change(
        steps_update,
        ns.method,
        ns.steps,
        api_visibility="private",
        queue=False,
    )
    ns.attribute.click(
        lambda: gr.update(visible=True), None, ns.attribution_row, api_visibility="private", queue=False
    ).then(
        browser.rerun.attribute,
        [ns.run, ns.variant, ns.method, ns.steps, ns.opacity, ns.view],
        [*ns.attributions, ns.kept],
        api_visibility="private",
        concurrency_id="model",
        concurrency_limit=1,
    )
    return ns


def build_link_inputs():
    """The hidden ``#link-request`` box and ``#link-go`` button the page's script (vqa_demo.ui.style)
    fills and clicks for a chart click: ``(request, go)``.

    Built outside every tab: Gradio mounts a tab's components only once the tab is first shown, so a
    button inside Errors did not exist yet for a click on a Compare chart in a fresh page.
    """
    return gr.Textbox(visible="hidden", elem_id="link-request"), gr.Button(
        "link", visible="hidden", elem_id="link-go"
    )


def wire_links(browser: ErrorBrowser, errors, tabs, link_inputs, mcnemar=None) -> list:
    """Linked views: chart clicks (through ``link_inputs``, from :func:`build_link_inputs`) and McNemar
    cells (``mcnemar``, the Compare tab's table) list their examples in ``errors``; returns the events
    that switch to the Errors tab."""
    if errors is None:
        return []
    links = LinkCallbacks(browser)
    outputs = [
        errors.link,
        *errors.filters,
        *errors.filtered,
        errors.lazy.flag,
        tabs,
        errors.views,
        errors.unlink,
    ]
    assert len(outputs) == LinkCallbacks.OUTPUTS
    private = dict(api_visibility="private", queue=False, show_progress="hidden")
    events = [
        link_inputs[1].click(
            links.from_chart,
            [link_inputs[0], errors.variants, errors.family],
            outputs,
            js="(request, variants, family) => [window.vqaLinkRequest || '', variants, family]",
            **private,
        )
    ]
    if mcnemar is not None:
        events.append(mcnemar.select(links.from_mcnemar, None, outputs, **private))
    errors.unlink.click(
        links.unlink, errors.filters, [errors.link, *errors.filtered, errors.unlink], **private
    )
    return events


def wire_open_in_ask(browser: ErrorBrowser, errors, form, tabs, variant_info=None):
    """*Open in Ask*: copy the selected example into the Ask ``form`` and switch ``tabs`` to Ask (the event, or None)."""
    if errors is None:
        return None
    return errors.open_in_ask.click(
        lambda sample: browser.open_in_ask(sample, variant_info),
        [errors.sample],
        [form.image, form.question, form.count, *form.options, *form.variants, form.status, tabs],
        api_visibility="private",
        queue=False,
    )
