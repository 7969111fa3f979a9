"""Model-free metrics for multiple-choice answers: accuracy with intervals, position bias,
calibration, agreement between variants, paired significance and circular evaluation.

Every function takes numpy arrays or plain lists and returns floats, lists and dicts of them
(no numpy scalars), so results can go straight into a JSON report. Option indices are
0-based; positions are labelled A, B, C, ... in reports. Empty inputs raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS, OPTION_LETTERS


def _as_bool_vector(values: Any, name: str) -> np.ndarray:
    """``bool[N]`` from a sequence of bools or 0/1 integers; refuses empty and other values."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: pass at least one item")
    if array.dtype != bool:
        # 2 or 0.5 silently becoming True would hide a caller passing indices or scores.
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans or 0/1, got values {np.unique(array)[:5]}")
        array = array.astype(bool)
    return array


def _as_indices(values: Any, name: str, num_options: int | None = None, ndim: int = 1) -> np.ndarray:
    """``int[N]`` (or ``int[N, R]`` for ``ndim=2``) option indices, each in ``[0, num_options)``."""
    array = np.asarray(values)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: pass at least one item")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold integer option indices")
        array = array.astype(np.int64)
    if num_options is not None and (array.min() < 0 or array.max() >= num_options):
        raise ValueError(
            f"{name} must lie in [0, {num_options}) (0-based option indices), "
            f"got range [{array.min()}, {array.max()}]"
        )
    return array


def _check_num_options(num_options: int) -> None:
    if not MIN_OPTIONS <= num_options <= MAX_OPTIONS:
        raise ValueError(f"num_options must be between {MIN_OPTIONS} and {MAX_OPTIONS}, got {num_options}")


def _check_same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must have the same number of items, got {lengths}")


def accuracy_ci(correct: Any, confidence: float = 0.95) -> dict[str, float | int]:
    """Accuracy with its Wilson score interval.

    Args:
        correct: ``bool[N]``, whether each item was answered correctly.
        confidence: coverage of the two-sided interval, in (0, 1).

    Returns:
        ``{"accuracy", "low", "high", "n", "correct"}``; accuracy and bounds are fractions
        in [0, 1], ``n`` the number of items and ``correct`` the number right.
    """
    correct = _as_bool_vector(correct, "correct")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(correct)
    k = int(correct.sum())
    p_hat = k / n
    z = stats.norm.ppf(0.5 + confidence / 2)
    # Wilson rather than the normal approximation: it stays inside [0, 1] and keeps its
    # coverage at 0 or 100% accuracy and for the small held-out sets this project uses.
    denominator = 1 + z**2 / n
    centre = (p_hat + z**2 / (2 * n)) / denominator
    half_width = z / denominator * np.sqrt(p_hat * (1 - p_hat) / n + z**2 / (4 * n**2))
    return {
        "accuracy": p_hat,
        "low": float(max(0.0, centre - half_width)),
        "high": float(min(1.0, centre + half_width)),
        "n": n,
        "correct": k,
    }


