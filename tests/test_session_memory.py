"""What an answer keeps of its image: bounded copies that explain exactly as the full image did, held
within a time to live and a byte budget shared by all sessions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from PIL import Image

from tests.app_support import FakePredictor
from vqa_demo.explain.attribution import attribute
from vqa_demo.explain.heatmaps import OVERLAY_MAX_SIDE, heatmap_overlay
from vqa_demo.ui import AppConfig
from vqa_demo.ui.answer_state import forget_answer
from vqa_demo.ui.explain_render import DISPLAY_SIDE
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.session_memory import AnswerMemory, KeptImage, keep_image
from vqa_demo.ui.tabs.ask import MAX_OPTIONS, AskCallbacks
from vqa_demo.ui.tabs.explain import ExplainCallbacks

OPTIONS = ["red", "blue", "green", "grey"]


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Random pixels: any difference in resampling shows up in them."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def kept(side: int = 100) -> KeptImage:
    return KeptImage(Image.new("RGB", (side, side)), torch.zeros(3, 4, 4))


# -- the kept copies ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(3000, 1000), (700, 2100), (513, 200), (450, 300), (100, 50)])
def test_display_copy_is_bounded_and_paints_the_same_overlays(size):
    image = noise(*size)
    copy = keep_image(image, FakePredictor().pixel_values)
    assert max(copy.display.size) == min(max(size), OVERLAY_MAX_SIDE)
    assert copy.display is not image and copy.display.mode == "RGB"
    grid = np.random.default_rng(1).random((4, 4)).astype(np.float32)
    for opacity in (0.0, 0.55, 1.0):
        full = heatmap_overlay(image, grid, opacity, min_side=DISPLAY_SIDE)
        bounded = heatmap_overlay(copy.display, grid, opacity, min_side=DISPLAY_SIDE)
        assert full.size == bounded.size and np.array_equal(np.asarray(full), np.asarray(bounded))


def test_kept_image_counts_its_bytes_and_forgets():
    copy = keep_image(noise(2000, 1000), FakePredictor().pixel_values)
    assert copy.display.size == (512, 256) and copy.pixel_values.shape == (3, 8, 8)
    assert copy.nbytes == 512 * 256 * 3 + 3 * 8 * 8 * 4
    copy.forget()
    assert not copy.available and copy.display is None and copy.pixel_values is None


def test_model_input_answers_and_attributes_exactly_like_the_full_image(tiny_predictor):
    image = noise(1600, 1200, seed=3)
    copy = keep_image(image, tiny_predictor.pixel_values)
    assert torch.equal(copy.pixel_values, tiny_predictor.pixel_values([image])[0])
    from_image = tiny_predictor.predict(image, "Which colour?", OPTIONS)
    from_copy = tiny_predictor.predict(copy.pixel_values, "Which colour?", OPTIONS)
    for name, prediction in from_image.items():
        assert np.array_equal(prediction.option_scores, from_copy[name].option_scores), name
    for variant, method in [("swag-attentive", "integrated_gradients"), ("cond_gen", "saliency")]:
        (a,) = attribute(
            tiny_predictor, [image], ["Which colour?"], [OPTIONS], variant, [1], method, n_steps=4
        )
        (b,) = attribute(
            tiny_predictor, [copy.pixel_values], ["Which colour?"], [OPTIONS], variant, [1], method, n_steps=4
        )
        assert a.score == b.score and np.array_equal(a.pixel_map, b.pixel_map)
        assert a.tokens == b.tokens and np.array_equal(a.token_scores, b.token_scores)


def test_model_input_of_the_wrong_shape_is_refused(tiny_predictor):
    with pytest.raises(ValueError, match=r"pixel values must be float\[3, 20, 20\]"):
        tiny_predictor.predict(torch.zeros(3, 16, 16), "Which colour?", OPTIONS)


# -- the memory shared by all sessions ------------------------------------------------------------


def test_copies_expire_after_the_time_to_live():
    clock = Clock()
    memory = AnswerMemory(ttl=60, max_bytes=10**9, clock=clock)
    old, older = memory.admit(kept()), memory.admit(kept())
    clock.now += 30
    young = memory.admit(kept())
    assert len(memory) == 3 and memory.expire() == 0
    clock.now += 31  # the first two are 61 s old, the third 31 s
    assert memory.expire() == 2
    assert not old.available and not older.available and young.available
    assert len(memory) == 1 and memory.held_bytes == young.nbytes
    clock.now += 30
    newest = memory.admit(kept())  # admitting also sweeps
    assert not young.available and newest.available and len(memory) == 1


def test_the_byte_budget_drops_the_oldest_first():
    one = kept().nbytes
    memory = AnswerMemory(ttl=3600, max_bytes=int(2.5 * one), clock=Clock())
    copies = [memory.admit(kept()) for _ in range(5)]
    assert [c.available for c in copies] == [False, False, False, True, True]
    assert memory.held_bytes == 2 * one <= memory.max_bytes and len(memory) == 2
    big = memory.admit(kept(side=300))  # larger than the budget on its own: nothing is kept
    assert not big.available and len(memory) == 0 and memory.held_bytes == 0


def test_release_drops_one_copy_and_ignores_unknown_ones():
    memory = AnswerMemory(ttl=0, max_bytes=10**9, clock=Clock())
    first, second = memory.admit(kept()), memory.admit(kept())
    memory.release(first)
    memory.release(first)
    memory.release(kept())
    memory.release(None)
    assert not first.available and second.available and memory.held_bytes == second.nbytes
    assert memory.expire() == 0  # ttl 0: no age limit


def test_the_sweeper_expires_copies_while_no_answer_comes_in():
    memory = AnswerMemory(ttl=0.2, max_bytes=10**9, sweep_every=0.05)
    copy = memory.admit(kept())
    deadline = time.monotonic() + 10
    while copy.available and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not copy.available and len(memory) == 0 and memory.held_bytes == 0


@pytest.mark.slow  # a fresh interpreter is the point: ~20 s of imports
def test_glibc_gives_freed_image_memory_back_after_a_trim():
    """Big buffers freed in a worker thread stay resident in its malloc arena until trimmed."""
    script = textwrap.dedent(
        """
        import threading, psutil, numpy as np
        from PIL import Image
        from vqa_demo.ui.session_memory import return_freed_memory
        rss = lambda: psutil.Process().memory_info().rss / 2**20
        def decode_big_images():
            for i in range(3):
                image = Image.new("RGB", (7000, 5000), (i, 2, 3))
                pixels = np.asarray(image)
                del image, pixels
        before = rss()
        worker = threading.Thread(target=decode_big_images)
        worker.start(); worker.join()
        after = rss()
        trimmed = return_freed_memory()
        print(before, after, rss(), trimmed)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    before, after, trimmed_rss, trimmed = out.stdout.split()
    if trimmed != "True":
        pytest.skip("not glibc: malloc_trim is unavailable")
    assert float(trimmed_rss) < float(after) - 50 or float(after) - float(before) < 50, out.stdout
    assert float(trimmed_rss) - float(before) < 50, out.stdout


