"""Output images reach Gradio's cache whole, even when the same picture is returned again while
the first copy is being read (what a browser does when two events paint the same heatmap)."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
import pytest

from vqa_demo.ui.cached_image import write_whole
from vqa_demo.ui.image_box import image_box


def noisy_image(seed: int = 0) -> PIL.Image.Image:
    """A 384×384 picture whose PNG is large (~440 KB), so a write takes long enough to be caught."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(384, 384, 3), dtype=np.uint8)
    return PIL.Image.fromarray(pixels)


def short_reads(component: gr.Image, rounds: int = 150) -> int:
    """How often a reader saw fewer bytes than the whole file while ``component`` wrote it again."""
    image = noisy_image()
    path = component.postprocess(image).path
    with open(path, "rb") as file:
        whole = len(file.read())
    stop = threading.Event()
    short = 0

    def read() -> None:
        nonlocal short
        while not stop.is_set():
            with open(path, "rb") as file:
                if len(file.read()) != whole:
                    short += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(rounds):
            assert component.postprocess(image).path == path  # the same bytes, the same file
    finally:
        stop.set()
        reader.join()
    return short


def test_plain_gradio_image_is_read_cut_short_while_written_again(tmp_path, monkeypatch):
    """The fault this module exists for: if Gradio stops rewriting in place, this fails and
    :func:`write_whole` can go."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    assert short_reads(gr.Image(type="pil", format="png", interactive=False)) > 0


def test_cached_image_is_never_read_cut_short(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    assert short_reads(write_whole(gr.Image(type="pil", format="png", interactive=False))) == 0


@pytest.mark.parametrize("kind", ["picture", "heatmap"])
def test_output_boxes_are_drawn_as_images_and_keep_the_pixels(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    box = image_box(f"box-{kind}", kind, height=100)
    assert box.get_block_name() == "image"
    image = noisy_image(1)
    path = box.postprocess(image).path
    assert Path(path).is_relative_to(Path(box.GRADIO_CACHE).resolve())
    saved = PIL.Image.open(path).convert("RGB")
    if kind == "heatmap":  # lossless PNG
        assert np.array_equal(np.asarray(saved), np.asarray(image))
    else:
        assert saved.size == image.size
