"""LLaVA-1.5 (``tiny:llava``) and Gemma 3 (``tiny:gemma3``) against their own processors and forwards
(see tests/family_checks.py)."""

from __future__ import annotations

import pytest

from tests.family_checks import (
    OPTIONS,
    TOLERANCE,
    app_holder_answers,
    attribution_score_gap,
    check_all_linear_trains_the_tower,
    check_cond_gen_against_plain_forward,
    check_encoder_matches_processor,
    check_explanations_find_the_image_and_the_answer,
    check_lora_targets,
    check_multi_class_pooling_under_padding,
    check_swag_rows_against_single_passes,
    run_compare_smoke,
    run_evaluate_cli,
    vision_calls_of_one_predict,
)
from vqa_demo.config import VARIANTS
from vqa_demo.model.backbone import build_tiny_backbone
from vqa_demo.testing import random_variant_predictor

SOURCES = ["tiny:llava", "tiny:gemma3"]


@pytest.fixture(scope="module", params=SOURCES)
def source(request):
    return request.param


def test_encoder_equals_the_processor(source):
    check_encoder_matches_processor(source)


def test_cond_gen_loglik_and_generation_equal_the_plain_forward(source):
    assert check_cond_gen_against_plain_forward(source) <= TOLERANCE


@pytest.mark.parametrize("variant", ["multi_class-last_token", "multi_class-attentive"])
def test_pooling_under_padding_equals_rows_alone(source, variant):
    assert check_multi_class_pooling_under_padding(source, variant) <= TOLERANCE


@pytest.mark.parametrize("variant", ["swag-last_token", "swag-attentive"])
def test_swag_rows_equal_single_passes(source, variant):
    assert check_swag_rows_against_single_passes(source, variant) <= TOLERANCE


def test_vision_tower_runs_once_per_image_per_predict_call(source):
    predictor = random_variant_predictor(build_tiny_backbone(seed=1, source=source))
    assert vision_calls_of_one_predict(predictor, predictor.backbone.core.model.vision_tower) == [2]


def test_attributions_score_what_the_predictor_scored(source):
    assert attribution_score_gap(source) <= TOLERANCE


@pytest.fixture(scope="module")
def compared(tmp_path_factory, source):
    out = tmp_path_factory.mktemp("compare") / "cmp"
    return out, run_compare_smoke(source, out)


@pytest.mark.slow
def test_compare_smoke_writes_all_five_variants(compared, source):
    out, comparison = compared
    assert comparison["setting"]["base"] == source
    assert sorted(comparison["variants"]) == sorted(VARIANTS)
    for name, entry in comparison["variants"].items():
        assert 0.0 <= entry["accuracy"]["accuracy"] <= 1.0, name


@pytest.mark.slow
def test_evaluate_cli_and_app_holder_run_on_the_family(compared, tmp_path):
    out, comparison = compared
    metrics = run_evaluate_cli(out, tmp_path / "eval")
    assert sorted(metrics["variants"]) == sorted(VARIANTS)
    # The same checkpoints and split as the comparison's own evaluation: the same accuracies.
    for name, entry in comparison["variants"].items():
        assert metrics["variants"][name]["accuracy"] == entry["accuracy"], name
    answer = app_holder_answers(out)
    assert sorted(answer) == sorted(VARIANTS)
    assert all(0 <= prediction.choice < len(OPTIONS[0]) for prediction in answer.values())


def test_lora_targets_language_and_all_linear(source):
    check_lora_targets(source)
    check_all_linear_trains_the_tower(source)


def test_explanations_find_the_image_and_the_answer(source):
    check_explanations_find_the_image_and_the_answer(source)
