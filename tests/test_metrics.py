"""Metric functions against values computed by hand (the arithmetic is in the comments)."""

import json
import math

import numpy as np
import pytest

from vqa_demo.evaluation.metrics import (
    accuracy_ci,
    agreement_matrix,
    bootstrap_ci,
    circular_consistency,
    expected_calibration_error,
    grouped_accuracy,
    mcnemar_exact,
    original_index,
    position_bias,
    reliability_table,
    rotate_options,
    softmax,
)

# ---------------------------------------------------------------- accuracy_ci


def test_wilson_interval_eight_of_ten():
    # p = 0.8, n = 10, z = 1.959964, z^2 = 3.841459
    # denominator = 1 + z^2/n = 1.3841459
    # centre = (0.8 + z^2/20) / 1.3841459 = 0.9920729 / 1.3841459 = 0.716740
    # half = z * sqrt(0.8*0.2/10 + z^2/400) / 1.3841459
    #      = 1.959964 * sqrt(0.016 + 0.0096036) / 1.3841459 = 1.959964 * 0.1600113 / 1.3841459 = 0.226578
    # -> [0.490162, 0.943318]
    result = accuracy_ci([True] * 8 + [False] * 2)
    assert result["accuracy"] == 0.8
    assert result["n"] == 10
    assert result["correct"] == 8
    assert result["low"] == pytest.approx(0.4902, abs=5e-5)
    assert result["high"] == pytest.approx(0.9433, abs=5e-5)


def test_wilson_interval_single_item_and_all_wrong():
    # n = 1, k = 1: centre = (1 + z^2/2) / (1 + z^2) = 2.9207295 / 4.841459 = 0.603275
    # half = z * sqrt(0 + z^2/4) / (1 + z^2) = z^2 / 2 / 4.841459 = 1.9207295 / 4.841459 = 0.396725
    # -> [0.206549, 1.0]
    one = accuracy_ci([1])
    assert one["accuracy"] == 1.0
    assert one["low"] == pytest.approx(0.206549, abs=1e-5)
    assert one["high"] == pytest.approx(1.0)
    # k = 0 mirrors it: [0.0, 0.793451]
    zero = accuracy_ci([False])
    assert zero["low"] == pytest.approx(0.0)
    assert zero["high"] == pytest.approx(0.793451, abs=1e-5)


def test_wilson_interval_narrows_with_lower_confidence():
    correct = [True] * 8 + [False] * 2
    wide, narrow = accuracy_ci(correct, 0.95), accuracy_ci(correct, 0.5)
    assert narrow["low"] > wide["low"] and narrow["high"] < wide["high"]


@pytest.mark.parametrize("bad", [[], [[True, False]], [0, 2], [0.5]])
def test_accuracy_ci_refuses_bad_input(bad):
    with pytest.raises(ValueError):
        accuracy_ci(bad)


def test_accuracy_ci_refuses_bad_confidence():
    with pytest.raises(ValueError, match="confidence"):
        accuracy_ci([True], confidence=95)


# ---------------------------------------------------------------- bootstrap_ci


def test_bootstrap_constant_values_has_zero_width():
    # every resample of [0.5, 0.5, 0.5] has mean 0.5
    result = bootstrap_ci([0.5, 0.5, 0.5], n_resamples=100)
    assert result == {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 3}


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.linspace(0, 1, 50)
    first, second = bootstrap_ci(values, seed=3), bootstrap_ci(values, seed=3)
    assert first == second
    # mean 0.5, sd of the mean ~ 0.2975/sqrt(50) = 0.042, so a 95% interval spans roughly +-0.08
    assert first["low"] < 0.5 < first["high"]
    assert first["low"] > 0.35 and first["high"] < 0.65


def test_bootstrap_refuses_empty():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])


# ---------------------------------------------------------------- grouped_accuracy


def test_grouped_accuracy_per_family():
    # bar: 2 of 3 right; pie: 1 of 1 right; groups come back sorted
    result = grouped_accuracy([True, False, True, True], ["bar", "bar", "pie", "bar"])
    assert list(result) == ["bar", "pie"]
    assert result["bar"]["accuracy"] == pytest.approx(2 / 3)
    assert result["bar"]["n"] == 3
    assert result["pie"]["accuracy"] == 1.0
    assert result["pie"]["n"] == 1