def bootstrap_ci(
    values: Any,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float | int]:
    """Percentile bootstrap interval for the mean of per-item values.

    Args:
        values: ``float[N]`` per-item scores (token F1, consistency, ...).
        n_resamples: number of resamples with replacement.
        seed: seed of the resampling generator, so reports are reproducible.
        confidence: coverage of the two-sided interval, in (0, 1).

    Returns:
        ``{"mean", "low", "high", "n"}`` in the units of ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {values.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    # One resample at a time: an [n_resamples, N] index matrix would be large for big N.
    resampled_means = np.array(
        [values[rng.integers(0, len(values), size=len(values))].mean() for _ in range(n_resamples)]
    )
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled_means, [tail, 1 - tail])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high), "n": len(values)}


def grouped_accuracy(
    correct: Any, groups: Sequence[str], confidence: float = 0.95
) -> dict[str, dict[str, float | int]]:
    """Accuracy with a Wilson interval for each group (question family, metadata column value).

    Args:
        correct: ``bool[N]``.
        groups: ``N`` group labels, one per item.

    Returns:
        ``{group: accuracy_ci(...)}`` with groups in sorted order.
    """
    correct = _as_bool_vector(correct, "correct")
    labels = np.asarray([str(group) for group in groups])
    _check_same_length(correct=correct, groups=labels)
    return {
        group: accuracy_ci(correct[labels == group], confidence) for group in sorted(set(labels.tolist()))
    }


def position_bias(gold: Any, predicted: Any, num_options: int) -> dict[str, Any]:
    """How answers depend on where the gold option sits, and where predictions land.

    Args:
        gold: ``int[N]`` gold option indices.
        predicted: ``int[N]`` predicted option indices.
        num_options: K, the number of options per question.

    Returns:
        ``accuracy_by_gold_position``: K dicts ``accuracy_ci(...) | {"position": "A"}``; a
        position with no gold items has ``accuracy``, ``low`` and ``high`` set to None.
        ``predicted_position_rate`` / ``gold_position_rate``: ``float[K]`` fractions of items.
        ``uniformity_chi2`` / ``uniformity_p_value``: chi-square goodness of fit of the
        predicted positions against a uniform distribution (K - 1 degrees of freedom). A small
        p-value means the model prefers some positions; when the gold positions themselves are
        unbalanced, read it next to ``gold_position_rate``.
    """
    _check_num_options(num_options)
    gold = _as_indices(gold, "gold", num_options)
    predicted = _as_indices(predicted, "predicted", num_options)
    _check_same_length(gold=gold, predicted=predicted)
    correct = gold == predicted
    by_position = []
    for position in range(num_options):
        at_position = gold == position
        if at_position.any():
            entry = accuracy_ci(correct[at_position])
        else:
            entry = {"accuracy": None, "low": None, "high": None, "n": 0, "correct": 0}
        by_position.append({"position": OPTION_LETTERS[position], **entry})
    predicted_counts = np.bincount(predicted, minlength=num_options)
    gold_counts = np.bincount(gold, minlength=num_options)
    chi2, p_value = stats.chisquare(predicted_counts)
    return {
        "positions": list(OPTION_LETTERS[:num_options]),
        "accuracy_by_gold_position": by_position,
        "predicted_position_rate": (predicted_counts / len(predicted)).tolist(),
        "gold_position_rate": (gold_counts / len(gold)).tolist(),
        "uniformity_chi2": float(chi2),
        "uniformity_p_value": float(p_value),
    }


def reliability_table(confidence: Any, correct: Any, n_bins: int = 10) -> list[dict[str, float | int | None]]:
    """Accuracy against confidence in equal-width bins over [0, 1].

    Bin ``b`` holds confidences ``c`` with ``b / n_bins <= c < (b + 1) / n_bins``, found as
    ``floor(c * n_bins)``; the last bin is closed, so a confidence of exactly 1.0 goes there.

    Args:
        confidence: ``float[N]`` probability of the chosen option, in [0, 1].
        correct: ``bool[N]``.
        n_bins: number of bins.

    Returns:
        ``n_bins`` dicts ``{"bin_low", "bin_high", "count", "accuracy", "mean_confidence"}``;
        empty bins have ``accuracy`` and ``mean_confidence`` set to None.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = _as_bool_vector(correct, "correct")
    if confidence.ndim != 1:
        raise ValueError(f"confidence must be one-dimensional, got shape {confidence.shape}")
    _check_same_length(confidence=confidence, correct=correct)
    if not np.all((confidence >= 0) & (confidence <= 1)):
        raise ValueError("confidence must lie in [0, 1] (a probability, not a logit or a percentage)")
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    bin_index = np.minimum(np.floor(confidence * n_bins).astype(np.int64), n_bins - 1)
    table = []
    for b in range(n_bins):
        in_bin = bin_index == b
        count = int(in_bin.sum())
        table.append(
            {
                "bin_low": b / n_bins,
                "bin_high": (b + 1) / n_bins,
                "count": count,
                "accuracy": float(correct[in_bin].mean()) if count else None,
                "mean_confidence": float(confidence[in_bin].mean()) if count else None,
            }
        )
    return table


def expected_calibration_error(confidence: Any, correct: Any, n_bins: int = 10) -> float:
    """Expected calibration error: ``sum_b |B_b| / N * |acc_b - conf_b|``.

    Bins as in :func:`reliability_table` (equal width, 1.0 in the last bin).

    Args:
        confidence: ``float[N]`` probability of the chosen option, in [0, 1].
        correct: ``bool[N]``.

    Returns:
        ECE as a fraction in [0, 1] (0 = perfectly calibrated).
    """
    table = reliability_table(confidence, correct, n_bins)
    n = sum(row["count"] for row in table)
    return float(
        sum(row["count"] / n * abs(row["accuracy"] - row["mean_confidence"]) for row in table if row["count"])
    )


def agreement_matrix(predictions: dict[str, Any]) -> dict[str, Any]:
    """Pairwise agreement between variants on the same items.

    Args:
        predictions: ``{variant name: int[N] predicted option indices}``, same items in the
            same order for every variant.

    Returns:
        ``{"variants": [names in the given order], "matrix": float[V][V]}`` where
        ``matrix[i][j]`` is the fraction of items on which variants i and j chose the same
        option (1.0 on the diagonal).
    """
    if not predictions:
        raise ValueError("predictions is empty: pass at least one variant")
    variants = list(predictions)
    stacked = [_as_indices(predictions[name], f"predictions[{name!r}]") for name in variants]
    _check_same_length(**{name: array for name, array in zip(variants, stacked)})
    matrix = [[float(np.mean(a == b)) for b in stacked] for a in stacked]
    return {"variants": variants, "matrix": matrix}


