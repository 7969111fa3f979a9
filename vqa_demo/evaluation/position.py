"""Does a variant answer by content or by position? A plain reading, and a prior-debiased rule (PriDe).

Both read the records of a circular evaluation (``circular_choices`` and ``circular_probabilities``,
see :func:`vqa_demo.evaluation.runner.add_circular_choices`): every question asked once per cyclic
rotation of its options, rotation ``r`` showing option ``i`` at position ``(i + r) % K``.

PriDe (Zheng et al. 2023, "Large language models are not robust multiple choice selectors") treats
the observed probability of the option at position ``p`` as a prior over positions times a
content term. Averaged over the K rotations of one question, every option visits every position
once, so the mean log-probability at position ``p`` is ``log prior[p]`` plus a constant; its
softmax is that question's prior, and the prior is their mean over the **selection** split. The
debiased rule then chooses ``argmax_p log P(option at p) - log prior[p]`` on the held-out split.
Only splits whose questions all have the same K are debiased. Torch-free.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax

from vqa_demo.config import OPTION_LETTERS
from vqa_demo.evaluation import metrics as M

PRIDE_RULE = "pride"
POSITION_ALPHA = 0.05  # the predicted positions are called uneven below this chi-square p-value
CONTENT_CONSISTENCY = 0.5  # keeps its option in at least half the rotations: closer to content


def circular_rows(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]] | None:
    """The labeled records of ``name`` if all carry circular probabilities for one K, else None."""
    rows = [r for r in records if r["gold"] is not None and name in r["variants"]]
    ks = {len(r["options"]) for r in rows}
    if not rows or len(ks) != 1 or not all("circular_probabilities" in r["variants"][name] for r in rows):
        return None
    return rows


def position_log_probs(stored: dict[str, Any], k: int) -> np.ndarray:
    """``float[R, K]``: row ``r`` holds rotation r's log-probabilities in *position* order."""
    by_option = np.asarray(stored["circular_probabilities"], dtype=np.float64)
    # The option shown at position p under rotation r is (p - r) % K.
    order = (np.arange(k)[None, :] - np.arange(len(by_option))[:, None]) % k
    with np.errstate(divide="ignore"):
        return np.log(np.take_along_axis(by_option, order, axis=1))


def position_prior(records: list[dict[str, Any]], name: str) -> np.ndarray | None:
    """PriDe's prior over positions ``float[K]`` (sums to 1) from a circular evaluation, or None."""
    rows = circular_rows(records, name)
    if rows is None:
        return None
    k = len(rows[0]["options"])
    priors = []
    for r in rows:
        logp = position_log_probs(r["variants"][name], k)
        if len(logp) != k or not np.isfinite(logp).all():
            continue  # a question missing a rotation, or an option scored 0, says nothing of the prior
        priors.append(softmax(logp.mean(axis=0)))
    return np.mean(priors, axis=0) if priors else None


def debiased_choices(stored: dict[str, Any], k: int, prior: np.ndarray) -> list[int]:
    """Per rotation, the original index PriDe chooses (rotation 0 is the question as asked)."""
    logp = position_log_probs(stored, k) - np.log(prior)[None, :]
    positions = logp.argmax(axis=1)
    return [int(M.original_index(p, r, k)) for r, p in enumerate(positions)]


def pride_metrics(
    records: list[dict[str, Any]], name: str, prior: np.ndarray | None
) -> dict[str, Any] | None:
    """Accuracy and circular accuracy of the prior-debiased rule on ``records`` (None when it cannot
    be applied: no prior, or no circular evaluation of one K)."""
    rows = circular_rows(records, name)
    if rows is None or prior is None or len(prior) != len(rows[0]["options"]):
        return None
    k = len(prior)
    choices = np.array([debiased_choices(r["variants"][name], k, prior) for r in rows])
    gold = np.array([r["gold"] for r in rows])
    circular = M.circular_consistency(choices, gold, k)
    return {
        "prior": [float(p) for p in prior],
        "accuracy": M.accuracy_ci(choices[:, 0] == gold),
        "circular_accuracy": circular["circular_accuracy"],
        "circular": circular["circular"],
        "position_bias": M.position_bias(gold, choices[:, 0], k),
    }


def position_reading(position_bias: dict | None, circular: dict | None) -> str:
    """One plain sentence: does the variant answer by position or by content?

    ``position_bias`` is :func:`~vqa_demo.evaluation.metrics.position_bias`'s dict and ``circular``
    :func:`~vqa_demo.evaluation.metrics.circular_consistency`'s (either may be None: older files).
    A variant *answers by position* when its predicted positions are uneven (chi-square p < 0.05)
    and it keeps the same option in fewer than half of a question's rotations, i.e. its answer
    moves with the position rather than staying with the content."""
    if not position_bias:
        return "no position figures recorded"
    rates = position_bias["predicted_position_rate"]
    top = int(np.argmax(rates))
    picks = f"picks {OPTION_LETTERS[top]} {rates[top]:.0%} of the time"
    uneven = position_bias.get("uniformity_p_value", 1.0) < POSITION_ALPHA
    if circular is None:
        evenness = "unevenly" if uneven else "evenly"
        return f"{picks} (positions chosen {evenness}; no circular evaluation recorded)"
    figures = f"circular accuracy {circular['circular_accuracy']:.2f}, {picks}"
    follows_position = circular.get("mean_consistency", 1.0) < CONTENT_CONSISTENCY
    if uneven and follows_position:
        return f"answers by position: {figures}"
    if follows_position:
        return f"answer changes when the options are reordered: {figures}"
    return f"answers by content: {figures}"
