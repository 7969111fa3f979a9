"""Gradio's saves of returned PIL images, made whole-or-nothing.

Gradio saves a returned PIL image (``gr.Image``, ``gr.Gallery``, an array made into a picture) to
``<cache>/<hash of its bytes>/image.<format>`` with a plain ``write_bytes``, which truncates the file
first. When two events return the same picture (an answer paints the heatmap, and the variant it
selects repaints the same one), the second write truncates the file while the browser is still
downloading the first: the response ends short of its ``Content-Length``, the server logs an ASGI
error and the page shows no image. :func:`save_pil_whole` writes the same file at the same path
through a temporary name and a rename, and leaves a file that is already there (same hash, same
bytes) alone.

:func:`install` puts it in place of ``gradio.processing_utils.save_pil_to_cache``, which every Gradio
component looks up at call time. It is process-wide on purpose: Gradio rebuilds an output component
for a session from its constructor arguments once an event has sent it an update, so anything set
on one component instance is lost there (a first fix did that and still failed in CI).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import PIL.Image
from gradio import processing_utils

GRADIO_SAVE_PIL = processing_utils.save_pil_to_cache  # Gradio's own, kept for the test that shows the fault


def save_pil_whole(img: PIL.Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:  # noqa: A002 (Gradio's keyword)
    """Gradio's ``save_pil_to_cache`` (same bytes, same path), never leaving a half-written file."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    target = folder / f"{name}.{format}"
    if target.exists():
        return str(target.resolve())
    folder.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(target.resolve())


def install() -> None:
    """Route Gradio's PIL saves through :func:`save_pil_whole` (idempotent)."""
    processing_utils.save_pil_to_cache = save_pil_whole
