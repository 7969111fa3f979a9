"""Evaluate variants on a split through the one predictor; write metrics.json and predictions.jsonl.

Training-time evaluation, ``python -m vqa_demo.evaluate`` and the app all read and write these
files, so one accuracy number means the same thing everywhere.

``predictions.jsonl``: one :class:`~vqa_demo.evaluation.records.ExampleRecord` per example, in the
split's original order (the keys are listed in :mod:`vqa_demo.evaluation.records`).

``metrics.json``: ``{"split", "n", "labeled", "questions", "backbone", "variants": {name: per-variant
metrics}, "agreement", "mcnemar"}``; ``questions`` fingerprints the set of examples (two evaluations with
the same one answered the same questions), ``backbone`` names the model (``source``, ``family``,
``model``, e.g. ``PaliGemma 2``); per variant: ``n`` and every
:data:`~vqa_demo.evaluation.metric_registry.METRICS` entry that applies to the variant's head strategy
(``accuracy`` with its Wilson 95% CI, ``by_metadata``, ``by_family``, ``position_bias``, ``calibration``,
``calibration_ece``, ``circular`` with ``--circular``; for a head that writes text, ``text_metrics``,
each COND_GEN scoring rule's accuracy and, on splits converted from open answers, ``open_answer_metrics``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vqa_demo.data.jsonl import write_jsonl
from vqa_demo.data.splits import MCSplit
from vqa_demo.data.writers import write_submission
from vqa_demo.evaluation import metrics as M
from vqa_demo.evaluation.metric_registry import METRICS, VariantRows
from vqa_demo.evaluation.records import ExampleRecord, VariantAnswer, questions_fingerprint
from vqa_demo.evaluation.sharding import Shard
from vqa_demo.prediction import plain
from vqa_demo.predictor import Predictor


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    records: list[dict[str, Any]]

    def accuracy(self, variant: str) -> float:
        return self.metrics["variants"][variant]["accuracy"]["accuracy"]


def variant_answer(prediction, gold: int | None) -> VariantAnswer:
    """The record of one variant's :class:`~vqa_demo.prediction.VariantPrediction` (gold: None when unlabelled)."""
    data = prediction.to_dict()
    answer = VariantAnswer(
        choice=data["choice"],
        correct=None if gold is None else data["choice"] == gold,
        confidence=float(max(data["probabilities"])),
        option_scores=data["option_scores"],
        probabilities=data["probabilities"],
        truncated=data["truncated"],
    )
    details = prediction.cond_gen
    if details is not None:
        answer.generated_text = details.generated_text
        answer.cosine, answer.loglik_mean, answer.loglik_sum = plain(
            [details.cosine, details.loglik_mean, details.loglik_sum]
        )
        if details.loglik_char is not None:
            answer.loglik_char = plain(details.loglik_char)
    return answer