def test_grouped_accuracy_refuses_length_mismatch():
    with pytest.raises(ValueError, match="same number of items"):
        grouped_accuracy([True, False], ["bar"])


# ---------------------------------------------------------------- position_bias


def test_position_bias_of_always_answering_a():
    # 40 items, gold balanced: 10 at each of A, B, C, D; the model always answers A (0).
    gold = np.repeat(np.arange(4), 10)
    predicted = np.zeros(40, dtype=int)
    result = position_bias(gold, predicted, num_options=4)
    assert result["positions"] == ["A", "B", "C", "D"]
    accuracies = [entry["accuracy"] for entry in result["accuracy_by_gold_position"]]
    assert accuracies == [1.0, 0.0, 0.0, 0.0]
    assert [entry["position"] for entry in result["accuracy_by_gold_position"]] == ["A", "B", "C", "D"]
    assert result["predicted_position_rate"] == [1.0, 0.0, 0.0, 0.0]
    assert result["gold_position_rate"] == [0.25, 0.25, 0.25, 0.25]
    # counts [40, 0, 0, 0] against 10 expected each:
    # chi2 = (40-10)^2/10 + 3 * (0-10)^2/10 = 90 + 30 = 120, 3 degrees of freedom
    # sf(120; 3) = 2(1 - Phi(sqrt 120)) + sqrt(2*120/pi) e^{-60} ~ 8.74 * 8.8e-27 ~ 7.7e-26
    assert result["uniformity_chi2"] == pytest.approx(120.0)
    assert result["uniformity_p_value"] < 1e-20


def test_position_bias_of_uniform_predictions_is_not_significant():
    # predicted counts [2, 2, 2, 2]: chi2 = 0, p = 1
    result = position_bias([0, 1, 2, 3, 0, 1, 2, 3], [1, 2, 3, 0, 0, 1, 2, 3], num_options=4)
    assert result["uniformity_chi2"] == pytest.approx(0.0)
    assert result["uniformity_p_value"] == pytest.approx(1.0)
    # gold A: items 0 (pred 1, wrong) and 4 (pred 0, right) -> 0.5
    assert result["accuracy_by_gold_position"][0]["accuracy"] == 0.5


def test_position_bias_empty_gold_position_and_single_item():
    # N = 1, gold C, predicted C; K = 3. chi2 on counts [0, 0, 1], expected 1/3 each:
    # 2 * (1/3)^2/(1/3) + (2/3)^2/(1/3) = 2/3 + 4/3 = 2.0
    result = position_bias([2], [2], num_options=3)
    by_position = result["accuracy_by_gold_position"]
    assert by_position[0] == {
        "position": "A",
        "accuracy": None,
        "low": None,
        "high": None,
        "n": 0,
        "correct": 0,
    }
    assert by_position[2]["accuracy"] == 1.0
    assert result["uniformity_chi2"] == pytest.approx(2.0)
    json.dumps(result)


def test_position_bias_refuses_out_of_range_prediction():
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        position_bias([0, 1], [0, 4], num_options=4)
    with pytest.raises(ValueError, match="empty"):
        position_bias([], [], num_options=4)


# ---------------------------------------------------------------- calibration


def test_ece_two_bins_by_hand():
    # bin [0, 0.5): confidences 0.2, 0.4 -> mean 0.3; correct 0, 1 -> accuracy 0.5; gap 0.2
    # bin [0.5, 1]: confidences 0.6, 0.9 -> mean 0.75; correct 1, 1 -> accuracy 1.0; gap 0.25
    # ECE = 2/4 * 0.2 + 2/4 * 0.25 = 0.1 + 0.125 = 0.225
    confidence = [0.2, 0.4, 0.6, 0.9]
    correct = [False, True, True, True]
    assert expected_calibration_error(confidence, correct, n_bins=2) == pytest.approx(0.225)
    table = reliability_table(confidence, correct, n_bins=2)
    assert table == [
        {"bin_low": 0.0, "bin_high": 0.5, "count": 2, "accuracy": 0.5, "mean_confidence": pytest.approx(0.3)},
        {
            "bin_low": 0.5,
            "bin_high": 1.0,
            "count": 2,
            "accuracy": 1.0,
            "mean_confidence": pytest.approx(0.75),
        },
    ]


