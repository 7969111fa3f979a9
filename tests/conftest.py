"""Shared fixtures: tiny in-process models and predictors (no network, seconds to build), and one
``training.compare --smoke`` run per tiny family for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

# Autouse: a test fails when our code calls a deprecated library API (see tests/warning_guard.py).
from tests.warning_guard import fail_on_our_deprecations, summary_line  # noqa: F401
from vqa_demo.model.backbone import build_tiny_backbone
from vqa_demo.predictor import Predictor
from vqa_demo.testing import build_app_assets, make_tiny_predictor, write_tiny_run

# Tiny models are dominated by per-op overhead: on 2 cores, two torch threads per process (the
# suite plus the app servers it starts) made steps many times slower than one thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def pytest_terminal_summary(terminalreporter):
    """One line for the deprecations that libraries triggered in each other (seen, never failed)."""
    if line := summary_line():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def tiny_predictor() -> Predictor:
    return make_tiny_predictor()


@pytest.fixture(scope="module")
def tiny_model(request):
    """``(model, processor)`` of the tiny model named by the test module's ``SOURCE`` (``tiny:blip``)."""
    backbone = build_tiny_backbone(source=request.module.SOURCE)
    return backbone.core, backbone.processor


@pytest.fixture(scope="session")
def compare_smoke(tmp_path_factory):
    """``compare_smoke(source) -> (out, comparison)``: ``training.compare --base <source> --smoke`` run
    once per source for the session, shared by the parametrized checks and a family's own."""
    from tests.family_pipeline_checks import run_compare_smoke  # the evaluate/app imports only when used

    runs = {}

    def run(source: str):
        if source not in runs:
            out = tmp_path_factory.mktemp("compare") / "cmp"
            runs[source] = out, run_compare_smoke(source, out)
        return runs[source]

    return run


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


@pytest.fixture(scope="module")
def tiny_errors(app_assets):
    """The Errors tab's callbacks on the tiny assets with the real tiny predictor (loaded on first use)."""
    from vqa_demo.ui.assets import AppAssets
    from vqa_demo.ui.holder import PredictorHolder
    from vqa_demo.ui.tabs.error_browser import ErrorBrowser

    config = app_assets.config
    holder = PredictorHolder(loader=app_assets.load_predictor, checkpoints=config.checkpoints)
    return ErrorBrowser(holder, AppAssets.load(config))
