"""The app's image boxes: every ``gr.Image`` of the UI is set up here, in one of three kinds.

- ``"upload"``: the Ask form's input, handed to the callback as a file path (decoded by our own checks);
- ``"picture"``: a labelled example image to look at;
- ``"heatmap"``: a painted heatmap, without the label badge (it would cover the top of the map; a
  Markdown heading above names it), as lossless PNG and without download buttons.

All of them stretch small images (diagrams, the tiny default's 64 px renders) to fill their frame
(the ``fill-image`` class of :mod:`vqa_demo.ui.style`).
"""

from __future__ import annotations

from typing import Literal

import gradio as gr

ImageKind = Literal["upload", "picture", "heatmap"]


def image_box(elem_id: str, kind: ImageKind, *, height: int, label: str | None = None) -> gr.Image:
    """A ``gr.Image`` of ``kind``, ``height`` pixels tall, with the DOM id ``elem_id``."""
    common = {"elem_id": elem_id, "height": height, "elem_classes": "fill-image"}
    if kind == "upload":
        return gr.Image(
            label=label, type="filepath", image_mode=None, sources=["upload", "clipboard"], **common
        )
    if kind == "picture":
        return gr.Image(label=label, type="pil", interactive=False, **common)
    if kind == "heatmap":
        return gr.Image(show_label=False, type="pil", interactive=False, format="png", buttons=[], **common)
    raise ValueError(f"kind must be 'upload', 'picture' or 'heatmap', not {kind!r}")


def image_alert_html(max_bytes: int) -> str:
    """The empty element the page script (:data:`vqa_demo.ui.style.JS`) fills when a chosen file is over ``max_bytes``."""
    return f"<div id='image-alert-text' role='alert' data-max-bytes='{int(max_bytes)}'></div>"