# -- the callbacks --------------------------------------------------------------------------------


def answer_with(ask: AskCallbacks, image: str):
    boxes = OPTIONS + [""] * (MAX_OPTIONS - len(OPTIONS))
    return ask.answer(image, "What colour?", len(OPTIONS), *boxes, *[True] * 5)


@pytest.fixture
def big_png(tmp_path):
    path = tmp_path / "big.png"
    gradient = np.linspace(0, 255, 3000, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(gradient, (2000, 1))] * 3, axis=-1)).save(path)
    return str(path)


def test_an_answer_keeps_bounded_copies_never_the_upload(tmp_path, big_png):
    fake = FakePredictor()
    ask = AskCallbacks(PredictorHolder(predictor=fake), AppConfig(assets=tmp_path))
    *_, result = answer_with(ask, big_png)
    assert result.image.display.size == (512, 341) and result.image.available
    assert isinstance(fake.calls[0][0], torch.Tensor) and fake.calls[0][0].shape == (3, 8, 8)
    assert len(ask.memory) == 1 and ask.memory.held_bytes == result.image.nbytes < 600_000
    forget_answer(result)
    assert len(ask.memory) == 0 and not result.image.available


def test_explaining_a_dropped_answer_asks_to_answer_again(tmp_path, big_png):
    ask = AskCallbacks(
        PredictorHolder(predictor=FakePredictor()), AppConfig(assets=tmp_path, session_memory="0")
    )
    *_, result = answer_with(ask, big_png)
    assert not result.image.available  # a zero budget keeps nothing
    explain = ExplainCallbacks(ask.holder)
    _, heatmap, _, caption, *_ = explain.refresh(result, 0.5)
    assert heatmap is None and "answer again" in caption
    image, tokens, message, stored = explain.attribute(result, "cond_gen", "Saliency (gradient)", 4, 0.5)
    assert image is None and not tokens and stored is None and "answer again" in message


def test_settings_come_from_flags_and_environment():
    env = {"VQA_SESSION_TTL": "90", "VQA_SESSION_MEMORY": "64mb", "VQA_MAX_SESSIONS": "40"}
    config = AppConfig.from_env(env)
    assert (config.session_ttl, config.session_memory_bytes, config.max_sessions) == (90, 64 * 2**20, 40)
    flags = AppConfig.from_args(
        ["--session-ttl", "5", "--session-memory", "1.5gb", "--max-sessions", "9"], env
    )
    assert (flags.session_ttl, flags.session_memory_bytes, flags.max_sessions) == (5, int(1.5 * 2**30), 9)
    assert flags.launch_kwargs()["state_session_capacity"] == 9
    defaults = AppConfig()
    assert (defaults.session_ttl, defaults.session_memory_bytes, defaults.max_sessions) == (
        1800,
        256 * 2**20,
        500,
    )
    with pytest.raises(ValueError, match="--session-memory must be a positive number"):
        AppConfig(session_memory="plenty")
    with pytest.raises(ValueError, match="max_sessions"):
        AppConfig(max_sessions=0)
