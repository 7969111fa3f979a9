"""Helpers for the app tests: a fake predictor and a local server.

The tiny assets folder they run against is :func:`vqa_demo.testing.build_app_assets` (shared with the
benchmarks).
"""

from __future__ import annotations

import numpy as np
import torch

from vqa_demo.config import VARIANTS
from vqa_demo.predictor import Variant, VariantPrediction, softmax_np
from vqa_demo.testing import tiny_run_config
from vqa_demo.ui.loopback import launch_on_loopback


class FakePredictor:
    """Stands in for :class:`Predictor` in UI tests: fixed scores, attention extras, a call log."""

    def __init__(self, names=tuple(VARIANTS), seconds: float = 0.001):
        self.variants = {n: Variant(n, tiny_run_config(n)) for n in names}
        self.calls: list[tuple] = []
        self.seconds = seconds

    def pixel_values(self, images) -> torch.Tensor:
        """``float[B, 3, 8, 8]``: each image shrunk to 8 x 8, as a processor would make model input."""
        arrays = [np.asarray(img.convert("RGB").resize((8, 8)), dtype=np.float32) / 255 for img in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def predict(self, image, question, options, variants=None):
        self.calls.append((image, question, list(options), list(variants or [])))
        names = list(variants) if variants is not None else list(self.variants)
        out = {}
        for offset, name in enumerate(names):
            k = len(options)
            scores = np.array(
                [float((i + offset) % k == 0) * 2 + 0.1 * i for i in range(k)], dtype=np.float32
            )
            extras: dict = {}
            if name == "cond_gen":
                extras = {
                    "generated_text": options[0],
                    "cosine": np.linspace(0.9, 0.1, k),
                    "cosine_choice": 0,
                    "loglik_mean": -np.arange(k, dtype=np.float32),
                    "loglik_sum": -2 * np.arange(k, dtype=np.float32),
                    "scoring": "loglik_mean",
                }
            if name.endswith("attentive"):
                grid = np.zeros((4, 4), dtype=np.float32)
                grid[1, 2] = 0.5
                extras["attention"] = {
                    "image_grid": grid,
                    "tokens": ["<bos>", "What", " colour", "?", "\n"],
                    "token_weights": np.array([0.0, 0.1, 0.3, 0.05, 0.05], dtype=np.float32),
                    "image_mass": 0.5,
                    "row": "prompt",
                }
            prediction = VariantPrediction.from_extras(
                name, scores, softmax_np(scores), int(np.argmax(scores)), extras
            )
            prediction.seconds = self.seconds
            out[name] = prediction
        return out


# The tests' short name for the one loopback launcher.
launch = launch_on_loopback


def served(config, predictor):
    """The app on ``predictor`` served on loopback, for module fixtures: yields ``{"url", "demo",
    "fake", "config"}`` (``fake`` is the predictor), then closes the server."""
    from vqa_demo.ui import build_demo

    demo = build_demo(config, predictor=predictor)
    url = launch(demo, config).rstrip("/")
    try:
        yield {"url": url, "demo": demo, "fake": predictor, "config": config}
    finally:
        demo.close()


def click_events(demo, elem_id: str) -> list[dict]:
    """The click events wired to the component with ``elem_id``, as the page receives them (demo.config)."""
    ids = [c["id"] for c in demo.config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    return [
        dependency
        for dependency in demo.config["dependencies"]
        if (ids[0], "click") in [tuple(target) for target in dependency["targets"]]
    ]
