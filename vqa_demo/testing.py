"""Test support shared by the test suite and the benchmarks: tiny five-variant predictors and a tiny
assets folder, built in-process in seconds (no network, no downloads).

- :func:`make_tiny_predictor` / :func:`random_variant_predictor`: a backbone with one random LoRA
  adapter and one random head per variant, so adapters really switch and scores really differ;
- :class:`TrigramMatcher`: an instant stand-in for the sentence model of COND_GEN's cosine matching;
- :func:`build_app_assets`: what the shipped ``assets/`` folder holds, from the tiny model;
- :func:`write_tiny_run`: a saved run on another family's tiny model (the Compare tab's other backbones).

Everything is random and small (``vqa_demo.config.TINY_SIZE``: hidden 32, 2 layers, 16 image tokens):
it exercises the real code paths in milliseconds, it does not answer questions well. The tiny
*backbone* itself (``--base tiny``) is a product feature and lives in :mod:`vqa_demo.model.backbone`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vqa_demo.checkpoints import adapter_name, load_variants, save_variant
from vqa_demo.config import VARIANTS, BackboneConfig, HeadConfig, LoraSettings, RunConfig
from vqa_demo.data.jsonl import write_jsonl
from vqa_demo.data.splits import load_split
from vqa_demo.evaluation.runner import evaluate, write_evaluation
from vqa_demo.model.backbone import Backbone, add_lora, build_tiny_backbone, load_backbone, save_backbone
from vqa_demo.model.strategies import build_head
from vqa_demo.predictor import Predictor, Variant

if TYPE_CHECKING:
    from vqa_demo.ui.server_settings import AppConfig

APP_VALIDATION_SIZE = 12


class TrigramMatcher:
    """A deterministic, instant stand-in for the sentence model: hashed character-trigram vectors.

    For checks of the predictor's plumbing, where loading all-MiniLM-L6-v2 would only cost time.
    """

    def cosine_scores(self, generated: list[str], options: list[list[str]]) -> np.ndarray:
        """``float[B, K]`` cosine of each generated text with its options (``-inf`` past a row's K)."""

        def embed(text):
            vec = np.zeros(64)
            for i in range(max(len(text) - 2, 1)):
                vec[int(hashlib.md5(text[i : i + 3].encode()).hexdigest(), 16) % 64] += 1
            return vec / (np.linalg.norm(vec) or 1.0)

        num_options = max(len(o) for o in options)
        scores = np.full((len(options), num_options), -np.inf, dtype=np.float32)
        for b, opts in enumerate(options):
            scores[b, : len(opts)] = [embed(o) @ embed(generated[b]) for o in opts]
        return scores


def tiny_run_config(
    variant: str, num_options: int = 4, lora: LoraSettings | None = None, max_new_tokens: int = 4
) -> RunConfig:
    """The run config of ``variant`` (a :data:`~vqa_demo.config.VARIANTS` name) on the tiny base."""
    head, pooling = VARIANTS[variant]
    return RunConfig(
        head=HeadConfig(head=head, pooling=pooling, num_options=num_options, max_new_tokens=max_new_tokens),
        backbone=BackboneConfig(source="tiny"),
        lora=lora or LoraSettings(r=4, alpha=8, dropout=0.0, init_weights=False),
    )


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Give a head non-trivial weights (attentive scorers start at zero = mean pooling)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def random_variant_predictor(
    backbone: Backbone,
    variants=tuple(VARIANTS),
    seed: int = 0,
    lora: LoraSettings | None = None,
    max_new_tokens: int = 4,
    matcher=None,
    batch_size: int = 16,
) -> Predictor:
    """``backbone`` with one random LoRA adapter + random head per variant (seeded)."""
    loaded = []
    for i, name in enumerate(variants):
        config = tiny_run_config(name, lora=lora, max_new_tokens=max_new_tokens)
        config.backbone.source = backbone.source
        adapter = adapter_name(name)
        torch.manual_seed(seed + 100 + i)
        add_lora(backbone, config.lora, adapter_name=adapter)
        head = build_head(config.head, backbone.hidden_size)
        if head is not None:
            randomize(head, seed + i)
            head.eval()
        loaded.append(Variant(name, config, head, adapter))
    backbone.model.eval()
    return Predictor(backbone, loaded, matcher=matcher or TrigramMatcher(), batch_size=batch_size)


def make_tiny_predictor(variants=tuple(VARIANTS), seed: int = 0, batch_size: int = 16) -> Predictor:
    """A tiny backbone with one random LoRA adapter + random head per variant."""
    return random_variant_predictor(build_tiny_backbone(seed=seed), variants, seed, batch_size=batch_size)


@dataclass
class AppAssetsDir:
    """A tiny assets folder and how to load its predictor (sentence model replaced by TrigramMatcher)."""

    root: Path

    @property
    def config(self) -> AppConfig:
        from vqa_demo.ui.server_settings import AppConfig  # the app's settings need gradio; the rest does not

        return AppConfig(assets=self.root, base=str(self.root / "base"))

    def load_predictor(self) -> Predictor:
        backbone = load_backbone(BackboneConfig(source=str(self.root / "base")))
        directories = sorted((self.root / "checkpoints").iterdir())
        return Predictor(backbone, load_variants(backbone, directories), matcher=TrigramMatcher())


def write_tiny_run(out: str | Path, source: str, validation: str | Path, seed: int = 0) -> Path:
    """A run folder laid out as ``training.compare`` writes it (``comparison.json`` + ``evaluation/``):
    random variants on the tiny model of ``--base source`` (every variant its family runs, plus its
    zero-training baselines), evaluated on the split at ``validation``; nothing is trained."""
    from training.compare import applicable_variants, build_comparison

    out = Path(out)
    backbone = build_tiny_backbone(seed=seed, source=source)
    names, not_applicable = applicable_variants(backbone.family, list(VARIANTS))
    predictor = random_variant_predictor(backbone, names, seed)
    baselines = [Variant(name, config) for name, config in backbone.family.baseline_configs(source).items()]
    predictor.variants.update({baseline.name: baseline for baseline in baselines})
    split = load_split(validation)
    result = evaluate(predictor, split, [*names, *(b.name for b in baselines)], progress=False)
    write_evaluation(result, out / "evaluation", split)
    trained = {name: {"best_step": 0, "seconds": 1.0} for name in names}
    setting = {"base": source, "seed": seed, "num_options": 4}
    comparison = build_comparison(
        setting, out, result.metrics, trained, [b.name for b in baselines], not_applicable
    )
    (out / "comparison.json").write_text(json.dumps(comparison))
    return out


def fake_curve(seed: int, steps: int = 40) -> list[dict]:
    """A plausible training curve: loss every 5 steps, falling; validation accuracy every 10, rising."""
    rng = np.random.default_rng(seed)
    curve = []
    for step in range(0, steps + 1, 5):
        row = {"step": step, "loss": float(1.4 * np.exp(-step / 25) + 0.05 * rng.random())}
        if step % 10 == 0:
            row["accuracy"] = float(min(1.0, 0.25 + step / 80 + 0.05 * rng.random()))
        curve.append(row)
    return curve


def build_app_assets(root: str | Path) -> AppAssetsDir:
    """Write what the shipped ``assets/`` holds, from the tiny model, under ``root``::

    base/  checkpoints/<variant>/ (+ metrics.jsonl)  validation/  evaluation/  comparison.json  examples/
    """
    # The synthetic data and the comparison format belong to training/; only this builder needs them.
    from training.compare import build_comparison
    from training.synthetic import generate_split

    root = Path(root)
    save_backbone(build_tiny_backbone(seed=0), root / "base")
    trained = make_tiny_predictor(seed=0)
    for i, (name, variant) in enumerate(trained.variants.items()):
        directory = save_variant(
            root / "checkpoints" / name, variant.config, trained.backbone, variant.module, variant.adapter
        )
        write_jsonl(directory / "metrics.jsonl", fake_curve(i))
    generate_split(root / "validation", APP_VALIDATION_SIZE, seed=0, prefix="validation", image_size=64)
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
