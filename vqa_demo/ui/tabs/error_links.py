"""Linked views: a click on a confusion-matrix cell, a McNemar discordant count or a per-family bar lists
exactly those validation examples in the Errors tab.

Each click becomes a :class:`Link`: the variants whose mistakes to show and the example indices. The
Errors filters are reset around it (any position, any score share, missed by any), so the table holds
the linked examples and nothing else until *Show every mistake again*. Everything a click sends comes
from the page and is checked here against the stored records; anything else is ignored with a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr

from vqa_demo.config import OPTION_LETTERS
from vqa_demo.ui.tabs.error_data import (
    ALL_FAMILIES,
    ANY_POSITION,
    MISSED_BY_ANY,
    family_of,
    labelled,
    variant_names,
)

MAX_REQUEST_CHARS = 1000


@dataclass(frozen=True)
class Link:
    """What the Errors tab lists after a click: ``label`` in words, the ``variants`` to tick, the examples."""

    label: str
    variants: tuple[str, ...]
    indices: frozenset
    family: str = ALL_FAMILIES

    def as_state(self) -> dict[str, Any]:
        """Plain data for a ``gr.State`` (and back with :func:`link_of`)."""
        return {"label": self.label, "variants": list(self.variants), "indices": sorted(self.indices),
                "family": self.family}  # fmt: skip


def link_of(state: Any) -> Link | None:
    """The :class:`Link` kept in a session's state (None when there is none)."""
    if not isinstance(state, dict) or "indices" not in state:
        return None
    return Link(state["label"], tuple(state["variants"]), frozenset(state["indices"]), state["family"])


def position_of(label: Any, prefix: str) -> int | None:
    """``"gold B"`` with prefix ``"gold"`` -> 1; None for anything else."""
    if not isinstance(label, str) or not label.startswith(prefix + " "):
        return None
    letter = label[len(prefix) + 1 :].strip()
    return OPTION_LETTERS.index(letter) if len(letter) == 1 and letter in OPTION_LETTERS else None


def confusion_link(
    records: list[dict[str, Any]], variants: list[str], family: str, gold: int, chosen: int
) -> Link | str:
    """The examples (of ``family``) with gold option ``gold`` where a selected variant chose ``chosen``:
    the cell of :func:`~vqa_demo.ui.tabs.error_data.confusion_counts`. A sentence when it lists no mistake."""
    if gold == chosen:
        return (
            "That cell counts right answers; the Errors tab lists mistakes, so click a cell off the diagonal."
        )
    names = [n for n in variant_names(records) if n in variants]
    if not names:
        return "Tick at least one variant first: the confusion matrix counts the ticked variants."
    in_family = [r for r in labelled(records) if family in (ALL_FAMILIES, None, "") or family_of(r) == family]
    indices = {
        r["index"]
        for r in in_family
        if r["gold"] == gold and any((r["variants"].get(n) or {}).get("choice") == chosen for n in names)
    }
    words = f"gold {OPTION_LETTERS[gold]}, chose {OPTION_LETTERS[chosen]}"
    return Link(f"confusion cell {words}", tuple(names), frozenset(indices), family or ALL_FAMILIES)


def mcnemar_link(records: list[dict[str, Any]], right: str, wrong: str) -> Link | str:
    """The examples ``right`` answered correctly and ``wrong`` did not (one discordant count of a McNemar test)."""
    names = variant_names(records)
    if right not in names or wrong not in names or right == wrong:
        return "That row names no pair of stored variants, so nothing was linked."
    indices = {
        r["index"]
        for r in labelled(records)
        if right in r["variants"]
        and wrong in r["variants"]
        and r["variants"][right]["choice"] == r["gold"]
        and r["variants"][wrong]["choice"] != r["gold"]
    }
    return Link(f"only {right} right, {wrong} wrong", (wrong,), frozenset(indices))


