"""The shipped offline default is complete, small, and consistent with its own evaluation files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vqa_demo.config import VARIANTS
from vqa_demo.data.splits import load_split
from vqa_demo.evaluation.record_files import read_predictions
from vqa_demo.loading import ASSETS_DIR, load_predictor

pytestmark = pytest.mark.skipif(
    not (ASSETS_DIR / "checkpoints").is_dir(), reason="no shipped default in assets/"
)


def test_every_file_is_small_and_no_pickles():
    files = [p for p in ASSETS_DIR.rglob("*") if p.is_file()]
    assert all(p.stat().st_size < 10 * 1024 * 1024 for p in files)
    assert not [p for p in files if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".ckpt"}]


def test_default_loads_offline_and_reproduces_its_evaluation(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    predictor = load_predictor()
    assert sorted(predictor.variants) == sorted(VARIANTS)
    split = load_split(ASSETS_DIR / "validation")
    records = read_predictions(ASSETS_DIR / "evaluation" / "predictions.jsonl")
    assert [r["file_name"] for r in records] == [ex.file_name for ex in split]
    picked = [0, 1, len(split) - 1]
    live = predictor.predict_batch(
        [split[i].load_image() for i in picked],
        [split[i].question for i in picked],
        [list(split[i].options) for i in picked],
    )
    for i, result in zip(picked, live):
        for name, prediction in result.items():
            stored = records[i]["variants"][name]
            assert prediction.choice == stored["choice"]
            np.testing.assert_allclose(prediction.option_scores, stored["option_scores"], atol=1e-4)
    # comparison.json (the one source of the app's figures) counts what predictions.jsonl holds.
    comparison = json.loads((ASSETS_DIR / "comparison.json").read_text())
    for name in VARIANTS:
        entry = comparison["variants"][name]
        right = [r["variants"][name]["choice"] == r["gold"] for r in records]
        assert (entry["accuracy"]["correct"], entry["accuracy"]["n"]) == (sum(right), len(records))
        for family, counts in entry["by_family"].items():
            mine = [ok for ok, r in zip(right, records) if r["metadata"]["family"] == family]
            assert (counts["correct"], counts["n"]) == (sum(mine), len(mine))
