"""``METRICS``: every per-variant metric by name, what it applies to, and how Compare shows it.

The runner computes each applicable entry into ``metrics.json`` under its name
(:func:`~vqa_demo.evaluation.runner.variant_metrics`); ``training.compare`` copies those with
``in_comparison`` into ``comparison.json`` under the same name; :class:`~vqa_demo.evaluation.records.VariantEntry`
checks each stored value with the entry's ``check``; the Compare tab and ``compare_runs`` show the
ones with a ``display`` (a column of the served run's table; with ``across_runs`` also a table of
every run). A new metric is one entry here plus its test. Torch-free.

Which heads a metric applies to comes from the variant's head strategy (``applies(strategy)``, e.g.
``strategy.generates_text``, or a :class:`~vqa_demo.model.head_traits.HeadTraits`), never from the keys a
record happens to hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vqa_demo.config import COND_GEN_SCORINGS
from vqa_demo.evaluation import metrics as M
from vqa_demo.evaluation import record_checks as C
from vqa_demo.evaluation.run_checks import (
    check_accuracies,
    check_accuracy,
    expect_between,
    expect_count,
    expect_fraction,
    expect_object,
)
from vqa_demo.evaluation.text_metrics import no_match_rate, open_answer_metrics, text_metric_summary


@dataclass
class VariantRows:
    """One variant's answers over the N labelled records that hold it (K: the most options)."""

    name: str
    records: list[dict[str, Any]]  # N example records (predictions.jsonl lines)
    answers: list[dict[str, Any]]  # N answers of this variant, record["variants"][name]
    gold: np.ndarray  # int[N]
    chosen: np.ndarray  # int[N]
    correct: np.ndarray  # bool[N]
    num_options: int
    circular: bool  # whether the evaluation re-scored every option rotation

    @classmethod
    def of(cls, records: list[dict[str, Any]], name: str, circular: bool = False) -> VariantRows | None:
        """The labelled ``records`` that hold variant ``name`` (None when there are none)."""
        rows = [r for r in records if r["gold"] is not None and name in r["variants"]]
        if not rows:
            return None
        gold = np.array([r["gold"] for r in rows])
        chosen = np.array([r["variants"][name]["choice"] for r in rows])
        answers = [r["variants"][name] for r in rows]
        num_options = max(len(r["options"]) for r in rows)
        return cls(name, rows, answers, gold, chosen, chosen == gold, num_options, circular)

    def column(self, key: str) -> list[Any]:
        return [answer[key] for answer in self.answers]


@dataclass(frozen=True)
class Display:
    """How the Compare tab and ``compare_runs`` show a metric."""

    column: str  # the column title (or the chart's label)
    chart: bool = False  # drawn by the Compare tab's own chart, not a table column
    across_runs: bool = False  # also a table of every run (Across backbones, compare_runs)


@dataclass(frozen=True)
class Metric:
    """One per-variant metric: ``compute(rows)`` (None: not measured on these rows), ``check(value,
    where)`` of a stored value, ``applies(strategy)``, ``format(value)`` for a table cell."""

    name: str
    compute: Callable[[VariantRows], Any]
    check: Callable[[Any, str], Any]
    applies: Callable[[Any], bool] = lambda head: True
    format: Callable[[Any], str] = str
    display: Display | None = None
    in_comparison: bool = False  # copied into comparison.json's variant entries


def writes_text(head: Any) -> bool:
    return bool(head.generates_text)


def accuracy_text(accuracy: dict) -> str:
    return f"{accuracy['accuracy']:.1%} [{accuracy['low']:.1%}–{accuracy['high']:.1%}]"


def by_metadata(rows: VariantRows) -> dict[str, dict]:
    columns = sorted({c for r in rows.records for c in r["metadata"]})
    return {
        c: M.grouped_accuracy(rows.correct, [r["metadata"].get(c, "") for r in rows.records]) for c in columns
    }


def by_family(rows: VariantRows) -> dict[str, dict]:
    families = [r["metadata"].get("family", "") for r in rows.records]
    return (
        M.grouped_accuracy(rows.correct, families)
        if any("family" in r["metadata"] for r in rows.records)
        else {}
    )


def calibration(rows: VariantRows) -> dict[str, Any]:
    confidence = np.array(rows.column("confidence"))
    return {
        "ece": M.expected_calibration_error(confidence, rows.correct),
        "reliability": M.reliability_table(confidence, rows.correct),
    }


