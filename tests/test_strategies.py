"""The head-strategy registry: the only place head names are compared, the scores it gives, the
typed prediction details and their unchanged serialized layout, the captum-style attribution API,
and the predictor's size."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import OPTIONS, QUESTIONS
from vqa_demo.config import BASELINE_HEADS, HEAD_NAMES, VARIANTS
from vqa_demo.explain.attribution import ATTRIBUTION_METHODS, PixelTokenIntegratedGradients, ScoreForward
from vqa_demo.model.forward import image_features
from vqa_demo.model.head_traits import HEAD_TRAITS, TRAIT_NAMES
from vqa_demo.model.strategies import STRATEGIES, strategy_for
from vqa_demo.prediction import AttentionMap, CondGenDetails, VariantPrediction
from vqa_demo.predictor import Predictor
from vqa_demo.ui.explain_panels import METHOD_LABELS

ROOT = Path(__file__).resolve().parents[1]
HEAD_LITERALS = set(HEAD_NAMES + BASELINE_HEADS)
# The registry itself and the config's validation / variant naming may name heads.
ALLOWED = {"vqa_demo/model/strategies.py", "vqa_demo/config.py"}


def head_literal(node: ast.AST) -> bool:
    """A head-name string, or a tuple/list/set literal holding one."""
    if isinstance(node, ast.Constant):
        return node.value in HEAD_LITERALS
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(head_literal(e) for e in node.elts)
    return False


def head_comparisons(source: str) -> list[int]:
    """Line numbers of ``==``/``!=``/``in``/``not in`` comparisons involving a head-name literal,
    and of set literals of head names (``head in TOKEN_LEVEL_HEADS`` compares through one)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        compared = isinstance(node, ast.Compare) and any(map(head_literal, [node.left, *node.comparators]))
        if compared or (isinstance(node, ast.Set) and head_literal(node)):
            lines.append(node.lineno)
    return lines


def test_the_scan_finds_comparisons():
    found = head_comparisons(
        'a = h == "swag"\nb = "cond_gen" != h\nc = h in ("multi_class", "x")\nd = {"swag"}\ne = h == "x"\n'
    )
    assert found == [1, 2, 3, 4]


