"""Every tiny stand-in's image path is live, so the image tests of every family can fail.

For each tiny source of the family registry: another image moves every head's option scores by more
than :data:`SCORE_MARGIN`, and one backward under ``all-linear`` LoRA gives every vision LoRA weight
(and the pixels) a non-zero gradient. A stand-in whose projector started at zero (image features
exactly 0) or whose vision tower started at std 1e-10 (image states ~1e-7) fails both.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import OPTIONS, QUESTIONS
from tests.family_checks import random_image
from tests.family_pipeline_checks import lora_wrapped
from vqa_demo.config import BackboneConfig, HeadConfig, LoraSettings
from vqa_demo.model.backbone import add_lora, load_backbone
from vqa_demo.model.families.registry import tiny_sources
from vqa_demo.model.forward import image_features
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.strategies import STRATEGIES, variant_loss
from vqa_demo.testing import TrigramMatcher, randomize

# Scores are log-likelihoods or logits of order 1 to 10; float32 noise on them is ~1e-6. An image
# path that is cut or ~1e-7 in scale moves them by no more than that.
SCORE_MARGIN = 1e-3
IMAGES = [random_image(24, 24, seed=1), random_image(24, 24, seed=2)]


def head_config(strategy) -> HeadConfig:
    return HeadConfig(head=strategy.name, pooling=None if strategy.name == "cond_gen" else "attentive")


def live_strategies(backbone) -> list:
    return [s for s in STRATEGIES.values() if not backbone.family.refusal(s)]


@pytest.mark.parametrize("source", tiny_sources())
def test_another_image_moves_every_heads_scores_by_more_than_the_margin(source):
    backbone = load_backbone(BackboneConfig(source=source))
    features = backbone.family.image_features(backbone.core, backbone.pixel_values(IMAGES))
    for strategy in live_strategies(backbone):
        head = head_config(strategy)
        module = strategy.build_head(head, backbone.hidden_size)
        if module is not None:
            randomize(module, seed=0)
        ctx = HeadContext(
            backbone.core, backbone.row_encoder(), head, module=module, matcher=TrigramMatcher()
        )
        with torch.no_grad():
            scores = [
                strategy.scores(ctx, QUESTIONS[:1], OPTIONS[:1], features[i : i + 1]).scores[0]
                for i in (0, 1)
            ]
        moved = float(np.abs(scores[0] - scores[1]).max())
        assert moved > SCORE_MARGIN, (
            f"{source} {strategy.name}: another image moves the scores by {moved:.2e}"
        )


@pytest.mark.parametrize("source", tiny_sources())
def test_all_linear_lora_gives_every_vision_lora_weight_a_gradient(source):
    backbone = load_backbone(BackboneConfig(source=source))
    torch.manual_seed(0)
    add_lora(backbone, LoraSettings(r=2, alpha=4, dropout=0.0, init_weights=False, vision=True))
    strategy = STRATEGIES["swag"]
    head = head_config(strategy)
    module = strategy.build_head(head, backbone.hidden_size)
    randomize(module, seed=0)
    pixels = backbone.pixel_values(IMAGES).requires_grad_(True)
    features = image_features(backbone.core, pixels, grad=True)
    ctx = HeadContext(backbone.core, backbone.row_encoder(), head, module=module)
    variant_loss(ctx, QUESTIONS[:2], OPTIONS[:2], [0, 2], features).backward()
    assert pixels.grad is not None and pixels.grad.abs().max() > 0, source
    lora = {n: p for n, p in backbone.core.named_parameters() if "lora_" in n}
    if lora_wrapped(load_backbone(BackboneConfig(source=source)), vision=False) == lora_wrapped(
        load_backbone(BackboneConfig(source=source)), vision=True
    ):
        # One stream (ViLT): image patches and text share every LoRA-wrapped layer; all of it must learn.
        vision = lora
    else:
        vision = {n: p for n, p in lora.items() if any(part in n for part in backbone.family.vision_modules)}
    assert vision, f"{source}: all-linear put no LoRA in the vision modules"
    # Each vision module (tower, projector) has LoRA weights that learn. Not every weight: LLaVA reads
    # the tower's penultimate layer, so its last layer's LoRA gets no gradient, as in the real model.
    for part in backbone.family.vision_modules:
        mine = [p for n, p in vision.items() if part in n]
        if mine:
            learning = [p for p in mine if p.grad is not None and p.grad.abs().max() > 0]
            assert learning, f"{source}: no LoRA weight of {part} gets a gradient"
    total = sum(float(p.grad.abs().sum()) for p in vision.values() if p.grad is not None)
    assert total > 0, f"{source}: the vision LoRA gets no gradient"
