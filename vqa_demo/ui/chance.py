"""Chance level: is a variant's accuracy distinguishable from guessing among K options?"""

from __future__ import annotations


def chance_level(k: int) -> float:
    """The accuracy of a uniform guess among ``k`` options."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return 1.0 / k


def is_chance_level(accuracy_ci_low: float, accuracy_ci_high: float, chance: float) -> bool:
    """Whether the accuracy interval ``[low, high]`` includes ``chance``: the data cannot tell it from guessing."""
    return accuracy_ci_low <= chance <= accuracy_ci_high
