"""training.compare: five variants, one evaluation, a comparison the app can read."""

from __future__ import annotations

import json

import pytest

from training.compare import main, parse_args
from training.train import smoke_data
from vqa_demo.config import VARIANTS
from vqa_demo.evaluation import read_predictions


@pytest.mark.slow
def test_compare_smoke_writes_comparison_and_predictions(tmp_path):
    data = smoke_data(tmp_path, seed=0)
    cfg, variants = parse_args(
        ["--base", "tiny", "--smoke", "--data", str(data), "--out", str(tmp_path / "cmp")]
    )
    assert variants is None
    comparison = main(cfg)
    on_disk = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert on_disk == json.loads(json.dumps(comparison))
    assert sorted(comparison["variants"]) == sorted(VARIANTS)
    for name, entry in comparison["variants"].items():
        assert (
            0.0
            <= entry["accuracy"]["low"]
            <= entry["accuracy"]["accuracy"]
            <= entry["accuracy"]["high"]
            <= 1.0
        )
        assert entry["by_family"], name
        assert [r["step"] for r in entry["curve"] if "accuracy" in r] == [4, 8]
        # The joint evaluation of the best checkpoint reproduces the accuracy logged during training.
        logged = json.loads((tmp_path / "cmp" / name / "best" / "run_config.json").read_text())["metrics"]
        assert entry["accuracy"] == logged["val_accuracy"]
    records = read_predictions(tmp_path / "cmp" / "evaluation" / "predictions.jsonl")
    assert len(records) == comparison["n"] == 16
    assert all(sorted(r["variants"]) == sorted(VARIANTS) for r in records)
    assert set(comparison["mcnemar"]) and comparison["agreement"]["variants"]
