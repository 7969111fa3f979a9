"""The Errors tab's data: validation examples that selected variants got wrong, from ``predictions.jsonl``.

Pure functions over the evaluation's records (one dict per validation example: ``index``,
``file_name``, ``question``, ``options``, ``gold`` (0-based), ``metadata``, ``variants`` mapping a
variant name to its stored ``choice``, ``confidence`` and ``probabilities``); no Gradio here.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqa_demo.config import OPTION_LETTERS, in_variant_order
from vqa_demo.data.csv_cells import csv_row
from vqa_demo.evaluation.chance import chance_level, is_chance_level
from vqa_demo.evaluation.metrics import accuracy_ci
from vqa_demo.evaluation.selection_report import ZERO_SHOT

ALL_FAMILIES, ANY_POSITION = "all families", "any position"
MISSED_BY_ANY, MISSED_BY_ALL = "any selected variant", "every selected variant"
EXPORT_COLUMNS = [
    "#",
    "file_name",
    "family",
    "question",
    "options",
    "gold",
    "gold_text",
    "variant",
    "predicted",
]
EXPORT_COLUMNS += ["predicted_text", "confidence"]


def letter(index: int | None) -> str:
    return OPTION_LETTERS[index] if index is not None and 0 <= index < len(OPTION_LETTERS) else "?"


def option_text(options: list[str], index: int | None) -> str:
    """``"C) blue"``: an option as the form letters it ("?" for a missing index)."""
    if index is None or not 0 <= index < len(options):
        return "?"
    return f"{OPTION_LETTERS[index]}) {options[index]}"


def family_of(record: dict[str, Any]) -> str:
    return (record.get("metadata") or {}).get("family", "")


def labelled(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("gold") is not None and r.get("variants")]


def variant_names(records: list[dict[str, Any]]) -> list[str]:
    return in_variant_order(dict.fromkeys(n for r in records for n in (r.get("variants") or {})))


def variant_accuracy(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each variant's accuracy with its 95% Wilson interval over the labelled records it answered."""
    out = {}
    for name in variant_names(records):
        correct = [
            r["variants"][name]["choice"] == r["gold"] for r in labelled(records) if name in r["variants"]
        ]
        if correct:
            out[name] = accuracy_ci(correct)
    return out


def mean_chance(records: list[dict[str, Any]]) -> float | None:
    """Expected accuracy of guessing: the mean of 1/K over the labelled records."""
    ks = [len(r.get("options") or []) for r in labelled(records)]
    ks = [k for k in ks if k > 0]
    return float(np.mean([chance_level(k) for k in ks])) if ks else None


def chance_variants(records: list[dict[str, Any]]) -> list[str]:
    """Variants at chance level (see :mod:`vqa_demo.evaluation.chance`)."""
    chance = mean_chance(records)
    if chance is None:
        return []
    accuracy = variant_accuracy(records)
    return [n for n, a in accuracy.items() if is_chance_level(a, chance)]


def default_variants(records: list[dict[str, Any]]) -> list[str]:
    """The variants selected at first: all but the chance-level ones and the untrained ``zero_shot``
    reference row (all of them if nothing else is left); the others stay one tick away."""
    names = variant_names(records)
    left_out = set(chance_variants(records)) | {ZERO_SHOT}
    return [n for n in names if n not in left_out] or names


@dataclass(frozen=True)
class ErrorFilter:
    """What the Errors tab shows: examples missed by the selected variants, narrowed by the other fields.

    ``confidence`` bounds the probability a wrong variant gave its choice (inclusive): an example
    passes when one of its wrong selected variants lies in the range. ``disagree_only`` keeps the
    examples where the selected variants did not all choose the same option.
    """

    variants: tuple[str, ...]
    family: str = ALL_FAMILIES
    position: str = ANY_POSITION
    confidence: tuple[float, float] = (0.0, 1.0)
    disagree_only: bool = False
    missed_by: str = MISSED_BY_ANY


