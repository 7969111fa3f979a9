"""Shared fixtures: tiny in-process PaliGemma models and predictors (no network, seconds to build)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

# Autouse: a test fails when our code calls a deprecated library API (see tests/warning_guard.py).
from tests.warning_guard import fail_on_our_deprecations  # noqa: F401
from vqa_demo.predictor import Predictor
from vqa_demo.testing import build_app_assets, make_tiny_predictor, write_tiny_run

# Tiny models are dominated by per-op overhead: on 2 cores, two torch threads per process (the
# suite plus the app servers it starts) made steps many times slower than one thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_predictor() -> Predictor:
    return make_tiny_predictor()


def color_image(rgb, size=(24, 24)) -> Image.Image:
    return Image.new("RGB", size, rgb)


@pytest.fixture
def images():
    return [color_image((255, 0, 0)), color_image((0, 0, 255), (30, 20)), color_image((0, 160, 0), (20, 32))]


QUESTIONS = [
    "What colour is the square?",
    "Which colour fills most of this picture, would you say?",
    "Colour?",
]
OPTIONS = [
    ["red", "blue", "green", "yellow"],
    ["blue", "purple", "a very long orange option", "black"],
    ["green", "grey", "white", "pink"],
]


@pytest.fixture(scope="session")
def app_assets(tmp_path_factory):
    """A complete tiny assets folder (base, five checkpoints, validation, evaluation, examples)."""
    return build_app_assets(tmp_path_factory.mktemp("app-assets"))


@pytest.fixture(scope="session")
def other_runs(app_assets, tmp_path_factory) -> dict[str, Path]:
    """Runs on ViLT and Qwen2.5-VL, evaluated on the tiny assets' validation split (shared by the app tests)."""
    root = tmp_path_factory.mktemp("other-runs")
    validation = app_assets.root / "validation"
    return {
        "vilt": write_tiny_run(root / "vilt", "tiny:vilt", validation, seed=0),
        "qwen": write_tiny_run(root / "qwen", "tiny:qwen2_5_vl", validation, seed=1),
    }
