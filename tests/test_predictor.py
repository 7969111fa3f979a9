"""The predictor: shapes for every variant and K, batching invariance, vision-once, shared-prefix likelihood."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import OPTIONS, QUESTIONS, make_tiny_predictor
from vqa_demo.config import VARIANTS
from vqa_demo.model.answer_scorer import option_loglik, run_prefix
from vqa_demo.model.forward import image_features
from vqa_demo.model.scoring import classifier_loss
from vqa_demo.model.strategies import build_rows

ALL = list(VARIANTS)


def generated_text(prediction) -> str | None:
    return prediction.cond_gen.generated_text if prediction.cond_gen is not None else None


def test_all_five_variants_give_b_by_k_scores(tiny_predictor, images):
    results = tiny_predictor.predict_batch(images, QUESTIONS, OPTIONS)
    assert len(results) == 3
    for result in results:
        assert sorted(result) == sorted(ALL)
        for prediction in result.values():
            assert prediction.option_scores.shape == (4,)
            assert np.isfinite(prediction.option_scores).all()
            np.testing.assert_allclose(prediction.probabilities.sum(), 1.0, rtol=1e-5)
            assert prediction.choice == int(np.argmax(prediction.option_scores))


@pytest.mark.parametrize("k", [2, 6])
def test_other_option_counts_for_heads_that_allow_them(tiny_predictor, images, k):
    options = [[f"option {i} of {q}" for i in range(k)] for q in range(3)]
    assert set(tiny_predictor.incompatible_variants(k)) == {"multi_class-last_token", "multi_class-attentive"}
    results = tiny_predictor.predict_batch(images, QUESTIONS, options)
    for result in results:
        assert sorted(result) == sorted(["cond_gen", "swag-last_token", "swag-attentive"])
        assert all(p.option_scores.shape == (k,) for p in result.values())
    with pytest.raises(ValueError, match="trained for exactly 4 options"):
        tiny_predictor.predict(images[0], QUESTIONS[0], options[0], variants=["multi_class-attentive"])


def test_variable_k_within_one_batch(tiny_predictor, images):
    options = [OPTIONS[0][:2], OPTIONS[1], OPTIONS[2][:3]]
    batched = tiny_predictor.predict_batch(
        images, QUESTIONS, options, variants=["cond_gen", "swag-attentive"]
    )
    for i, result in enumerate(batched):
        single = tiny_predictor.predict(
            images[i], QUESTIONS[i], options[i], variants=["cond_gen", "swag-attentive"]
        )
        for name, prediction in result.items():
            assert prediction.option_scores.shape == (len(options[i]),)
            np.testing.assert_allclose(
                prediction.option_scores, single[name].option_scores, atol=1e-5, rtol=0
            )


def test_batched_equals_unbatched(tiny_predictor, images):
    batched = tiny_predictor.predict_batch(images, QUESTIONS, OPTIONS)
    for i in range(3):
        single = tiny_predictor.predict(images[i], QUESTIONS[i], OPTIONS[i])
        for name in ALL:
            np.testing.assert_allclose(
                batched[i][name].option_scores, single[name].option_scores, atol=1e-5, rtol=0
            )
            assert generated_text(batched[i][name]) == generated_text(single[name])


def test_swag_batched_equals_per_option_passes(tiny_predictor, images):
    predictor = tiny_predictor
    for name in ("swag-last_token", "swag-attentive"):
        variant = predictor.variants[name]
        predictor.backbone.model.set_adapter(variant.adapter)
        ctx, strategy = predictor.context(variant), variant.strategy
        with torch.no_grad():
            features = image_features(predictor.backbone.core, predictor.pixel_values(images[:1]))
            batched = strategy.classifier_scores(ctx, QUESTIONS[:1], OPTIONS[:1], features).scores[0]
            separate = [
                strategy.classifier_scores(ctx, QUESTIONS[:1], [[opt]], features).scores[0, 0]
                for opt in OPTIONS[0]
            ]
        torch.testing.assert_close(batched, torch.stack(separate), atol=1e-5, rtol=0)


def test_swag_mixed_k_runs_only_real_option_rows_and_trains(tiny_predictor, images):
    variant = tiny_predictor.variants["swag-attentive"]
    core, ctx, strategy = tiny_predictor.backbone.core, tiny_predictor.context(variant), variant.strategy
    options = [OPTIONS[0][:2], OPTIONS[1], OPTIONS[2][:3]]
    with torch.no_grad():
        features = image_features(core, tiny_predictor.pixel_values(images))
    with tiny_predictor.activate(variant):
        out = strategy.classifier_scores(ctx, QUESTIONS, options, features)
        alone = [
            strategy.classifier_scores(ctx, [q], [o], features[b : b + 1])
            for b, (q, o) in enumerate(zip(QUESTIONS, options))
        ]
    assert out.rows.input_ids.shape[0] == 2 + 4 + 3 and out.row_counts == [2, 4, 3]
    assert out.first_row(2) == 6 and out.weights.shape[0] == 9
    for b, single in enumerate(alone):
        k = len(options[b])
        torch.testing.assert_close(out.scores[b, :k], single.scores[0], atol=1e-5, rtol=0)
        assert torch.isinf(out.scores[b, k:]).all() and (out.scores[b, k:] < 0).all()
    # Gradients reach the head through the scattered scores.
    variant.module.zero_grad()
    classifier_loss(out.scores, torch.tensor([1, 3, 0])).backward()
    assert variant.module.scorer.weight.grad is not None and variant.module.scorer.weight.grad.abs().sum() > 0
    variant.module.zero_grad()


def test_vision_tower_runs_once_per_call(tiny_predictor, images):
    calls = []
    hook = tiny_predictor.backbone.core.model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
    try:
        result = tiny_predictor.predict(images[0], QUESTIONS[0], OPTIONS[0])
    finally:
        hook.remove()
    assert len(result) == 5 and len(OPTIONS[0]) == 4
    assert len(calls) == 1


def test_shared_prefix_likelihood_equals_naive_full_passes(tiny_predictor, images):
    predictor = tiny_predictor
    variant = predictor.variants["cond_gen"]
    predictor.backbone.model.set_adapter(variant.adapter)
    core, encoder = predictor.backbone.core, predictor.encoder_for(variant.config)
    pixels = predictor.pixel_values(images)
    with torch.no_grad():
        features = image_features(core, pixels)
        rows = encoder.encode(
            [build_rows("cond_gen", q, o)[0] for q, o in zip(QUESTIONS, OPTIONS)], with_suffix=False
        )
        family = predictor.backbone.family
        state = run_prefix(family, core, rows, features)
        loglik_sum, loglik_mean = option_loglik(family, core, encoder, state, OPTIONS)
        for b, (question, options) in enumerate(zip(QUESTIONS, OPTIONS)):
            for k in range(len(options)):
                full = encoder.encode(build_rows("cond_gen", question, options, answer_index=k))
                logits = core(
                    input_ids=full.input_ids,
                    attention_mask=full.attention_mask,
                    token_type_ids=full.token_type_ids,
                    pixel_values=pixels[b : b + 1],
                ).logits[0, :-1]
                labels = full.labels[0, 1:]
                keep = labels != -100
                token_logp = torch.log_softmax(logits.float(), -1)[keep].gather(-1, labels[keep, None])
                assert abs(float(token_logp.sum()) - float(loglik_sum[b, k])) < 1e-4
                assert abs(float(token_logp.mean()) - float(loglik_mean[b, k])) < 1e-4


def test_cond_gen_details_and_attention_maps(tiny_predictor, images):
    result = tiny_predictor.predict(images[0], QUESTIONS[0], OPTIONS[0])
    details = result["cond_gen"].cond_gen
    assert isinstance(details.generated_text, str) and result["cond_gen"].attention is None
    for scores in (details.cosine, details.loglik_sum, details.loglik_mean):
        assert scores.shape == (4,)
    for name in ("multi_class-attentive", "swag-attentive"):
        attention = result[name].attention
        side = int(tiny_predictor.backbone.image_seq_length**0.5)
        assert attention.image_grid.shape == (side, side)
        assert len(attention.tokens) == len(attention.token_weights) > 0
        total = attention.image_grid.sum() + attention.token_weights.sum()
        assert abs(total - 1.0) < 1e-5
        assert result[name].cond_gen is None
    assert result["swag-last_token"].attention is None


def test_unknown_variant_is_named(tiny_predictor, images):
    with pytest.raises(ValueError, match="unknown variants"):
        tiny_predictor.predict(images[0], "q", ["a", "b"], variants=["nope"])


def test_batch_size_does_not_change_scores(images):
    small = make_tiny_predictor(variants=("swag-attentive", "cond_gen"), batch_size=1)
    large = make_tiny_predictor(variants=("swag-attentive", "cond_gen"), batch_size=8)
    a, b = small.predict_batch(images, QUESTIONS, OPTIONS), large.predict_batch(images, QUESTIONS, OPTIONS)
    for x, y in zip(a, b):
        for name in x:
            np.testing.assert_allclose(x[name].option_scores, y[name].option_scores, atol=1e-5, rtol=0)


def test_options_are_scored_in_their_trained_form(tiny_predictor, images):
    messy = tiny_predictor.predict(
        images[0], QUESTIONS[0], ["red  square", "blue\nsquare", " green ", "pink"]
    )
    clean = tiny_predictor.predict(images[0], QUESTIONS[0], ["red square", "blue square", "green", "pink"])
    for name in ALL:
        np.testing.assert_allclose(messy[name].option_scores, clean[name].option_scores, atol=1e-6, rtol=0)