def test_head_names_are_compared_only_in_the_registry_and_config():
    offenders = []
    for folder in ("vqa_demo", "training", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in ALLOWED:
                continue
            offenders += [f"{relative}:{line}" for line in head_comparisons(path.read_text())]
    assert offenders == []


def test_registry_covers_every_head_name():
    assert tuple(STRATEGIES) == HEAD_NAMES + BASELINE_HEADS
    assert all(strategy.name == name for name, strategy in STRATEGIES.items())


def test_traits_table_names_every_head_and_is_what_the_strategies_are():
    """The torch-free table the page is laid out from is the strategies' own class attributes."""
    assert tuple(HEAD_TRAITS) == HEAD_NAMES + BASELINE_HEADS
    for name, strategy in STRATEGIES.items():
        for trait in TRAIT_NAMES:
            assert getattr(strategy, trait) == getattr(HEAD_TRAITS[name], trait), (name, trait)
    assert STRATEGIES["cond_gen"].generates_text and STRATEGIES["cond_gen"].token_level_loss
    assert STRATEGIES["swag"].rows_per_option and STRATEGIES["swag"].has_module
    assert not STRATEGIES["multi_class"].rows_per_option and STRATEGIES["multi_class"].has_module
    assert STRATEGIES["vilt_answer_classifier"].only_family == "vilt"


def test_a_strategy_cannot_set_its_own_traits():
    from vqa_demo.model.classifier_strategies import SwagStrategy

    with pytest.raises(TypeError, match="rows_per_option: a head's traits are set in HEAD_TRAITS only"):

        class OneRowSwag(SwagStrategy):
            rows_per_option = False


def test_method_labels_offer_every_attribution_method():
    assert sorted(METHOD_LABELS.values()) == sorted(ATTRIBUTION_METHODS)


def test_predictor_is_slim():
    tree = ast.parse((ROOT / "vqa_demo" / "predictor.py").read_text())
    (predictor,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Predictor"]
    assert predictor.end_lineno - predictor.lineno + 1 < 200
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert max(n.end_lineno - n.lineno + 1 for n in functions) < 80


def test_only_multi_class_has_a_fixed_option_count(tiny_predictor):
    for name, variant in tiny_predictor.variants.items():
        fixed = variant.strategy.fixed_option_count(variant.config.head)
        assert fixed == (4 if name.startswith("multi_class") else None)
        assert (variant.incompatibility(3) is None) == (fixed is None)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_strategy_scores_are_the_predictions(tiny_predictor, images, variant):
    """``strategy.scores`` on the predictor's own features is what ``predict_batch`` reports."""
    predictor = tiny_predictor
    chosen = predictor.variants[variant]
    with torch.no_grad(), predictor.activate(chosen):
        features = image_features(predictor.backbone.core, predictor.pixel_values(images))
        out = chosen.strategy.scores(predictor.context(chosen), QUESTIONS, OPTIONS, features)
    results = predictor.predict_batch(images, QUESTIONS, OPTIONS, [variant])
    assert out.scores.shape == (3, 4)
    for b, result in enumerate(results):
        np.testing.assert_allclose(out.scores[b], result[variant].option_scores, atol=1e-5, rtol=0)


def test_multi_class_and_swag_target_scores_match_option_scores(tiny_predictor, images):
    """The attribution forward's score for every option (not only the chosen) is the option's score."""
    for variant in ("multi_class-last_token", "swag-attentive"):
        chosen = tiny_predictor.variants[variant]
        (prediction,) = tiny_predictor.predict_batch(images[:1], QUESTIONS[:1], OPTIONS[:1], [variant])
        with torch.no_grad(), tiny_predictor.activate(chosen):
            forward = ScoreForward(tiny_predictor, chosen, QUESTIONS[:1] * 4, OPTIONS[:1] * 4)
            rows = forward.target_rows([0, 1, 2, 3])
            pixels = tiny_predictor.pixel_values(images[:1] * 4)
            scores = forward(pixels, rows.text_embeds, *rows.additional_args)
        np.testing.assert_allclose(scores.numpy(), prediction[variant].option_scores, atol=1e-5, rtol=0)


def test_integrated_gradients_class_takes_a_target(tiny_predictor, images):
    """``Method(forward).attribute(pixels, target=k)``: completeness holds for a non-chosen option."""
    chosen = tiny_predictor.variants["cond_gen"]
    (prediction,) = tiny_predictor.predict_batch(images[:1], QUESTIONS[:1], OPTIONS[:1], ["cond_gen"])
    target = (prediction["cond_gen"].choice + 1) % 4
    with tiny_predictor.activate(chosen), torch.enable_grad():
        forward = ScoreForward(tiny_predictor, chosen, QUESTIONS[:1], OPTIONS[:1])
        method = PixelTokenIntegratedGradients(forward, n_steps=32)
        maps = method.attribute(tiny_predictor.pixel_values(images[:1]).float(), target=[target])
    # the score of the variant's decision rule (the default: per answer token)
    assert maps.scores[0] == pytest.approx(
        float(prediction["cond_gen"].cond_gen.loglik_mean[target]), abs=1e-4
    )
    total = float(maps.pixel_maps.sum() + (maps.token_maps * ~maps.rows.image_mask).sum())
    change = maps.scores[0] - maps.baseline_scores[0]
    assert abs(total - change - maps.deltas[0]) < 1e-3 * max(1.0, abs(change))
    assert set(ATTRIBUTION_METHODS) == {"integrated_gradients", "saliency"}


def cond_gen_prediction() -> VariantPrediction:
    details = CondGenDetails(
        "red",
        np.array([0.5, 0.25]),
        0,
        np.array([-1.0, -3.5], np.float32),
        np.array([-0.5, -1.75]),
        "loglik_sum",
    )
    scores = np.array([-1.0, -3.5], np.float32)
    return VariantPrediction("cond_gen", scores, np.array([0.75, 0.25]), 0, cond_gen=details, seconds=0.5)


def attentive_prediction() -> VariantPrediction:
    attention = AttentionMap(
        np.eye(2, dtype=np.float32), ["<bos>", "a"], np.array([0.25, 0.5]), 0.5, "prompt"
    )
    scores = np.array([0.0, 1.0])
    return VariantPrediction(
        "swag-attentive", scores, np.array([0.25, 0.75]), 1, attention=attention, truncated=True
    )


def test_serialized_layout_is_unchanged():
    """Saved per-example files and /answer clients read these exact keys, in this order."""
    expected_cond_gen = (
        '{"variant": "cond_gen", "option_scores": [-1.0, -3.5], "probabilities": [0.75, 0.25], "choice": 0, '
        '"extras": {"generated_text": "red", "cosine": [0.5, 0.25], "cosine_choice": 0, "loglik_sum": [-1.0, -3.5], '
        '"loglik_mean": [-0.5, -1.75], "scoring": "loglik_sum"}, "seconds": 0.5, "truncated": false}'
    )
    assert json.dumps(cond_gen_prediction().to_dict()) == expected_cond_gen
    expected_attention = (
        '{"variant": "swag-attentive", "option_scores": [0.0, 1.0], "probabilities": [0.25, 0.75], "choice": 1, '
        '"extras": {"attention": {"image_grid": [[1.0, 0.0], [0.0, 1.0]], "tokens": ["<bos>", "a"], '
        '"token_weights": [0.25, 0.5], "image_mass": 0.5, "row": "prompt"}}, "seconds": 0.0, "truncated": true}'
    )
    assert json.dumps(attentive_prediction().to_dict()) == expected_attention
    bare = VariantPrediction("multi_class-last_token", np.array([1.0]), np.array([1.0]), 0)
    assert bare.to_dict()["extras"] == {}


@pytest.mark.parametrize("make", [cond_gen_prediction, attentive_prediction])
def test_extras_round_trip(make):
    prediction = make()
    data = prediction.to_dict()
    back = VariantPrediction.from_extras(
        data["variant"], np.array(data["option_scores"]), np.array(data["probabilities"]), data["choice"],
        data["extras"], seconds=data["seconds"], truncated=data["truncated"],
    )  # fmt: skip
    assert json.dumps(back.to_dict()) == json.dumps(data)


def test_real_predictions_keep_the_layout(tiny_predictor, images):
    result = tiny_predictor.predict(images[0], QUESTIONS[0], OPTIONS[0])
    for name, prediction in result.items():
        data = json.loads(json.dumps(prediction.to_dict()))
        assert list(data) == [
            "variant",
            "option_scores",
            "probabilities",
            "choice",
            "extras",
            "seconds",
            "truncated",
        ]
        extras = list(data["extras"])
        if strategy_for(tiny_predictor.variants[name].config.head).generates_text:
            assert extras == [
                "generated_text",
                "cosine",
                "cosine_choice",
                "loglik_sum",
                "loglik_mean",
                "scoring",
                "loglik_char",
            ]
        elif name.endswith("attentive"):
            assert extras == ["attention"]
            assert list(data["extras"]["attention"]) == [
                "image_grid",
                "tokens",
                "token_weights",
                "image_mass",
                "row",
            ]
        else:
            assert extras == []
    assert isinstance(tiny_predictor, Predictor)