def gold_texts(rows: VariantRows) -> list[str]:
    return [r["options"][r["gold"]] for r in rows.records]


def text_metrics(rows: VariantRows) -> dict[str, Any]:
    gold_cosine = [answer["cosine"][g] for answer, g in zip(rows.answers, rows.gold)]
    summary = text_metric_summary(rows.column("generated_text"), gold_texts(rows), gold_cosine)
    cosine = rows.column("cosine")
    if len({len(c) for c in cosine}) == 1:
        summary["no_match_rate"] = no_match_rate(np.array(cosine))
    return summary


def open_answers(rows: VariantRows) -> dict[str, Any] | None:
    """Only on a split converted from open answers: its gold option text is the open answer."""
    if not all("answer_type" in r["metadata"] for r in rows.records):
        return None
    gold_cosine = [answer["cosine"][g] for answer, g in zip(rows.answers, rows.gold)]
    return open_answer_metrics(rows.column("generated_text"), gold_texts(rows), cosine=gold_cosine)


def scoring_accuracy(rows: VariantRows) -> dict[str, dict]:
    """Each COND_GEN decision rule's accuracy (records written before ``loglik_char`` lack that one)."""
    return {
        rule: M.accuracy_ci(np.array([int(np.argmax(a[rule])) for a in rows.answers]) == rows.gold)
        for rule in COND_GEN_SCORINGS
        if all(rule in a for a in rows.answers)
    }


def circular(rows: VariantRows) -> dict[str, Any] | None:
    if not rows.circular or not all("circular_choices" in a for a in rows.answers):
        return None
    return M.circular_consistency(np.array(rows.column("circular_choices")), rows.gold, rows.num_options)


def check_by_metadata(value: Any, where: str) -> dict:
    """Metadata column -> value -> accuracy."""
    groups = expect_object(value, where).items()
    return {str(column): check_accuracies(by_value, f"{where}.{column}") for column, by_value in groups}


def optional_fraction(value: Any, where: str) -> float | None:
    return None if value is None else expect_fraction(value, where)


def brier_score(rows: VariantRows) -> float:
    """Mean over questions of ``sum_k (p_k - [k = gold])^2`` (Brier 1950): 0 is perfect, 2 the worst;
    unlike accuracy it rewards a variant for putting probability where the answer is."""
    return float(np.mean([sum((p - (k == g)) ** 2 for k, p in enumerate(a["probabilities"])) for a, g in zip(rows.answers, rows.gold)]))  # fmt: skip


CHART = {  # the Compare tab's own charts, by metric
    "accuracy": Display("Validation accuracy with 95% interval", chart=True),
    "by_family": Display("Accuracy per question family (dotted: chance in that family)", chart=True),
    "position_bias": Display("Accuracy by gold-answer position (position bias)", chart=True),
}

METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(
            "accuracy",
            lambda r: M.accuracy_ci(r.correct),
            check_accuracy,
            format=accuracy_text,
            display=CHART["accuracy"],
            in_comparison=True,
        ),
        Metric("by_metadata", by_metadata, check_by_metadata),
        Metric("by_family", by_family, check_accuracies, display=CHART["by_family"], in_comparison=True),
        Metric(
            "position_bias",
            lambda r: M.position_bias(r.gold, r.chosen, r.num_options),
            C.check_position_bias,
            display=CHART["position_bias"],
            in_comparison=True,
        ),
        Metric("calibration", calibration, C.check_calibration),
        Metric(
            "calibration_ece",
            lambda r: calibration(r)["ece"],
            optional_fraction,
            format="{:.3f}".format,
            display=Display("ECE"),
            in_comparison=True,
        ),
        Metric("truncated", lambda r: int(sum(bool(a["truncated"]) for a in r.answers)), expect_count),
        Metric("text_metrics", text_metrics, C.check_text_metrics, applies=writes_text, in_comparison=True),
        Metric("open_answer_metrics", open_answers, expect_object, applies=writes_text),
        Metric(
            "scoring_accuracy", scoring_accuracy, check_accuracies, applies=writes_text, in_comparison=True
        ),
        Metric("circular", circular, C.check_circular),
        Metric(
            "brier",
            brier_score,
            lambda v, w: None if v is None else expect_between(v, w, 0.0, 2.0),
            format="{:.3f}".format,
            display=Display("Brier score", across_runs=True),
            in_comparison=True,
        ),
    ]
}
