"""The two biases that only shift a softmax's inputs (SWAG's scorer over options, attentive pooling's
scorer over positions) are frozen and out of the optimizer; checkpoints written while they trained
(non-zero values in ``head.safetensors``) still load, keep them, and score exactly as before."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from tests.conftest import OPTIONS, QUESTIONS
from training.train import TrainConfig, build_optimizer
from vqa_demo.checkpoints import load_variants, save_variant
from vqa_demo.model.backbone import add_lora, build_tiny_backbone
from vqa_demo.model.strategies import build_head
from vqa_demo.predictor import Predictor
from vqa_demo.testing import TrigramMatcher, make_tiny_predictor, tiny_run_config

SHIFT_BIASES = {"swag-last_token": {"scorer.bias"}, "swag-attentive": {"scorer.bias", "pooling.score.bias"}}
SHIFT_BIASES["multi_class-attentive"] = {"pooling.score.bias"}


def test_shift_biases_start_at_zero_and_stay_out_of_the_optimizer():
    backbone = build_tiny_backbone()
    add_lora(backbone, tiny_run_config("cond_gen").lora)
    for variant, biases in SHIFT_BIASES.items():
        head = build_head(tiny_run_config(variant).head, backbone.hidden_size)
        params = dict(head.named_parameters())
        assert {k for k, p in params.items() if not p.requires_grad} == biases, variant
        assert all(float(params[k].abs().max()) == 0.0 for k in biases)
        optimizer, _, _ = build_optimizer(TrainConfig(), backbone, head, num_examples=8, num_processes=1)
        optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
        assert {k for k, p in params.items() if id(p) in optimized} == set(params) - biases, variant


def test_checkpoints_with_trained_shift_biases_load_and_score_identically(images, tmp_path):
    # Random heads stand in for heads trained before the freeze: their biases are non-zero.
    predictor = make_tiny_predictor(variants=tuple(SHIFT_BIASES))
    backbone = predictor.backbone
    for name, variant in predictor.variants.items():
        save_variant(tmp_path / name, variant.config, backbone, variant.module, variant.adapter)
        stored = load_file(tmp_path / name / "head.safetensors")
        assert all(float(stored[k].abs().max()) > 0 for k in SHIFT_BIASES[name])
    fresh = build_tiny_backbone()
    loaded = load_variants(fresh, [tmp_path / name for name in SHIFT_BIASES])
    for variant in loaded:
        state = variant.module.state_dict()
        for key in SHIFT_BIASES[variant.name]:
            torch.testing.assert_close(state[key], predictor.variants[variant.name].module.state_dict()[key])
            assert not dict(variant.module.named_parameters())[key].requires_grad
    again = Predictor(fresh, loaded, matcher=TrigramMatcher())
    before = predictor.predict_batch(images, QUESTIONS, OPTIONS)
    after = again.predict_batch(images, QUESTIONS, OPTIONS)
    for old, new in zip(before, after):
        for name in SHIFT_BIASES:
            np.testing.assert_array_equal(new[name].option_scores, old[name].option_scores)
            assert new[name].choice == old[name].choice
