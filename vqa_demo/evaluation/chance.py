"""Chance level: is a variant's accuracy distinguishable from guessing among K options?

One rule for every place that lists variants (model card, Ask ticks, Explain, Compare, Errors): a
variant is *chance level* when an exact two-sided binomial test cannot tell its accuracy from
chance (1 / K) at the 5% level, i.e. when the exact (Clopper-Pearson) 95% interval includes chance.
The Wilson interval shown next to accuracies is a little narrower: for ``multi_class-attentive`` on
the shipped default (90 of 300 right) it just excludes 0.25 while the exact test gives p = 0.053.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scipy.stats import binomtest

CHANCE_ALPHA = 0.05


def chance_level(k: int) -> float:
    """The accuracy of a uniform guess among ``k`` options."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return 1.0 / k


def chance_p_value(correct: int, n: int, chance: float) -> float:
    """Exact two-sided binomial test of ``correct`` of ``n`` against ``chance`` (1.0 when n = 0)."""
    return float(binomtest(int(correct), int(n), chance).pvalue) if n > 0 else 1.0


def is_chance_level(accuracy: Mapping[str, Any], chance: float) -> bool:
    """Whether ``accuracy`` (a metrics dict with ``correct`` and ``n``, or ``accuracy`` and ``n``) is at chance."""
    n = int(accuracy.get("n") or 0)
    correct = accuracy.get("correct")
    if correct is None:
        correct = round(float(accuracy.get("accuracy") or 0.0) * n)
    return chance_p_value(int(correct), n, chance) >= CHANCE_ALPHA


def format_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
