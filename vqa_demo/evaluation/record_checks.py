"""Checks of the nested values of evaluation records, down to what a reader draws or prints.

Used by :mod:`vqa_demo.evaluation.records` and :mod:`vqa_demo.evaluation.metric_registry`. Each
returns its value or raises :class:`~vqa_demo.evaluation.run_checks.RunContractError` naming the
key (``where``), so a corrupt file becomes one sentence before a chart or a table reads it.
"""

from __future__ import annotations

from typing import Any

from vqa_demo.evaluation.run_checks import (
    RunContractError,
    check_accuracy,
    contract_error,
    expect_between,
    expect_count,
    expect_fraction,
    expect_number,
    expect_numbers,
    expect_object,
    expect_string,
)


def missing(where: str) -> RunContractError:
    return RunContractError(f"'{where}' is missing")


def expect_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise contract_error(where, "true or false", value)
    return value


def expect_id(value: Any, where: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise contract_error(where, "a string or integer", value)
    return value


def expect_list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise contract_error(where, "an array", value)
    return value


def expect_counts(value: Any, where: str) -> list[int]:
    for i, item in enumerate(expect_list(value, where)):
        expect_count(item, f"{where}.{i}")
    return value


def expect_lists_of_numbers(value: Any, where: str) -> list[list[float]]:
    for i, item in enumerate(expect_list(value, where)):
        expect_numbers(item, f"{where}.{i}")
    return value


def nullable_count(value: Any, where: str) -> int | None:
    return None if value is None else expect_count(value, where)


def optional_fraction(value: Any, where: str) -> float | None:
    return None if value is None else expect_fraction(value, where)


def check_keys(value: Any, where: str, checks: dict) -> dict:
    """An object whose listed keys, when present, pass their checks (others are not read)."""
    expect_object(value, where)
    for key, check in checks.items():
        if key in value:
            check(value[key], f"{where}.{key}")
    return value


def check_required(value: Any, where: str, checks: dict) -> dict:
    """:func:`check_keys`, and every listed key must be there."""
    check_keys(value, where, checks)
    for key in checks:
        if key not in value:
            raise missing(f"{where}.{key}")
    return value


def check_objects(value: Any, where: str, checks: dict) -> list[dict]:
    """An array of objects, each checked by :func:`check_keys`."""
    for i, item in enumerate(expect_list(value, where)):
        check_keys(item, f"{where}.{i}", checks)
    return value


MAX_FIGURE = 1e15  # far above any loss, epoch or seconds; below where a JSON integer stops being exact


def optional_nonnegative(value: Any, where: str) -> float | None:
    return None if value is None else expect_between(value, where, 0, MAX_FIGURE)


def check_curve(value: Any, where: str) -> list[dict]:
    """A training curve: records with a ``step`` count and non-negative ``epoch``, ``loss``,
    ``seconds`` and an ``accuracy`` fraction where present."""
    checks = {"step": nullable_count, "accuracy": optional_fraction}
    checks.update({key: optional_nonnegative for key in ("epoch", "loss", "seconds")})
    return check_objects(value, where, checks)


def check_position_bias(value: Any, where: str) -> dict:
    """:func:`~vqa_demo.evaluation.metrics.position_bias`'s object (what the position chart reads)."""
    row = {"position": expect_string, "accuracy": optional_fraction, "low": optional_fraction,
           "high": optional_fraction}  # fmt: skip
    return check_keys(value, where, {
        "accuracy_by_gold_position": lambda v, w: check_objects(v, w, row),
        "predicted_position_rate": expect_numbers,
        "gold_position_rate": expect_numbers,
        "uniformity_p_value": optional_fraction,
    })  # fmt: skip


def check_reliability(value: Any, where: str) -> list[dict]:
    """Reliability bins: each with a ``count`` and, when it is not empty, its mean confidence and accuracy."""
    number = lambda v, w: expect_number(v, w, nullable=True)  # noqa: E731
    bin_checks = {"count": expect_count, "mean_confidence": number, "accuracy": number}
    for i, row in enumerate(expect_list(value, where)):
        check_required(row, f"{where}.{i}", bin_checks)
    return value


def check_calibration(value: Any, where: str) -> dict:
    """``calibration``: metrics.json's ``{"ece", "reliability"}``, or comparison.json's report per
    probability definition (temperature, ECE and mean top share before/after, reliability bins)."""
    expect_object(value, where)
    if "ece" in value or "reliability" in value:
        return check_keys(value, where, {"ece": expect_number, "reliability": check_reliability})
    figures = {key: expect_number for key in ("temperature", "ece_before", "ece_after",
               "mean_probability_before", "mean_probability_after")}  # fmt: skip
    figures.update(reliability_before=check_reliability, reliability_after=check_reliability)
    for definition, report in value.items():
        check_required(report, f"{where}.{definition}", figures)
    return value


def check_text_metrics(value: Any, where: str) -> dict:
    """COND_GEN's text metrics: means in [0, 1] (``n`` a count)."""
    figures = {key: expect_fraction for key in ("exact_match", "first_word_match", "token_f1", "rouge_l",
               "no_match_rate")}  # fmt: skip
    cosine = lambda v, w: expect_between(v, w, -1.01, 1.01)  # noqa: E731  float32 rounding past 1
    return check_keys(value, where, {"n": expect_count, "cosine": cosine, **figures})


def check_circular(value: Any, where: str) -> dict:
    return check_keys(value, where, {"circular_accuracy": expect_fraction, "mean_consistency": expect_number})


def check_pride(value: Any, where: str) -> dict:
    return check_keys(value, where, {"accuracy": check_accuracy, "circular_accuracy": optional_fraction})


def check_decision_rules(value: Any, where: str) -> dict:
    """COND_GEN's rules: ``rules`` (rule -> held-out and selection accuracies), ``used``, ``best_on_selection``."""
    accuracy = lambda v, w: None if v is None else check_accuracy(v, w)  # noqa: E731
    string = lambda v, w: expect_string(v, w, nullable=True)  # noqa: E731
    check_keys(value, where, {"used": string, "best_on_selection": string})
    rules = expect_object(value.get("rules"), f"{where}.rules")
    for rule, figures in rules.items():
        check_keys(figures, f"{where}.rules.{rule}", {"accuracy": accuracy, "selection_accuracy": accuracy})
    return value


def check_mcnemar(value: Any, where: str) -> dict:
    """Pair (``"a vs b"``) -> ``{"b", "c", "p_value"}`` of an exact McNemar test."""
    test = {"b": expect_count, "c": expect_count, "p_value": expect_fraction}
    for pair, figures in expect_object(value, where).items():
        check_required(figures, f"{where}.{pair}", test)
    return value


def check_agreement(value: Any, where: str) -> dict:
    """``{"variants": [names], "matrix": float[V, V]}``."""
    expect_object(value, where)
    names = expect_list(value.get("variants"), f"{where}.variants")
    rows = expect_lists_of_numbers(value.get("matrix"), f"{where}.matrix")
    if len(rows) != len(names) or any(len(row) != len(names) for row in rows):
        raise contract_error(f"{where}.matrix", f"a {len(names)} by {len(names)} table", rows)
    return value


def check_setting(value: Any, where: str) -> dict:
    return check_keys(value, where, {"base": expect_string})


def check_backbone(value: Any, where: str) -> dict:
    return check_keys(value, where, {"model": expect_string, "source": expect_string})


def check_reasons(value: Any, where: str) -> dict:
    for name, reason in expect_object(value, where).items():
        expect_string(reason, f"{where}.{name}")
    return value


# What split_note reads of the selection split's description.
SELECTION_SPLIT = {"n": expect_count, "source": expect_string, "seed": expect_count}

# The top-level keys of comparison.json / metrics.json (each optional; ``variants`` is read apart).
SUMMARY_CHECKS = {
    "setting": check_setting,
    "split": expect_string,
    "n": expect_count,
    "questions": lambda v, w: expect_string(v, w, nullable=True),
    "not_applicable": check_reasons,
    "backbone": check_backbone,
    "agreement": lambda v, w: None if v is None else check_agreement(v, w),
    "mcnemar": lambda v, w: None if v is None else check_mcnemar(v, w),
    "selection_split": lambda v, w: None if v is None else check_keys(v, w, SELECTION_SPLIT),
}
