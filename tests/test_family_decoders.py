"""The chat-templated decoder families (LLaVA-1.5, Gemma 3, Qwen2.5-VL, SmolVLM) against their own
processors and forwards (tests/family_checks.py) and through the project's own paths
(tests/family_pipeline_checks.py); family-specific checks are in test_family_<name>.py."""

from __future__ import annotations

import pytest

from tests.family_checks import (
    CHAT_FAMILIES,
    TOLERANCE,
    check_cond_gen_matches_plain_forward,
    check_pooling_under_padding,
    check_rows_match_processor,
    check_swag_rows_match_single_passes,
)
from tests.family_pipeline_checks import (
    check_attribution_scores_equal_predictions,
    check_explanations_find_the_image_and_the_answer,
    check_lora_targets,
    check_saved_base_loads_back,
    check_vision_runs_once_per_call,
)


@pytest.fixture(params=CHAT_FAMILIES, ids=lambda spec: spec.name)
def family(request):
    return request.param


def test_rows_equal_the_processors_ids(family):
    assert check_rows_match_processor(family) == family.image_tokens


def test_cond_gen_loglik_and_generation_equal_the_plain_forward(family):
    worst = check_cond_gen_matches_plain_forward(family)
    print(f"{family.name} cond_gen max |diff| {worst:.2e}")
    assert worst <= TOLERANCE


@pytest.mark.parametrize("pooling", ["last_token", "attentive"])
def test_pooled_states_under_padding_equal_rows_alone(family, pooling):
    worst = check_pooling_under_padding(family, pooling)
    print(f"{family.name} multi_class-{pooling} max |diff| {worst:.2e}")
    assert worst <= TOLERANCE


@pytest.mark.parametrize("pooling", ["last_token", "attentive"])
def test_swag_rows_equal_single_passes(family, pooling):
    worst = check_swag_rows_match_single_passes(family, pooling)
    print(f"{family.name} swag-{pooling} max |diff| {worst:.2e}")
    assert worst <= TOLERANCE


def test_vision_tower_runs_once_per_image_per_predict_call(family):
    assert check_vision_runs_once_per_call(family) == 2


def test_attributions_score_what_the_predictor_scored(family):
    worst = check_attribution_scores_equal_predictions(family)
    print(f"{family.name} attribution vs prediction max |diff| {worst:.2e}")
    assert worst <= TOLERANCE


def test_explanations_find_the_image_and_the_answer(family):
    check_explanations_find_the_image_and_the_answer(family)


def test_lora_targets_language_and_all_linear(family):
    check_lora_targets(family)


def test_a_saved_base_loads_back(family, tmp_path):
    assert check_saved_base_loads_back(family, tmp_path) == 0
