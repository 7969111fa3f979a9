"""Shared fixtures: tiny in-process PaliGemma models and predictors (no network, seconds to build)."""

from __future__ import annotations

import pytest
from PIL import Image

from vqa_demo.predictor import Predictor
from vqa_demo.tiny import TrigramMatcher as HashMatcher
from vqa_demo.tiny import make_tiny_predictor, randomize, tiny_run_config

__all__ = ["HashMatcher", "make_tiny_predictor", "randomize", "tiny_run_config"]


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
    """A complete tiny assets folder (base, five checkpoints, validation, evaluation, examples); see app_support."""
    from tests.app_support import build_app_assets

    return build_app_assets(tmp_path_factory.mktemp("app-assets"))