def family_link(records: list[dict[str, Any]], variant: str, family: str) -> Link | str:
    """The examples of ``family`` that ``variant`` got wrong (one bar of the per-family chart)."""
    families = {family_of(r) for r in records} - {""}
    if variant not in variant_names(records) or family not in families:
        return "That bar names no stored variant and family, so nothing was linked."
    indices = {
        r["index"]
        for r in labelled(records)
        if family_of(r) == family
        and variant in r["variants"]
        and r["variants"][variant]["choice"] != r["gold"]
    }
    return Link(f"{variant}'s mistakes in family {family}", (variant,), frozenset(indices), family)


def chart_link(records: list[dict[str, Any]], request: Any, variants: list[str], family: str) -> Link | str:
    """The link a chart click asks for: ``request`` is the JSON the page sends, ``{"chart": "confusion",
    "x": "chose C", "y": "gold A"}`` or ``{"chart": "family", "variant": ..., "family": ...}``."""
    try:
        asked = (
            json.loads(request) if isinstance(request, str) and len(request) <= MAX_REQUEST_CHARS else None
        )
    except ValueError:
        asked = None
    if not isinstance(asked, dict):
        return "That click could not be read, so nothing was linked."
    if asked.get("chart") == "confusion":
        gold, chosen = position_of(asked.get("y"), "gold"), position_of(asked.get("x"), "chose")
        if gold is None or chosen is None:
            return "That click names no cell of the confusion matrix, so nothing was linked."
        return confusion_link(records, list(variants or []), family, gold, chosen)
    if asked.get("chart") == "family":
        return family_link(records, str(asked.get("variant")), str(asked.get("family")))
    return "That click came from no linked chart, so nothing was linked."


def mcnemar_cell_link(records: list[dict[str, Any]], row: Any, column: Any) -> Link | str:
    """The link for a click on the McNemar table: column 2 (*only A right*) or 3 (*only B right*) of ``row``."""
    if not isinstance(row, list) or len(row) < 2 or column not in (2, 3):
        return "Click an *only A right* or *only B right* count to list those questions."
    a, b = str(row[0]), str(row[1])
    return mcnemar_link(records, a, b) if column == 2 else mcnemar_link(records, b, a)


class LinkCallbacks:
    """Event handlers that apply a :class:`Link` to the Errors tab of ``browser``
    (an :class:`~vqa_demo.ui.tabs.error_browser.ErrorBrowser`).

    Outputs, in order: the link state, the seven filters, the seven filtered views, the tab's "rows
    sent" flag, the main tabs, the Errors views' tabs and the *Show every mistake again* button.
    """

    OUTPUTS = 19

    def __init__(self, browser):
        self.browser = browser

    def apply(self, link: Link | str) -> list:
        if isinstance(link, str):
            gr.Warning(link)
            return [gr.update()] * self.OUTPUTS
        state = link.as_state()
        filters = [list(link.variants), link.family, ANY_POSITION, 0.0, 1.0, False, MISSED_BY_ANY]
        filtered = self.browser.filter(*filters, state)
        return [state, *filters, *filtered, True, gr.Tabs(selected="errors"), gr.Tabs(selected="table"),
                gr.update(visible=True)]  # fmt: skip

    def from_chart(self, request: str, variants: list[str], family: str) -> list:
        """A click on the confusion matrix or the per-family chart (``request``: see :func:`chart_link`)."""
        return self.apply(chart_link(self.browser.records, request, variants, family))

    def from_mcnemar(self, evt: gr.SelectData) -> list:
        """A click on a cell of the McNemar table."""
        column = evt.index[1] if isinstance(evt.index, list | tuple) and len(evt.index) == 2 else None
        return self.apply(mcnemar_cell_link(self.browser.records, evt.row_value, column))

    def unlink(self, variants, family, position, low, high, disagree_only, missed_by) -> list:
        """Drop the link: the link state, the seven filtered views and the button's update."""
        filtered = self.browser.filter(variants, family, position, low, high, disagree_only, missed_by)
        return [None, *filtered, gr.update(visible=False)]