def test_ece_bin_edges():
    # 1.0 goes in the last bin [0.9, 1.0]; 0.5 starts the upper of two bins.
    table = reliability_table([1.0, 0.5, 0.0], [True, True, False], n_bins=10)
    assert [row["count"] for row in table] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert table[1]["accuracy"] is None and table[1]["mean_confidence"] is None
    # each occupied bin is calibrated exactly: (1.0, right), (0.0, wrong); (0.5, right) is 0.5 off
    # ECE = 1/3 * 0 + 1/3 * 0.5 + 1/3 * 0 = 1/6
    assert expected_calibration_error([1.0, 0.5, 0.0], [True, True, False]) == pytest.approx(1 / 6)


def test_ece_single_item():
    # one item, confidence 1.0, wrong: |0 - 1| = 1
    assert expected_calibration_error([1.0], [False]) == pytest.approx(1.0)
    assert expected_calibration_error([0.95], [True]) == pytest.approx(0.05)


def test_ece_refuses_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1.5], [True])
    with pytest.raises(ValueError, match="empty"):
        expected_calibration_error([], [])
    with pytest.raises(ValueError, match="same number of items"):
        expected_calibration_error([0.5, 0.5], [True])


# ---------------------------------------------------------------- agreement and McNemar


def test_agreement_matrix_by_hand():
    # a vs b: items 0,1,2 agree, 3 differs -> 3/4; a vs c: only item 0 -> 1/4;
    # b vs c: items 0 and 3 (both 0) -> 2/4
    result = agreement_matrix({"a": [0, 1, 2, 3], "b": [0, 1, 2, 0], "c": [0, 0, 0, 0]})
    assert result["variants"] == ["a", "b", "c"]
    assert result["matrix"] == [[1.0, 0.75, 0.25], [0.75, 1.0, 0.5], [0.25, 0.5, 1.0]]


def test_agreement_matrix_refuses_empty_and_mismatch():
    with pytest.raises(ValueError, match="at least one variant"):
        agreement_matrix({})
    with pytest.raises(ValueError, match="same number of items"):
        agreement_matrix({"a": [0, 1], "b": [0]})


def test_mcnemar_b1_c8():
    # b = 1 (A right, B wrong), c = 8 (A wrong, B right), plus 3 concordant items
    # p = 2 * P(X <= 1 | n=9, 1/2) = 2 * (C(9,0) + C(9,1)) / 2^9 = 2 * 10 / 512 = 0.0390625
    correct_a = [True] + [False] * 8 + [True, True, False]
    correct_b = [False] + [True] * 8 + [True, True, False]
    result = mcnemar_exact(correct_a, correct_b)
    assert result == {"b": 1, "c": 8, "p_value": pytest.approx(0.0390625)}


def test_mcnemar_balanced_and_no_discordance():
    # b = c = 2: 2 * P(X <= 2 | n=4) = 2 * 11/16 > 1 -> clipped to 1
    result = mcnemar_exact([1, 1, 0, 0], [0, 0, 1, 1])
    assert result["p_value"] == 1.0
    # N = 1, both right: b + c = 0 -> p = 1
    assert mcnemar_exact([True], [True]) == {"b": 0, "c": 0, "p_value": 1.0}


def test_mcnemar_refuses_empty():
    with pytest.raises(ValueError, match="empty"):
        mcnemar_exact([], [])


# ---------------------------------------------------------------- rotations


def test_rotate_options_convention():
    # shift 1 moves option i to position (i + 1) % 4: ['a','b','c','d'] -> ['d','a','b','c']
    rotated, original_index_of = rotate_options(["a", "b", "c", "d"], 1)
    assert rotated == ["d", "a", "b", "c"]
    assert original_index_of == [3, 0, 1, 2]
    for shift in range(-5, 6):
        rotated, original_index_of = rotate_options(["a", "b", "c"], shift)
        for position in range(3):
            assert rotated[position] == ["a", "b", "c"][original_index_of[position]]
            assert original_index(position, shift, 3) == original_index_of[position]


