"""The evaluation contract: one ``predictions.jsonl`` line and one variant's entry in a summary, typed.

Every writer (:mod:`vqa_demo.evaluation.runner`, ``training.compare``) builds these records and every
reader (the Errors and Compare tabs, :mod:`~vqa_demo.evaluation.saved_runs`, ``compare_runs``) reads
them back through ``from_json``, under the same keys. Torch-free.

``from_json`` keeps keys it does not know (``extra``; ``to_json`` writes them back), gives missing
optional keys their defaults, and refuses a wrong JSON type, a value out of range or a missing
required key with a :class:`~vqa_demo.evaluation.run_checks.RunContractError` naming the key; the file
readers add the file and the line (:class:`RecordError`).

A ``predictions.jsonl`` line (:class:`ExampleRecord`, K options)::

    {"index", "id", "file_name", "question", "options": [K texts], "gold": 0..K-1 | null,
     "metadata": {"family": ...}, "variants": {name: VariantAnswer}}

:class:`VariantAnswer`: ``choice``, ``correct``, ``confidence`` (the top probability),
``option_scores`` and ``probabilities`` (``float[K]``), ``truncated``; a head that writes text adds
``generated_text`` and the ``float[K]`` scores ``cosine``, ``loglik_mean``, ``loglik_sum``,
``loglik_char``; a circular evaluation adds ``circular_choices`` (``int[K]``) and
``circular_probabilities`` (``float[K, K]``).

A variant entry (:class:`VariantEntry`) of ``comparison.json`` or ``metrics.json``: the metrics of
:data:`~vqa_demo.evaluation.metric_registry.METRICS` under their registry names (``accuracy``,
``by_family``, ``position_bias``, ``calibration_ece``, ``scoring_accuracy``...), the training facts
(``curve``, ``best_step``, ``train_seconds``, ``checkpoint``, ``training`` for a zero-training row
such as ``zero_shot``) and the selection-split report (``selection_accuracy``, ``calibration``,
``circular``, ``position_reading``, ``pride``, ``decision_rules``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS
from vqa_demo.evaluation import record_checks as C
from vqa_demo.evaluation.metric_registry import METRICS
from vqa_demo.evaluation.run_checks import (
    RunContractError,
    check_accuracies,
    check_accuracy,
    contract_error,
    expect_count,
    expect_fraction,
    expect_numbers,
    expect_object,
    expect_string,
)


class RecordError(ValueError):
    """A run file holds a record off the contract; one sentence names the file, the line and the key."""


def nullable(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """``check`` that also lets null through."""
    return lambda value, where: None if value is None else check(value, where)


def read_fields(cls, data: Any, where: str, checks: dict[str, Callable], required: tuple[str, ...]) -> dict:
    """The constructor arguments of dataclass ``cls`` from JSON object ``data``: each known key checked
    (``where``-prefixed key names), unknown keys under ``extra``, missing optional keys left to defaults."""
    expect_object(data, where)
    for key in required:
        if key not in data:
            raise RunContractError(f"'{where}{key}' is missing: every record needs it")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {key: checks[key](data[key], f"{where}{key}") for key in checks if key in data}
    values["extra"] = {k: v for k, v in data.items() if k not in names}
    return values


def write_fields(record, always: tuple[str, ...]) -> dict[str, Any]:
    """``record`` as its JSON object: the ``always`` keys, the other fields unless None, then ``extra``."""
    out = {name: getattr(record, name) for name in always}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name not in ("extra", *always) and value is not None:
            out[f.name] = value
    return {**out, **record.extra}


# -- predictions.jsonl --------------------------------------------------------------------------------
ANSWER_CHECKS: dict[str, Callable] = {
    "choice": expect_count,
    "correct": nullable(C.expect_bool),
    "confidence": expect_fraction,
    "option_scores": expect_numbers,
    "probabilities": expect_numbers,
    "truncated": C.expect_bool,
    "generated_text": nullable(expect_string),
    **{key: nullable(expect_numbers) for key in ("cosine", "loglik_mean", "loglik_sum", "loglik_char")},
    "circular_choices": nullable(C.expect_counts),
    "circular_probabilities": nullable(C.expect_lists_of_numbers),
}


@dataclass
class VariantAnswer:
    """One variant's answer to one example (K options; see the module docstring)."""

    choice: int
    probabilities: list[float]  # float[K], the softmax of the decision rule's scores
    correct: bool | None = None
    confidence: float | None = None  # max(probabilities) when the file has none
    option_scores: list[float] | None = None  # float[K]
    truncated: bool = False
    generated_text: str | None = None
    cosine: list[float] | None = None
    loglik_mean: list[float] | None = None
    loglik_sum: list[float] | None = None
    loglik_char: list[float] | None = None
    circular_choices: list[int] | None = None  # int[K]
    circular_probabilities: list[list[float]] | None = None  # float[K, K]
    extra: dict[str, Any] = field(default_factory=dict)

    ALWAYS = ("choice", "correct", "confidence", "option_scores", "probabilities", "truncated")

    @classmethod
    def from_json(cls, data: Any, where: str, num_options: int) -> VariantAnswer:
        """Checked against ``num_options`` (the example's K): ``choice`` indexes the options and every
        per-option list holds K numbers."""
        answer = cls(**read_fields(cls, data, where, ANSWER_CHECKS, ("choice", "probabilities")))
        expect_count(answer.choice, f"{where}choice", upper=num_options - 1)
        for key in ("probabilities", "option_scores", "cosine", "loglik_mean", "loglik_sum", "loglik_char"):
            if getattr(answer, key) is not None:
                expect_numbers(getattr(answer, key), f"{where}{key}", length=num_options)
        if answer.confidence is None:
            answer.confidence = float(max(answer.probabilities))
        if answer.option_scores is None:
            answer.option_scores = list(answer.probabilities)
        return answer

    def to_json(self) -> dict[str, Any]:
        return write_fields(self, self.ALWAYS)


