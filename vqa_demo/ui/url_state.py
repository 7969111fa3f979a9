"""A shareable address: the tab, the Errors example and the explained variant live in the page's query,
``?tab=errors&example=123&variant=swag-attentive``.

Opening such a link opens that view; changing the view rewrites the address in place
(``history.replaceState`` in the page: ``window.vqaSetView`` and ``vqaSyncErrorsView`` of
:mod:`vqa_demo.ui.style`). The query
comes from whoever wrote the link, so every value is checked against what the app serves: an unknown
tab, example or variant is ignored with a one-sentence note that never repeats the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import gradio as gr

from vqa_demo.ui.tabs.error_data import variant_names

TABS = ("ask", "compare", "errors")
MAX_QUERY_CHARS = 2000
MAX_EXAMPLE_DIGITS = 9
READ_QUERY_JS = "(query) => [window.location.search]"


@dataclass
class View:
    """What a link asks for, checked: ``tab`` (one of :data:`TABS`), ``example`` (an index of a labelled
    validation record), ``variant`` (a stored variant's name); ``notes`` say what was ignored."""

    tab: str | None = None
    example: int | None = None
    variant: str | None = None
    notes: list[str] = field(default_factory=list)


def read_view(query: Any, examples: set, variants: list[str]) -> View:
    """The :class:`View` of ``query`` (``location.search``), checked against ``examples`` and ``variants``."""
    view = View()
    if not isinstance(query, str) or not query.strip("?"):
        return view
    if len(query) > MAX_QUERY_CHARS:
        view.notes.append("The link's address is too long to read, so the app opened as usual.")
        return view
    asked = {key: values[0] for key, values in parse_qs(query.lstrip("?"), keep_blank_values=True).items()}
    tab = asked.get("tab")
    if tab is not None:
        if tab in TABS:
            view.tab = tab
        else:
            view.notes.append("The link names a tab this app does not have, so it was ignored.")
    example = asked.get("example")
    if example is not None:
        text = example.strip()
        number = int(text) if text.isascii() and text.isdigit() and len(text) <= MAX_EXAMPLE_DIGITS else None
        if number in examples:
            view.example, view.tab = number, "errors"
        else:
            view.notes.append(
                "The link's example is not a labelled validation example here, so it was ignored."
            )
    variant = asked.get("variant")
    if variant is not None:
        if variant in variants and view.example is not None:
            view.variant = variant
        elif variant in variants:
            view.notes.append("The link's variant needs an example to explain, so it was ignored.")
        else:
            view.notes.append("The link names a variant this app does not serve, so it was ignored.")
    return view


class UrlState:
    """Opens the view a link asks for; ``browser`` is the Errors tab's
    :class:`~vqa_demo.ui.tabs.error_browser.ErrorBrowser` (None when there is nothing to browse)."""

    def __init__(self, browser=None, live_outputs: int = 0):
        self.browser = browser
        self.live_outputs = live_outputs  # how many components the Errors tab's live answer fills
        records = browser.records if browser is not None else []
        self.examples = {r.get("index") for r in records}
        self.variants = variant_names(records)

    def open(self, query: str, selected: list[str] | None = None) -> list:
        """(tab, note, opened tab), then with an Errors tab: the example's number and the pick outputs
        (sample, image, details, stored chart, variant dropdown, Open-in-Ask button), changed only
        when the link names an example."""
        view = read_view(query, self.examples, self.variants)
        note = gr.update(value=" ".join(f"ℹ {n}" for n in view.notes), visible=bool(view.notes))
        tabs = gr.Tabs(selected=view.tab) if view.tab else gr.update()
        head = [tabs, note, view.tab or ""]
        if self.browser is None:
            return head
        if view.example is None:
            return head + [gr.update()] * 7
        head.append(str(view.example))
        sample, image, details, chart, dropdown, button = self.browser.show(view.example, selected)
        if view.variant is not None:
            record = self.browser.by_index[view.example]
            if view.variant in record["variants"]:
                choices = list(dict.fromkeys([*(dropdown.get("choices") or []), view.variant]))
                dropdown = gr.update(choices=choices, value=view.variant, interactive=True)
                sample = {**sample, "variant": view.variant}
                if view.variant not in sample["variants"]:
                    sample["variants"] = [*sample["variants"], view.variant]
        return head + [sample, image, details, chart, dropdown, button]

    def live_if_opened(self, opened: str, sample, variant, opacity) -> tuple:
        """Answer the linked example now (as a click on it does); nothing when the link named none."""
        if self.browser is None or opened != "errors" or not sample:
            return tuple(gr.update() for _ in range(self.live_outputs))
        return self.browser.rerun.live(sample, variant, opacity)


def clear_view_js(tab: str) -> str:
    """A page function that shows ``tab`` in the address and drops the example and variant."""
    return f"() => {{ window.vqaSetView && window.vqaSetView({{tab: {tab!r}, example: '', variant: ''}}); return []; }}"


ERRORS_VIEW_JS = (
    "(example, variant) => { window.vqaSetView && window.vqaSetView({tab: 'errors', example: example || '', "
    "variant: variant || ''}); return []; }"
)


def example_number(sample: dict | None) -> str:
    """The selected example's number for the address ("" for none)."""
    index = (sample or {}).get("index")
    return "" if index is None else str(index)


def wire_url_state(
    demo,
    tabs,
    tab_items: dict,
    note,
    query,
    errors=None,
    lazies: dict | None = None,
    switches: dict | None = None,
) -> None:
    """Open the linked view on page load and keep the address up to date.

    ``tab_items`` maps a tab id to its ``gr.Tab``; ``note`` is the Markdown that says what a link got
    wrong; ``query`` a hidden Textbox the page writes ``location.search`` into; ``errors`` the Errors
    tab's components (None when it has none); ``lazies`` maps a tab id to its
    :class:`~vqa_demo.ui.lazy.LazyValues`, filled when a link opens that tab; ``switches`` maps a tab id
    to the events that switch to it without a click on the tab (Open in Ask, a linked view).
    """
    state = UrlState(errors.browser, len(errors.live["outputs"])) if errors is not None else UrlState()
    opened = gr.State("")
    private = dict(api_visibility="private", queue=False, show_progress="hidden")
    outputs = [tabs, note, opened]
    inputs = [query]
    if errors is not None:
        outputs += [errors.example_id, *errors.picked]
        inputs.append(errors.variants)
    read = "(query, ...rest) => [window.location.search, ...rest]"
    loaded = demo.load(state.open, inputs, outputs, js=read, **private)
    for tab_id, lazy in (lazies or {}).items():
        lazy.then_fill(loaded, opened, tab_id)
    for tab_id, tab in tab_items.items():
        if tab_id == "errors" and errors is not None:
            tab.select(None, [errors.example_id, errors.variant], None, js=ERRORS_VIEW_JS, **private)
        else:
            tab.select(None, None, None, js=clear_view_js(tab_id), **private)
    for tab_id, events in (switches or {}).items():
        for event in events:
            event.then(None, None, None, js=clear_view_js(tab_id), **private)
    if errors is None:
        return
    loaded.then(
        state.live_if_opened,
        [opened, errors.sample, errors.variant, errors.opacity],
        errors.live["outputs"],
        api_visibility="private",
        concurrency_id="model",
        concurrency_limit=1,
    )
    for pick in errors.picks:
        pick.then(example_number, errors.sample, errors.example_id, **private)
    # The page copies the example and the explained variant into the address while Errors is shown
    # (window.vqaSyncErrorsView in vqa_demo.ui.style): a hidden component's change never reaches the page.
