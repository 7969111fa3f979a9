"""Score shares, temperature scaling and the calibration of each probability definition.

A variant's ``probabilities`` are the softmax of the score its decision rule ranks options by: a
*score share*, not a calibrated probability. COND_GEN has several such definitions, one per rule
(the summed log-likelihood, its per-token and per-character means, the cosine of the generated text
over :data:`~vqa_demo.config.COSINE_TEMPERATURE`); the other heads have one (their logits).

Temperature scaling (Guo et al. 2017) divides a definition's logits by one number ``T`` fitted to
minimise the negative log-likelihood of the gold options on the **selection** split; the expected
calibration error (ECE) is then measured before and after on the held-out split, so the fit never
sees the questions it is judged on. Torch-free: it works on per-example records
(:mod:`vqa_demo.evaluation.runner`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from vqa_demo.config import COND_GEN_SCORINGS, COSINE_TEMPERATURE
from vqa_demo.evaluation import metrics as M

SERVED = "served"  # the probabilities the variant reports (softmax of its decision rule's score)
LOG_T_RANGE = (-5.0, 5.0)  # T from 0.007 to 148: wide enough for summed log-likelihoods and cosines


def padded(rows: list[list[float]]) -> np.ndarray:
    """``float[N, K]`` from ragged per-example scores, missing options as ``-inf``."""
    width = max(len(row) for row in rows)
    out = np.full((len(rows), width), -np.inf)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def definition_logits(records: list[dict[str, Any]], name: str) -> dict[str, np.ndarray]:
    """``{definition: logits float[N, K]}`` of variant ``name`` over the labeled ``records``.

    ``served`` is the log of the stored probabilities; COND_GEN records add one entry per decision
    rule they hold (records written before ``loglik_char`` existed lack that one)."""
    rows = [r["variants"][name] for r in records if r["gold"] is not None and name in r["variants"]]
    if not rows:
        return {}
    with np.errstate(divide="ignore"):
        logits = {SERVED: np.log(padded([row["probabilities"] for row in rows]))}
    for rule in COND_GEN_SCORINGS:
        if all(rule in row for row in rows):
            scores = padded([row[rule] for row in rows])
            logits[rule] = scores / COSINE_TEMPERATURE if rule == "cosine" else scores
    return logits


def gold_of(records: list[dict[str, Any]], name: str) -> np.ndarray:
    """``int[N]`` gold indices of the labeled records that hold variant ``name``."""
    return np.array([r["gold"] for r in records if r["gold"] is not None and name in r["variants"]])


def negative_log_likelihood(logits: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    """Mean ``-log softmax(logits / T)[gold]`` over N examples (``logits float[N, K]``)."""
    logp = log_softmax(logits / temperature, axis=1)
    return float(-logp[np.arange(len(gold)), gold].mean())


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The ``T > 0`` minimising :func:`negative_log_likelihood` (searched over ``log T``); 1.0 for
    no examples. A gold option scored ``-inf`` (cannot happen for a scored option) would make every
    ``T`` infinite, so such rows are left out."""
    usable = np.isfinite(logits[np.arange(len(gold)), gold]) if len(gold) else np.zeros(0, bool)
    if not usable.any():
        return 1.0
    logits, gold = logits[usable], gold[usable]
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, gold, float(np.exp(log_t))),
        bounds=LOG_T_RANGE,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def shares(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / T)`` row-wise, ``float[N, K]`` (``-inf`` options get 0)."""
    return M.softmax(logits / temperature, axis=1)


def calibration_of(probabilities: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """ECE, reliability table and mean top probability of ``probabilities float[N, K]``."""
    top = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == gold
    return {
        "ece": M.expected_calibration_error(top, correct),
        "mean_probability": float(top.mean()),
        "accuracy": float(correct.mean()),
        "reliability": M.reliability_table(top, correct),
    }


def calibration_report(selection: list[dict[str, Any]], held_out: list[dict[str, Any]], name: str) -> dict:
    """Per probability definition of variant ``name``: the temperature fitted on ``selection`` and the
    held-out calibration before and after it.

    Returns ``{definition: {"temperature", "ece_before", "ece_after", "mean_probability_before",
    "mean_probability_after", "accuracy", "reliability_before", "reliability_after"}}``; empty when
    either split has no labeled record of the variant."""
    fit_logits, fit_gold = definition_logits(selection, name), gold_of(selection, name)
    test_logits, test_gold = definition_logits(held_out, name), gold_of(held_out, name)
    report = {}
    for definition, logits in test_logits.items():
        if definition not in fit_logits:
            continue
        temperature = fit_temperature(fit_logits[definition], fit_gold)
        before = calibration_of(shares(logits), test_gold)
        after = calibration_of(shares(logits, temperature), test_gold)
        report[definition] = {
            "temperature": temperature,
            "ece_before": before["ece"],
            "ece_after": after["ece"],
            "mean_probability_before": before["mean_probability"],
            "mean_probability_after": after["mean_probability"],
            "accuracy": before["accuracy"],
            "reliability_before": before["reliability"],
            "reliability_after": after["reliability"],
        }
    return report