def check_options(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        raise contract_error(where, "a list of option texts", value)
    if not MIN_OPTIONS <= len(value) <= MAX_OPTIONS:
        raise RunContractError(f"'{where}' has {len(value)} options; {MIN_OPTIONS} to {MAX_OPTIONS} expected")
    return value


EXAMPLE_CHECKS: dict[str, Callable] = {
    "index": expect_count,
    "id": C.expect_id,
    "file_name": nullable(expect_string),
    "question": expect_string,
    "options": check_options,
    "gold": nullable(expect_count),
    "metadata": expect_object,
    "variants": expect_object,
}


@dataclass
class ExampleRecord:
    """One evaluated example: a line of ``predictions.jsonl`` (see the module docstring)."""

    id: str | int
    question: str
    options: list[str]
    variants: dict[str, VariantAnswer]
    index: int | None = None  # the example's position in its split; the line's when the file has none
    file_name: str | None = None
    gold: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, where: str = "", position: int | None = None) -> ExampleRecord:
        """``where`` prefixes key names in errors (``"line 3 "``); ``position`` is the default index."""
        values = read_fields(cls, data, where, EXAMPLE_CHECKS, ("id", "question", "options", "variants"))
        options = values["options"]
        if values.get("gold") is not None:
            expect_count(values["gold"], f"{where}gold", upper=len(options) - 1)
        values["variants"] = {
            str(name): VariantAnswer.from_json(
                expect_object(answer, f"{where}variants.{name}"), f"{where}variants.{name}.", len(options)
            )
            for name, answer in values["variants"].items()
        }
        values.setdefault("index", position)
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The line's JSON object, keys in the order the runner writes them."""
        out = {
            "index": self.index,
            "id": self.id,
            "file_name": self.file_name,
            "question": self.question,
            "options": list(self.options),
            "gold": self.gold,
            "metadata": dict(self.metadata),
            "variants": {name: answer.to_json() for name, answer in self.variants.items()},
        }
        return {**out, **self.extra}


def example_key(record: dict[str, Any]) -> str:
    """What makes two evaluations' records the same question: image id, question, options and gold."""
    return json.dumps([record["id"], record["question"], record["options"], record["gold"]])


