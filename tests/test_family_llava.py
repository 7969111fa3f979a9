"""LLaVA-1.5 (``tiny:llava``) against its own processor and forward (see tests/family_checks.py)."""

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

SOURCE = "tiny:llava"


def test_encoder_equals_the_processor():
    check_encoder_matches_processor(SOURCE)


def test_cond_gen_loglik_and_generation_equal_the_plain_forward():
    assert check_cond_gen_against_plain_forward(SOURCE) <= TOLERANCE


@pytest.mark.parametrize("variant", ["multi_class-last_token", "multi_class-attentive"])
def test_pooling_under_padding_equals_rows_alone(variant):
    assert check_multi_class_pooling_under_padding(SOURCE, variant) <= TOLERANCE


@pytest.mark.parametrize("variant", ["swag-last_token", "swag-attentive"])
def test_swag_rows_equal_single_passes(variant):
    assert check_swag_rows_against_single_passes(SOURCE, variant) <= TOLERANCE


def test_vision_tower_runs_once_per_image_per_predict_call():
    predictor = random_variant_predictor(build_tiny_backbone(seed=1, source=SOURCE))
    assert vision_calls_of_one_predict(predictor, predictor.backbone.core.model.vision_tower) == [2]


def test_attributions_score_what_the_predictor_scored():
    assert attribution_score_gap(SOURCE) <= TOLERANCE


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "cmp"
    return out, run_compare_smoke(SOURCE, out)


@pytest.mark.slow
def test_compare_smoke_writes_all_five_variants(compared):
    out, comparison = compared
    assert comparison["setting"]["base"] == SOURCE
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


def test_lora_targets_language_and_all_linear():
    check_lora_targets(SOURCE)
    check_all_linear_trains_the_tower(SOURCE)


def test_explanations_find_the_image_and_the_answer():
    check_explanations_find_the_image_and_the_answer(SOURCE)
