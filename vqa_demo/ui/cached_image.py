"""Output ``gr.Image`` boxes whose files in Gradio's cache are written whole or not at all.

Gradio saves a returned PIL image to ``<cache>/<hash of its bytes>/image.<format>`` with a plain
``write_bytes``, which truncates the file first. When two events return the same picture (an
answer paints the heatmap, and the variant it selects repaints the same one), the second write
truncates the file while the browser is still downloading the first: the response ends short of
its ``Content-Length``, the server logs an ASGI error and the page shows no image. Here the bytes
go to a temporary name in the same folder and are renamed into place, and a file that is already
there (same hash, same bytes) is left alone.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import gradio as gr
import PIL.Image


def save_whole(image: PIL.Image.Image, cache_dir: str | Path, fmt: str) -> str:
    """Write ``image`` as ``fmt`` under ``cache_dir`` by the hash of its bytes; the file's path.

    The file never exists half-written: readers see either no file or all of it.
    """
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
    folder = Path(cache_dir) / hashlib.sha256(data).hexdigest()
    target = folder / f"image.{fmt.lower()}"
    if target.exists():
        return str(target.resolve())
    folder.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=folder, prefix=".image.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(target.resolve())


def write_whole(box: gr.Image) -> gr.Image:
    """``box``, whose returned PIL images now reach the cache through :func:`save_whole`.

    Set on the instance rather than by subclassing: Gradio writes a ``.pyi`` stub beside the module
    of every ``gr.Image`` subclass when the class is made, which would fail on a read-only install.
    """
    plain = box.postprocess

    def postprocess(value):
        if isinstance(value, PIL.Image.Image):
            value = save_whole(value, box.GRADIO_CACHE, box.format or "png")
        return plain(value)

    box.postprocess = postprocess
    return box