def mcnemar_exact(correct_a: Any, correct_b: Any) -> dict[str, float | int]:
    """Exact two-sided McNemar test that two variants have the same accuracy on paired items.

    Args:
        correct_a: ``bool[N]`` correctness of variant A.
        correct_b: ``bool[N]`` correctness of variant B on the same items.

    Returns:
        ``{"b", "c", "p_value"}`` with ``b`` = A right and B wrong, ``c`` = A wrong and B
        right, and ``p = min(1, 2 * P(X <= min(b, c)))`` for ``X ~ Binomial(b + c, 1/2)``;
        ``p = 1`` when the variants never disagree.
    """
    correct_a = _as_bool_vector(correct_a, "correct_a")
    correct_b = _as_bool_vector(correct_b, "correct_b")
    _check_same_length(correct_a=correct_a, correct_b=correct_b)
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    if b + c == 0:
        p_value = 1.0
    else:
        p_value = float(min(1.0, 2 * stats.binom.cdf(min(b, c), b + c, 0.5)))
    return {"b": b, "c": c, "p_value": p_value}


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given): controls the chance of any false difference."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def rotate_options(options: Sequence[str], shift: int) -> tuple[list[str], list[int]]:
    """Rotate the options: rotation ``shift`` moves option ``i`` to position ``(i + shift) % K``.

    Returns:
        ``(rotated, original_index_of)``: the K options in their new order, and for each new
        position the index the option had originally (``rotated[p] == options[original_index_of[p]]``).
    """
    num_options = len(options)
    if num_options == 0:
        raise ValueError("options is empty: pass at least one option")
    original_index_of = [(position - shift) % num_options for position in range(num_options)]
    return [options[i] for i in original_index_of], original_index_of


def original_index(rotated_index: Any, shift: int, num_options: int) -> Any:
    """Map an index chosen among rotated options back to the original option order.

    Inverse of the convention in :func:`rotate_options`: ``(rotated_index - shift) % K``.
    Works on an int or an ``int[...]`` array.
    """
    if np.isscalar(rotated_index):
        return (int(rotated_index) - shift) % num_options
    return (np.asarray(rotated_index) - shift) % num_options


def circular_consistency(rotated_predictions: Any, gold: Any, num_options: int) -> dict[str, Any]:
    """Circular evaluation: ask each question under R rotations of its options.

    Args:
        rotated_predictions: ``int[N, R]``; row i, column r is the option predicted under the
            r-th rotation, already mapped back to the ORIGINAL option order (see
            :func:`original_index`).
        gold: ``int[N]`` gold option indices in the original order.
        num_options: K.

    Returns:
        ``circular_accuracy``: fraction of items answered correctly under every rotation.
        ``circular``: the same as an :func:`accuracy_ci` dict.
        ``per_rotation_accuracy``: ``float[R]`` plain accuracy of each rotation.
        ``majority_answer``: ``int[N]`` most frequent answer (lowest index on ties).
        ``per_item_consistency``: ``float[N]`` fraction of rotations that agree with the
        majority answer (1.0 = the same option whatever its position, 1/R at worst).
        ``mean_consistency``: its mean.
    """
    _check_num_options(num_options)
    predictions = _as_indices(rotated_predictions, "rotated_predictions", num_options, ndim=2)
    gold = _as_indices(gold, "gold", num_options)
    _check_same_length(rotated_predictions=predictions, gold=gold)
    always_right = np.all(predictions == gold[:, None], axis=1)
    votes = np.stack([np.sum(predictions == k, axis=1) for k in range(num_options)], axis=1)
    consistency = votes.max(axis=1) / predictions.shape[1]
    return {
        "circular_accuracy": float(always_right.mean()),
        "circular": accuracy_ci(always_right),
        "per_rotation_accuracy": np.mean(predictions == gold[:, None], axis=0).tolist(),
        "majority_answer": votes.argmax(axis=1).tolist(),
        "per_item_consistency": consistency.tolist(),
        "mean_consistency": float(consistency.mean()),
    }


def softmax(scores: Any, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax of option scores.

    Padded options carry ``-inf`` and get probability 0. Each slice along ``axis`` needs at
    least one finite score; NaN and ``+inf`` are refused.

    Args:
        scores: ``float[..., K]`` (or K along ``axis``) logits or log-likelihoods.

    Returns:
        ``float[..., K]`` probabilities summing to 1 along ``axis``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("scores is empty: pass at least one option score")
    if np.isnan(scores).any() or np.isposinf(scores).any():
        raise ValueError("scores contain NaN or +inf; only -inf (padded options) is allowed")
    largest = scores.max(axis=axis, keepdims=True)
    if np.isneginf(largest).any():
        raise ValueError("every question needs at least one finite option score (all were -inf)")
    exponentials = np.exp(scores - largest)
    return exponentials / exponentials.sum(axis=axis, keepdims=True)