def example_row(
    record: dict[str, Any], selected: list[str], low: float, high: float
) -> dict[str, Any] | None:
    """The record as a table row if one of the selected variants missed it within the confidence range."""
    gold, options, stored = record["gold"], list(record.get("options") or []), record["variants"]
    present = [n for n in selected if n in stored]
    wrong = [n for n in present if stored[n]["choice"] != gold]
    in_range = [n for n in wrong if low <= float(stored[n].get("confidence", 0.0)) <= high]
    if not in_range:
        return None
    misses = [
        {
            "variant": n,
            "choice": stored[n]["choice"],
            "predicted": option_text(options, stored[n]["choice"]),
            "confidence": float(stored[n].get("confidence", 0.0)),
        }
        for n in in_range
    ]
    return {
        "#": record.get("index"),
        "file_name": record.get("file_name"),
        "family": family_of(record),
        "question": record.get("question", ""),
        "options": options,
        "gold_index": gold,
        "gold": option_text(options, gold),
        "misses": misses,
        "missed_by": len(wrong),
        "of": len(present),
        "confidence": max(m["confidence"] for m in misses),
        "disagree": len({stored[n]["choice"] for n in present}) > 1,
    }


def error_examples(records: list[dict[str, Any]], chosen: ErrorFilter) -> list[dict[str, Any]]:
    """One row per validation example passing ``chosen``, in split order (see :class:`ErrorFilter`)."""
    low, high = sorted(chosen.confidence)
    selected = list(chosen.variants)
    rows = []
    for record in labelled(records):
        if chosen.family not in (ALL_FAMILIES, None, "") and family_of(record) != chosen.family:
            continue
        if chosen.position not in (ANY_POSITION, None, "") and letter(record["gold"]) != chosen.position:
            continue
        row = example_row(record, selected, low, high)
        if row is None:
            continue
        if chosen.missed_by == MISSED_BY_ALL and row["missed_by"] < row["of"]:
            continue
        if chosen.disagree_only and not row["disagree"]:
            continue
        rows.append(row)
    return rows


def by_confidence(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the most confident mistake first (ties in split order)."""
    return sorted(rows, key=lambda r: -r["confidence"])


def misses_text(row: dict[str, Any]) -> str:
    """``"swag-attentive → D) red (91%)"``, one line per variant that missed the example."""
    return "; ".join(f"{m['variant']} → {m['predicted']} ({m['confidence']:.0%})" for m in row["misses"])


def confusion_counts(
    records: list[dict[str, Any]], variants: list[str], family: str = ALL_FAMILIES
) -> np.ndarray:
    """``int[K, K]``: how often the selected variants chose position ``j`` (column) when gold was ``i`` (row).

    K is the largest option count among the records; every (example, selected variant) pair counts once.
    """
    chosen = [r for r in labelled(records) if family in (ALL_FAMILIES, None, "") or family_of(r) == family]
    k = max((len(r.get("options") or []) for r in chosen), default=0)
    counts = np.zeros((k, k), dtype=np.int64)
    for record in chosen:
        for name in variants:
            prediction = record["variants"].get(name)
            if prediction is not None and prediction.get("choice") is not None:
                counts[record["gold"], prediction["choice"]] += 1
    return counts


def export_lines(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """CSV lines (header first): one line per (example, variant that missed it) with the option texts."""
    lines: list[list[Any]] = [EXPORT_COLUMNS]
    for row in rows:
        for miss in row["misses"]:
            choice = miss["choice"]
            options = row["options"]
            lines.append(
                [
                    row["#"],
                    row["file_name"],
                    row["family"],
                    row["question"],
                    " | ".join(options),
                    letter(row["gold_index"]),
                    options[row["gold_index"]],
                    miss["variant"],
                    letter(choice),
                    options[choice] if 0 <= choice < len(options) else "",
                    round(miss["confidence"], 4),
                ]
            )
    return lines


def write_csv(rows: list[dict[str, Any]], folder: Path) -> Path:
    """The rows as CSV in ``folder``; the name is a hash of the content, so sessions never clash."""
    lines = export_lines(rows)
    digest = hashlib.sha256(repr(lines).encode()).hexdigest()[:12]
    path = folder / f"mispredictions-{digest}.csv"
    if not path.exists():
        partial = path.with_suffix(".tmp")
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(csv_row(line) for line in lines)
        partial.replace(path)
    return path
