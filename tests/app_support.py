"""Helpers for the app tests: a complete tiny assets folder, a fake predictor, a local server.

``build_app_assets(root)`` lays out what the shipped ``assets/`` will hold, from the tiny model::

    base/  checkpoints/<variant>/ (+ metrics.jsonl)  validation/  evaluation/  comparison.json  examples/
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tests.conftest import HashMatcher, make_tiny_predictor, tiny_run_config
from training.compare import build_comparison
from training.synthetic import generate_split
from vqa_demo.backbone import build_tiny_backbone, load_backbone, save_backbone
from vqa_demo.checkpoints import load_variants, save_variant
from vqa_demo.config import VARIANTS, BackboneConfig
from vqa_demo.data import load_split
from vqa_demo.evaluation import evaluate, write_evaluation
from vqa_demo.jsonl import write_jsonl
from vqa_demo.predictor import Predictor, Variant, VariantPrediction, softmax_np
from vqa_demo.ui.config import AppConfig
from vqa_demo.ui.loopback import launch_on_loopback

VALIDATION_SIZE = 12


@dataclass
class AppAssetsDir:
    """A tiny assets folder and how to load its predictor (sentence model replaced by HashMatcher)."""

    root: Path

    @property
    def config(self) -> AppConfig:
        return AppConfig(assets=self.root, base=str(self.root / "base"))

    def load_predictor(self) -> Predictor:
        backbone = load_backbone(BackboneConfig(source=str(self.root / "base")))
        directories = sorted((self.root / "checkpoints").iterdir())
        return Predictor(backbone, load_variants(backbone, directories), matcher=HashMatcher())


def fake_curve(seed: int, steps: int = 40) -> list[dict]:
    rng = np.random.default_rng(seed)
    curve = []
    for step in range(0, steps + 1, 5):
        row = {"step": step, "loss": float(1.4 * np.exp(-step / 25) + 0.05 * rng.random())}
        if step % 10 == 0:
            row["accuracy"] = float(min(1.0, 0.25 + step / 80 + 0.05 * rng.random()))
        curve.append(row)
    return curve


def build_app_assets(root: Path) -> AppAssetsDir:
    """Write base, five checkpoints, a validation split, its evaluation, a comparison and examples."""
    root = Path(root)
    save_backbone(build_tiny_backbone(seed=0), root / "base")
    trained = make_tiny_predictor(seed=0)
    for i, (name, variant) in enumerate(trained.variants.items()):
        directory = save_variant(
            root / "checkpoints" / name, variant.config, trained.backbone, variant.head, variant.adapter
        )
        write_jsonl(directory / "metrics.jsonl", fake_curve(i))
    generate_split(root / "validation", VALIDATION_SIZE, seed=0, prefix="validation", image_size=64)
    split = load_split(root / "validation")
    assets = AppAssetsDir(root)
    result = evaluate(assets.load_predictor(), split, progress=False)
    write_evaluation(result, root / "evaluation", split)
    # Written the way training.compare writes it (curves from the checkpoints' metrics.jsonl).
    trained_runs = {
        name: {"best_step": 40, "seconds": 12.0 + i} for i, name in enumerate(result.metrics["variants"])
    }
    comparison = build_comparison({"num_options": 4}, root / "checkpoints", result.metrics, trained_runs)
    (root / "comparison.json").write_text(json.dumps(comparison))
    (root / "examples").mkdir()
    one_per_family = {ex.metadata["family"]: ex for ex in reversed(split.examples)}
    for example in list(one_per_family.values())[:4]:
        shutil.copy(example.image_path, root / "examples" / example.file_name)
    return assets


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
            prediction = VariantPrediction(name, scores, softmax_np(scores), int(np.argmax(scores)), extras)
            prediction.seconds = self.seconds
            out[name] = prediction
        return out


# The tests' short name for the one loopback launcher.
launch = launch_on_loopback
