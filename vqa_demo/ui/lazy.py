"""Values a tab receives when it is first shown, not in the page's config.

Gradio copies the whole config (every component's initial value) on each ``GET /config``; the
Errors table's thumbnails alone made it about 550 KB, and twenty parallel page loads took seconds
each. A :class:`LazyValues` holds such values on the server and sends them once per page, when the
tab is selected (or when a link opens it, see :mod:`vqa_demo.ui.url_state`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr


class LazyValues:
    """Components whose value is sent on the first select of their tab.

    ``values`` is a function of no argument giving one value per component, in the order they were
    added (computed when first asked, so a tab nobody opens costs nothing).
    """

    def __init__(self, values: Callable[[], list[Any]] | None = None):
        self.components: list[gr.components.Component] = []
        self.fixed: list[Any] = []
        self.compute = values

    def add(self, component: gr.components.Component, value: Any = None) -> gr.components.Component:
        """Register ``component`` (built with no value); ``value`` is sent later (ignored with ``values``)."""
        self.components.append(component)
        self.fixed.append(value)
        return component

    def fill(self, filled: bool | None) -> list[Any]:
        """``[True, value, ...]`` the first time in a page, ``[True, no change, ...]`` after."""
        if filled:
            return [True, *[gr.update() for _ in self.components]]
        return [True, *(self.compute() if self.compute else self.fixed)]

    def wire(self, tab: gr.Tab) -> gr.State:
        """Send the values on ``tab``'s first select; returns the page's "already sent" flag."""
        self.flag = gr.State(False)
        tab.select(
            self.fill,
            self.flag,
            [self.flag, *self.components],
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
        return self.flag

    def fill_when(self, tab_id: str):
        """A handler ``(opened, flag) -> fill`` that sends the values only when ``opened == tab_id``."""

        def fill(opened: str | None, filled: bool | None) -> list[Any]:
            if opened != tab_id:
                return [gr.update() for _ in range(len(self.components) + 1)]
            return self.fill(filled)

        return fill

    def then_fill(self, event, opened: gr.components.Component, tab_id: str) -> Any:
        """Chain the fill after ``event`` for when it opened ``tab_id`` (``opened`` holds the tab it opened)."""
        return event.then(
            self.fill_when(tab_id),
            [opened, self.flag],
            [self.flag, *self.components],
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