def predict_records(
    predictor: Predictor,
    split: MCSplit,
    variants: Sequence[str] | None = None,
    batch_size: int = 16,
    progress: bool = True,
    starts: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Per-example records (see module docstring), in order, for the batches beginning at ``starts``
    (default: every batch of ``split``)."""
    records = []
    starts = range(0, len(split), batch_size) if starts is None else starts
    total = sum(len(split.examples[s : s + batch_size]) for s in starts)
    bar = tqdm(total=total, desc=f"evaluate {split.name}", unit="ex", disable=not progress)
    for start in starts:
        chunk = split.examples[start : start + batch_size]
        results = predictor.predict_batch(
            [ex.load_image() for ex in chunk],
            [ex.question for ex in chunk],
            [list(ex.options) for ex in chunk],
            variants,
        )
        for offset, (example, result) in enumerate(zip(chunk, results)):
            record = ExampleRecord(
                index=start + offset,
                id=example.id,
                file_name=example.image_name,  # the image's name in the run's validation/ copy
                question=example.question,
                options=list(example.options),
                gold=example.answer_index,
                metadata=dict(example.metadata),
                variants={name: variant_answer(p, example.answer_index) for name, p in result.items()},
            )
            records.append(record.to_json())
        bar.update(len(chunk))
    bar.close()
    return records


def add_circular_choices(
    predictor: Predictor,
    split: MCSplit,
    records: list[dict[str, Any]],
    variants: Sequence[str],
    batch_size: int = 16,
) -> None:
    """Re-score the examples of ``records`` under each option rotation; store choices mapped back to
    original order. ``records`` cover whole batches of ``batch_size`` (all of them, or one shard's).

    ``circular_choices[r]`` is the original index chosen when option i was shown at (i + r) % K;
    ``circular_probabilities[r]`` (``float[K]``) are that rotation's probabilities in the original
    option order (what a position prior is estimated from, :mod:`vqa_demo.evaluation.position`).
    """
    by_index = {record["index"]: record for record in records}
    for start in sorted({index - index % batch_size for index in by_index}):
        chunk = split.examples[start : start + batch_size]
        images = [ex.load_image() for ex in chunk]
        num_options = max(ex.num_options for ex in chunk)
        choices: dict[str, list[list[int]]] = {n: [[] for _ in chunk] for n in variants}
        shares: dict[str, list[list[list[float]]]] = {n: [[] for _ in chunk] for n in variants}
        for shift in range(num_options):
            rotated = [M.rotate_options(list(ex.options), shift % ex.num_options)[0] for ex in chunk]
            results = predictor.predict_batch(images, [ex.question for ex in chunk], rotated, variants)
            for i, (example, result) in enumerate(zip(chunk, results)):
                for name in variants:
                    choice = result[name].choice
                    choices[name][i].append(
                        int(M.original_index(choice, shift % example.num_options, example.num_options))
                    )
                    _, shown_at = M.rotate_options(list(example.options), shift % example.num_options)
                    original = np.zeros(example.num_options)
                    original[shown_at] = result[name].probabilities
                    shares[name][i].append(original.tolist())
        for i in range(len(chunk)):
            for name in variants:
                stored = by_index[start + i]["variants"][name]
                stored["circular_choices"] = choices[name][i]
                stored["circular_probabilities"] = shares[name][i]


def variant_metrics(
    records: list[dict[str, Any]], name: str, head: Any, circular: bool = False
) -> dict[str, Any]:
    """Metrics of one variant from per-example records (labeled examples only): every
    :data:`~vqa_demo.evaluation.metric_registry.METRICS` entry that applies to ``head`` (its head
    strategy, or a :class:`~vqa_demo.model.head_traits.HeadTraits`) and was measured."""
    rows = VariantRows.of(records, name, circular)
    if rows is None:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(rows.records)}
    for metric in METRICS.values():
        if metric.applies(head):
            value = metric.compute(rows)
            if value is not None:
                out[metric.name] = value
    return out


def head_strategies(predictor: Predictor, names: Sequence[str]) -> dict[str, Any]:
    """Each variant's head strategy: what decides which metrics apply to it."""
    return {name: predictor.variants[name].strategy for name in names}


def summarize(
    records: list[dict[str, Any]], split_name: str, heads: Mapping[str, Any], circular: bool = False
) -> dict[str, Any]:
    """``metrics.json`` content: per-variant metrics plus head agreement and paired McNemar tests
    (``heads``: each variant's head strategy, :func:`head_strategies`)."""
    names = list(records[0]["variants"]) if records else []
    labeled = bool(records) and all(r["gold"] is not None for r in records)
    summary: dict[str, Any] = {
        "split": split_name,
        "n": len(records),
        "labeled": labeled,
        "questions": questions_fingerprint(records),
        "variants": {n: variant_metrics(records, n, heads[n], circular) for n in names},
    }
    if len(names) > 1 and records:
        summary["agreement"] = M.agreement_matrix(
            {n: [r["variants"][n]["choice"] for r in records] for n in names}
        )
    if labeled and len(names) > 1:
        correct = {n: [r["variants"][n]["correct"] for r in records] for n in names}
        summary["mcnemar"] = {
            f"{a} vs {b}": M.mcnemar_exact(correct[a], correct[b]) for a, b in combinations(names, 2)
        }
    return summary


def evaluate(
    predictor: Predictor,
    split: MCSplit,
    variants: Sequence[str] | None = None,
    batch_size: int = 16,
    circular: bool = False,
    progress: bool = True,
    shard: Shard | None = None,
) -> EvaluationResult:
    """Batched evaluation of ``variants`` (default: all that fit the split's option counts).

    With a ``shard`` of several processes each computes its share of the batches and every process
    gets all records back in order, so the metrics equal a single-process evaluation exactly.
    """
    shard = shard or Shard()
    starts = shard.batch_starts(len(split), batch_size)
    records = predict_records(predictor, split, variants, batch_size, progress and shard.is_main, starts)
    if circular and records:
        add_circular_choices(predictor, split, records, list(records[0]["variants"]), batch_size)
    records = shard.gather_records(records, len(split))
    metrics = summarize(
        records,
        split.name,
        head_strategies(predictor, list(records[0]["variants"]) if records else []),
        circular,
    )
    metrics["backbone"] = predictor.backbone.summary()
    return EvaluationResult(metrics, records)


def write_evaluation(result: EvaluationResult, out_dir: str | Path, split: MCSplit | None = None) -> Path:
    """Write ``metrics.json``, ``predictions.jsonl`` and, for unlabeled splits, one submission CSV per variant."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    write_jsonl(out_dir / "predictions.jsonl", result.records)
    if split is not None and not result.metrics["labeled"] and result.records:
        for name in result.records[0]["variants"]:
            choices = [r["variants"][name]["choice"] for r in result.records]
            write_submission(split, choices, out_dir / f"submission_{name}.csv")
    return out_dir
