"""Tiny in-process five-variant predictors for tests, benchmark quick modes and UI development.

Everything here is random and small (hidden 32, 2 layers, 16 image tokens): it exercises the real
code paths in milliseconds, it does not answer questions well.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from vqa_demo.config import VARIANTS, BackboneConfig, HeadConfig, LoraSettings, RunConfig
from vqa_demo.model.backbone import Backbone, add_lora, build_tiny_backbone
from vqa_demo.model.strategies import build_head
from vqa_demo.predictor import Predictor, Variant


class TrigramMatcher:
    """A deterministic, instant stand-in for the sentence model: hashed character-trigram vectors.

    For checks of the predictor's plumbing, where loading all-MiniLM-L6-v2 would only cost time.
    """

    def cosine_scores(self, generated, options):
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
        adapter = name.replace("-", "_")
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
