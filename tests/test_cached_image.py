"""Gradio's saves of returned images reach its cache whole, even when the same picture is returned
again while the first copy is being read (what a browser does when two events paint the same heatmap)."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
from gradio import processing_utils

from tests.app_support import FakePredictor
from vqa_demo.ui import build_demo
from vqa_demo.ui.cached_image import GRADIO_SAVE_PIL, save_pil_whole


def noisy_image(seed: int = 0) -> PIL.Image.Image:
    """A 384×384 picture whose PNG is large (~440 KB), so a write takes long enough to be caught."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(384, 384, 3), dtype=np.uint8)
    return PIL.Image.fromarray(pixels)


def short_reads(save, rounds: int = 150) -> int:
    """How often a reader saw fewer bytes than the whole file while ``save(image)`` wrote it again."""
    image = noisy_image()
    path = save(image)
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
            assert save(image) == path  # the same bytes, the same file
    finally:
        stop.set()
        reader.join()
    return short


def test_gradios_own_save_is_read_cut_short_while_written_again(tmp_path):
    """The fault this module exists for: if Gradio stops rewriting in place, this fails and the
    replacement can go."""
    assert short_reads(lambda image: GRADIO_SAVE_PIL(image, str(tmp_path), format="png")) > 0


def test_the_replacement_is_never_read_cut_short_and_keeps_gradios_path(tmp_path):
    assert short_reads(lambda image: save_pil_whole(image, str(tmp_path), format="png")) == 0
    image = noisy_image(1)
    ours = save_pil_whole(image, str(tmp_path / "ours"), format="png")
    gradios = GRADIO_SAVE_PIL(image, str(tmp_path / "gradio"), format="png")
    assert ours.replace("/ours/", "/gradio/") == gradios  # the same hash folder and file name
    assert Path(ours).read_bytes() == Path(gradios).read_bytes()


def test_the_app_installs_it_for_every_image_component(app_assets, tmp_path, monkeypatch):
    """Also for a component Gradio rebuilds for a session (from constructor arguments) after an update."""
    build_demo(app_assets.config, predictor=FakePredictor())
    assert processing_utils.save_pil_to_cache is save_pil_whole
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    rebuilt = gr.Image(type="pil", format="png", interactive=False, render=False)
    assert short_reads(lambda image: rebuilt.postprocess(image).path) == 0
    gallery = gr.Gallery(render=False)
    (item,) = gallery.postprocess([noisy_image(2)]).root
    saved = PIL.Image.open(item.image.path).convert("RGB")
    assert saved.size == (384, 384)
