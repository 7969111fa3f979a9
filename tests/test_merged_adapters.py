"""Inference with LoRA merged into swapped-in weights: same scores as peft's forward, base untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import OPTIONS, QUESTIONS
from vqa_demo.config import VARIANTS
from vqa_demo.model.merged_adapters import MergedAdapters, lora_linears
from vqa_demo.testing import make_tiny_predictor

ALL = list(VARIANTS)


@pytest.fixture(scope="module")
def predictor():
    return make_tiny_predictor(seed=3)


def unmerged_predictions(predictor, images, options=OPTIONS):
    with predictor.adapters.unmerged():
        return predictor.predict_batch(images, QUESTIONS, options)


def assert_same_scores(a, b, atol=1e-5):
    for left, right in zip(a, b):
        for name in ALL:
            np.testing.assert_allclose(left[name].option_scores, right[name].option_scores, atol=atol, rtol=0)


def test_merged_scores_equal_peft_forward_for_every_variant(predictor, images):
    assert predictor.adapters.merged is not None, predictor.adapters.unmerged_reason
    merged = predictor.predict_batch(images, QUESTIONS, OPTIONS)
    assert_same_scores(merged, unmerged_predictions(predictor, images))
    for m, u in zip(merged, unmerged_predictions(predictor, images)):
        assert m["cond_gen"].cond_gen.generated_text == u["cond_gen"].cond_gen.generated_text


def test_base_weights_and_lora_flags_are_restored(predictor, images):
    layers = lora_linears(predictor.backbone.model)
    before = [(layer.base_layer.weight, layer.base_layer.weight.detach().clone()) for layer in layers]
    grads = {n: p.requires_grad for n, p in predictor.backbone.model.named_parameters()}
    predictor.predict_batch(images, QUESTIONS, OPTIONS)
    for layer, (param, values) in zip(layers, before):
        assert layer.base_layer.weight is param  # the original Parameter object is back ...
        assert torch.equal(param, values)  # ... and was never written to
        assert not layer.disable_adapters
    assert grads == {n: p.requires_grad for n, p in predictor.backbone.model.named_parameters()}


def test_merged_weights_follow_adapter_updates(images):
    predictor = make_tiny_predictor(seed=4)
    before = predictor.predict_batch(images, QUESTIONS, OPTIONS)
    with torch.no_grad():  # an optimizer step on one adapter, in place
        for layer in lora_linears(predictor.backbone.model):
            layer.lora_B["swag_attentive"].weight.add_(0.5)
    after = predictor.predict_batch(images, QUESTIONS, OPTIONS)
    assert_same_scores(after, unmerged_predictions(predictor, images))
    changed = [
        not np.allclose(a["swag-attentive"].option_scores, b["swag-attentive"].option_scores)
        for a, b in zip(after, before)
    ]
    assert any(changed)
    # The other variants' merged copies were not disturbed.
    for a, b in zip(after, before):
        for name in ALL:
            if name != "swag-attentive":
                np.testing.assert_allclose(a[name].option_scores, b[name].option_scores, atol=1e-5, rtol=0)


def test_merging_refuses_what_it_cannot_reproduce(images):
    predictor = make_tiny_predictor(seed=5)
    model = predictor.backbone.model
    assert "budget" in MergedAdapters(model, budget_bytes=1024).unsupported_reason()
    model.to(torch.bfloat16)
    for variant in predictor.variants.values():
        if variant.module is not None:
            variant.module.to(torch.bfloat16)
    assert "bfloat16" in MergedAdapters(model).unsupported_reason()
    with pytest.raises(ValueError, match="cannot merge the adapters: .*bfloat16"):
        type(predictor)(predictor.backbone, list(predictor.variants.values()), merge_adapters=True)
    fallback = type(predictor)(predictor.backbone, list(predictor.variants.values()), predictor.matcher)
    assert fallback.adapters.merged is None and "bfloat16" in fallback.adapters.unmerged_reason
    assert len(fallback.predict_batch(images[:1], QUESTIONS[:1], OPTIONS[:1])[0]) == len(ALL)
