"""The Errors tab's data on hand-made records and on the shipped evaluation (no model, no server)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from vqa_demo.evaluation.chance import chance_level, is_chance_level
from vqa_demo.evaluation.record_files import read_predictions
from vqa_demo.ui.tabs.error_data import (
    MISSED_BY_ALL,
    ErrorFilter,
    by_confidence,
    chance_variants,
    confusion_counts,
    default_variants,
    error_examples,
    misses_text,
    variant_accuracy,
    write_csv,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
THREE = ("cond_gen", "multi_class-last_token", "swag-attentive")


def record(index, gold, choices, confidences, family="table"):
    return {
        "index": index,
        "file_name": f"img_{index}.png",
        "question": f"question {index}?",
        "options": ["w", "x", "y", "z"],
        "gold": gold,
        "metadata": {"family": family},
        "variants": {
            name: {"choice": c, "confidence": p, "probabilities": [p, 1 - p, 0, 0]}
            for name, c, p in zip(THREE, choices, confidences)
        },
    }


RECORDS = [
    record(0, 0, [1, 2, 1], [0.9, 0.3, 0.6], "table"),  # all wrong; the two good heads agree
    record(1, 2, [2, 0, 3], [0.8, 0.3, 0.4], "clock"),  # cond_gen right
    record(2, 1, [1, 3, 1], [0.7, 0.3, 0.7], "table"),  # only the guessing head wrong
    record(3, 3, [3, 3, 3], [0.7, 0.3, 0.7], "clock"),  # all right
]


def indices(rows):
    return [r["#"] for r in rows]


def test_one_row_per_example_with_option_texts():
    rows = error_examples(RECORDS, ErrorFilter(THREE))
    assert indices(rows) == [0, 1, 2]
    first = rows[0]
    assert first["gold"] == "A) w" and first["missed_by"] == 3 and first["of"] == 3
    assert [(m["variant"], m["predicted"]) for m in first["misses"]] == [
        ("cond_gen", "B) x"),
        ("multi_class-last_token", "C) y"),
        ("swag-attentive", "B) x"),
    ]
    assert misses_text(first).startswith("cond_gen → B) x (90%)")


def test_disagree_is_computed_among_the_selected_variants_only():
    good = ("cond_gen", "swag-attentive")
    # With the guessing head selected every example with a mistake "disagrees"...
    assert indices(error_examples(RECORDS, ErrorFilter(THREE, disagree_only=True))) == [0, 1, 2]
    # ...without it, #0 (both chose x) is an agreed mistake and #2 is no mistake at all.
    assert indices(error_examples(RECORDS, ErrorFilter(good))) == [0, 1]
    assert indices(error_examples(RECORDS, ErrorFilter(good, disagree_only=True))) == [1]


def test_family_position_confidence_and_missed_by_all():
    assert indices(error_examples(RECORDS, ErrorFilter(THREE, family="clock"))) == [1]
    assert indices(error_examples(RECORDS, ErrorFilter(THREE, position="B"))) == [2]
    # The range applies to the wrong answers' confidence: #2's only mistake has 0.3.
    assert indices(error_examples(RECORDS, ErrorFilter(THREE, confidence=(0.5, 1.0)))) == [0]
    assert indices(error_examples(RECORDS, ErrorFilter(THREE, confidence=(1.0, 0.35)))) == [0, 1]
    assert indices(error_examples(RECORDS, ErrorFilter(THREE, missed_by=MISSED_BY_ALL))) == [0]
    assert error_examples(RECORDS, ErrorFilter(())) == []


def test_gallery_order_and_csv_export(tmp_path):
    rows = error_examples(RECORDS, ErrorFilter(THREE))
    assert indices(by_confidence(rows)) == [0, 1, 2]
    assert indices(by_confidence(error_examples(RECORDS, ErrorFilter(("multi_class-last_token",))))) == [
        0,
        1,
        2,
    ]
    exported = list(csv.DictReader(io.StringIO(write_csv(rows, tmp_path).read_text())))
    assert len(exported) == sum(len(r["misses"]) for r in rows) == 6
    assert (exported[0]["gold_text"], exported[0]["predicted_text"], exported[0]["variant"]) == (
        "w",
        "x",
        "cond_gen",
    )
    assert write_csv(rows, tmp_path) == write_csv(rows, tmp_path)  # same rows, same file


def test_confusion_counts_match_sklearn():
    names = ["cond_gen", "swag-attentive"]
    gold = [r["gold"] for r in RECORDS for _ in names]
    chosen = [r["variants"][n]["choice"] for r in RECORDS for n in names]
    expected = confusion_matrix(gold, chosen, labels=range(4))
    assert np.array_equal(confusion_counts(RECORDS, names), expected)
    assert confusion_counts(RECORDS, names, family="clock").sum() == 4


def test_chance_helpers():
    assert chance_level(4) == 0.25
    # The exact test: 83 and 90 of 300 cannot be told from 0.25 (p 0.29 and 0.053), 100 of 300 can.
    assert is_chance_level({"correct": 83, "n": 300}, 0.25) and is_chance_level(
        {"correct": 90, "n": 300}, 0.25
    )
    assert not is_chance_level({"correct": 100, "n": 300}, 0.25)
    assert is_chance_level({"accuracy": 0.3, "n": 300}, 0.25)
    with pytest.raises(ValueError):
        chance_level(0)


@pytest.fixture(scope="module")
def shipped():
    return read_predictions(ASSETS / "evaluation" / "predictions.jsonl")


def test_shipped_accuracies_equal_the_comparison(shipped):
    comparison = json.loads((ASSETS / "comparison.json").read_text())
    accuracy = variant_accuracy(shipped)
    for name, stored in comparison["variants"].items():
        for key in ("accuracy", "low", "high", "n"):
            assert accuracy[name][key] == pytest.approx(stored["accuracy"][key])


def test_shipped_defaults_leave_out_the_chance_level_variant(shipped):
    assert chance_variants(shipped) == ["multi_class-last_token", "multi_class-attentive"]
    # zero_shot (the untrained base, a reference row) is browsable but not ticked at first.
    assert "zero_shot" in variant_accuracy(shipped)
    assert default_variants(shipped) == [
        "cond_gen",
        "swag-last_token",
        "swag-attentive",
    ]
    everything = error_examples(shipped, ErrorFilter(tuple(variant_accuracy(shipped))))
    strong = ("cond_gen", "swag-last_token", "swag-attentive")
    focused = error_examples(shipped, ErrorFilter(strong, disagree_only=True))
    assert len(everything) <= len(shipped) == 300
    assert len(focused) < len(error_examples(shipped, ErrorFilter(strong))) < len(everything)