def questions_fingerprint(records: list[dict[str, Any]]) -> str:
    """SHA-256 of the sorted example keys: equal exactly when two evaluations cover the same questions."""
    keys = sorted(example_key(r) for r in records)
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()


# -- comparison.json / metrics.json ------------------------------------------------------------------
ENTRY_CHECKS: dict[str, Callable] = {
    "curve": C.check_curve,
    "best_step": nullable(expect_count),
    "train_seconds": C.optional_nonnegative,
    "checkpoint": nullable(expect_string),
    "training": expect_string,
    "selection_accuracy": nullable(check_accuracy),
    "calibration": nullable(C.check_calibration),
    "circular": nullable(C.check_circular),
    "position_reading": nullable(expect_string),
    "pride": nullable(C.check_pride),
    "decision_rules": nullable(C.check_decision_rules),
}


@dataclass
class VariantEntry:
    """One variant's entry in ``comparison.json`` or ``metrics.json`` (see the module docstring).

    ``metrics``: every :data:`~vqa_demo.evaluation.metric_registry.METRICS` value the file holds,
    by registry name, each checked by its metric.
    """

    metrics: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    best_step: int | None = None
    train_seconds: float | None = None
    checkpoint: str | None = None
    training: str | None = None  # set on zero-training rows (zero_shot, a family's own classifier)
    selection_accuracy: dict | None = None
    calibration: dict | None = None
    circular: dict | None = None
    position_reading: str | None = None
    pride: dict | None = None
    decision_rules: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> VariantEntry:
        """``where`` prefixes key names in errors (``"variants.cond_gen."``).

        Files written before ``by_family`` and ``calibration_ece`` were registry metrics of
        ``metrics.json`` hold them as ``by_metadata.family`` and ``calibration.ece``: read from there.
        """
        values = read_fields(cls, data, where, ENTRY_CHECKS, ())
        extra = values.pop("extra")
        values["metrics"] = {
            name: metric.check(extra.pop(name), f"{where}{name}")
            for name, metric in METRICS.items()
            if name in extra
        }
        metrics = values["metrics"]
        if "by_family" not in metrics and "family" in (metrics.get("by_metadata") or {}):
            metrics["by_family"] = metrics["by_metadata"]["family"]
        calibration = values.get("calibration") or {}
        if "calibration_ece" not in metrics and isinstance(calibration.get("ece"), (int, float)):
            metrics["calibration_ece"] = calibration["ece"]
        return cls(**values, extra=extra)

    def to_json(self) -> dict[str, Any]:
        out = {**self.metrics}
        out.update(
            {
                k: v
                for k, v in write_fields(self, ("curve", "best_step", "train_seconds", "checkpoint")).items()
                if k != "metrics"
            }
        )
        return out

    @property
    def accuracy(self) -> dict | None:
        """``{"accuracy", "low", "high", "n", "correct"}`` on the reported split, or None (unlabelled)."""
        return self.metrics.get("accuracy")

    @property
    def by_family(self) -> dict[str, dict]:
        return self.metrics.get("by_family") or {}

    @property
    def baseline(self) -> bool:
        """Whether the row had no training of its own."""
        return bool(self.training)

    def value(self, metric: str) -> Any:
        """The registry metric ``metric``'s value, or None when the file has none."""
        return self.metrics.get(metric)


def check_summary(summary: dict[str, Any]) -> None:
    """The top-level keys of a summary file (its variant entries are read one by one)."""
    expect_object(summary.get("variants"), "variants")
    for key, check in C.SUMMARY_CHECKS.items():
        if key in summary:
            check(summary[key], key)


def read_entries(summary: dict[str, Any]) -> dict[str, VariantEntry]:
    """Every variant entry of a checked summary; the first one off the contract raises."""
    return {
        str(name): VariantEntry.from_json(entry, f"variants.{name}.")
        for name, entry in summary["variants"].items()
    }


__all__ = [
    "ExampleRecord",
    "RecordError",
    "RunContractError",
    "VariantAnswer",
    "VariantEntry",
    "check_accuracies",
    "check_summary",
    "example_key",
    "questions_fingerprint",
    "read_entries",
]
