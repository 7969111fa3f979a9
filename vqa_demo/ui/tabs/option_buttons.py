"""The Ask form's *+ Add option* and *- Remove option* buttons, answered in the browser.

A click used to be a server round trip carrying the hidden option count as the browser had it. On a
busy server that lost clicks: Gradio drops a click while the same event is still pending (its
default ``trigger_mode="once"``), a *+* and a *-* sent before either answer arrived both started
from the old count, and their answers could land in either order, leaving a variant enabled whose
tick the other answer had cleared. What a click does depends on the current count alone, so every
outcome is computed once, in Python, by :meth:`~vqa_demo.ui.tabs.ask.AskCallbacks.change_count`
(the one source of the rules), and the browser looks the outcome up: at once, in click order, with
no request to lose.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS
from vqa_demo.ui.tabs.ask_arguments import DEFAULT_OPTIONS

ChangeCount = Callable[[Any, int], list]


def step_outcomes(change_count: ChangeCount, delta: int) -> dict[int, list]:
    """``{count: change_count(count, delta)}`` for every count the form can show (JSON-ready updates)."""
    return {count: change_count(count, delta) for count in range(MIN_OPTIONS, MAX_OPTIONS + 1)}


def step_js(outcomes: dict[int, list]) -> str:
    """A browser function ``count -> outputs`` that looks ``count`` up in ``outcomes``.

    It reads the count the way :meth:`~vqa_demo.ui.tabs.ask.AskCallbacks.clamp_count` does: a
    missing or non-numeric one is the default, others are truncated and clamped to the K limits.
    """
    table = json.dumps({str(count): outputs for count, outputs in outcomes.items()}, ensure_ascii=False)
    return (
        f"(count) => {{ const outcomes = {table}; const n = Number(count);"
        f" const known = count !== null && count !== '' && Number.isFinite(n);"
        f" const key = known ? Math.min({MAX_OPTIONS}, Math.max({MIN_OPTIONS}, Math.trunc(n))) : {DEFAULT_OPTIONS};"
        " return outcomes[String(key)]; }"
    )


def wire_option_buttons(change_count: ChangeCount, form) -> None:
    """Make ``form.add`` / ``form.remove`` step ``form.count`` and update its rows, ticks and buttons.

    ``form`` is the Ask form's namespace (``count``, ``options``, ``variants``, ``add``, ``remove``);
    the outputs are in :meth:`~vqa_demo.ui.tabs.ask.AskCallbacks.change_count`'s order.
    """
    outputs = [form.count, *form.options, *form.variants, form.add, form.remove]
    for button, delta in ((form.add, +1), (form.remove, -1)):
        button.click(
            None,
            form.count,
            outputs,
            js=step_js(step_outcomes(change_count, delta)),
            queue=False,
            trigger_mode="multiple",  # no request is pending, but say it: every click counts
            api_visibility="private",
        )