def test_original_index_on_arrays():
    # shift 1, K 4: displayed positions [0, 1, 2, 3] held originals [3, 0, 1, 2]
    assert original_index(np.array([0, 1, 2, 3]), 1, 4).tolist() == [3, 0, 1, 2]


def test_rotate_options_refuses_empty():
    with pytest.raises(ValueError, match="empty"):
        rotate_options([], 1)


def test_circular_accuracy_of_always_position_zero():
    # K = 4, gold = [0, 1, 2, 3]. A model that always picks displayed position 0 chooses, under
    # rotation r, the original option i with (i + r) % 4 == 0, i.e. i = (4 - r) % 4: 0, 3, 2, 1.
    # Unrotated it is right on item 0 only (25%); circularly it is never right.
    gold = [0, 1, 2, 3]
    rows = []
    for _ in gold:
        row = []
        for shift in range(4):
            _, original_index_of = rotate_options(["w", "x", "y", "z"], shift)
            row.append(original_index_of[0])
        rows.append(row)
    assert rows[0] == [0, 3, 2, 1]
    result = circular_consistency(rows, gold, num_options=4)
    assert result["per_rotation_accuracy"][0] == 0.25
    assert result["per_rotation_accuracy"] == [0.25, 0.25, 0.25, 0.25]
    assert result["circular_accuracy"] == 0.0
    assert result["circular"]["correct"] == 0
    # four different answers per item: the majority answer gets 1 of 4 votes
    assert result["per_item_consistency"] == [0.25] * 4
    assert result["mean_consistency"] == 0.25
    json.dumps(result)


def test_circular_consistency_mixed_items():
    # item 0: always 2 (gold 2) -> right every time, consistency 3/3
    # item 1: answers 1, 1, 0 (gold 1) -> not circularly right, majority 1 with 2/3
    # circular accuracy 1/2; per-rotation accuracy: r0 2/2, r1 2/2, r2 1/2
    result = circular_consistency([[2, 2, 2], [1, 1, 0]], [2, 1], num_options=3)
    assert result["circular_accuracy"] == 0.5
    assert result["majority_answer"] == [2, 1]
    assert result["per_item_consistency"] == pytest.approx([1.0, 2 / 3])
    assert result["per_rotation_accuracy"] == [1.0, 1.0, 0.5]


def test_circular_consistency_single_item_and_errors():
    # N = 1, R = 1: plain accuracy
    assert circular_consistency([[1]], [1], num_options=2)["circular_accuracy"] == 1.0
    with pytest.raises(ValueError, match="2-dimensional"):
        circular_consistency([0, 1], [0, 1], num_options=2)
    with pytest.raises(ValueError, match="empty"):
        circular_consistency(np.zeros((0, 4), dtype=int), [], num_options=4)
    with pytest.raises(ValueError, match="same number of items"):
        circular_consistency([[0, 0]], [0, 1], num_options=2)


# ---------------------------------------------------------------- softmax


def test_softmax_by_hand():
    # softmax([0, ln 3]) = [1, 3] / 4
    assert softmax([0.0, math.log(3)]) == pytest.approx([0.25, 0.75])


def test_softmax_is_stable_and_masks_padding():
    # shifting by 1000 changes nothing and does not overflow; -inf (padded option) gets 0
    probabilities = softmax([[1000.0, 1000.0, -np.inf], [0.0, math.log(3), -np.inf]])
    assert probabilities == pytest.approx(np.array([[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]]))
    # along axis 0
    assert softmax([[0.0], [math.log(3)]], axis=0) == pytest.approx(np.array([[0.25], [0.75]]))


def test_softmax_refuses_rows_without_a_finite_score():
    with pytest.raises(ValueError, match="finite"):
        softmax([[0.0, 1.0], [-np.inf, -np.inf]])
    with pytest.raises(ValueError, match="NaN"):
        softmax([np.nan, 1.0])
    with pytest.raises(ValueError, match="empty"):
        softmax([])
