"""The Brier score, added as one METRICS entry: computed by the runner, copied into comparison.json,
shown in the Compare tab's table and in ``compare_runs``, with no other edit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_evaluation import FirstOptionPredictor, make_split
from training.compare import build_comparison
from vqa_demo.evaluation.run_report import report
from vqa_demo.evaluation.runner import evaluate
from vqa_demo.evaluation.saved_runs import load_runs
from vqa_demo.ui import AppConfig
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.tabs.compare import comparison_data, summary_markdown


def test_brier_score_from_the_runner_to_every_reader(tmp_path):
    split = make_split(tmp_path)
    result = evaluate(FirstOptionPredictor(), split, progress=False)
    # FirstOptionPredictor: probabilities softmax([1, 0, 0, 0]) on every question; gold is i % 4.
    p = np.exp([1.0, 0, 0, 0]) / np.exp([1.0, 0, 0, 0]).sum()
    by_hand = np.mean([np.sum((p - np.eye(4)[i % 4]) ** 2) for i in range(len(split))])
    assert result.metrics["variants"]["biased"]["brier"] == pytest.approx(by_hand)
    comparison = build_comparison({}, tmp_path, result.metrics, {"biased": {"seconds": 1.0}})
    assert comparison["variants"]["biased"]["brier"] == pytest.approx(by_hand)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "comparison.json").write_text(json.dumps(comparison))
    shown = f"{by_hand:.3f}"
    assets = AppAssets.load(AppConfig(assets=tmp_path / "run"))
    rows = summary_markdown(comparison_data(assets), []).splitlines()
    assert "Brier score" in rows[2] and shown in rows[-1]
    runs, notes = load_runs([tmp_path / "run"])
    assert (
        f"## Brier score\n\n| variant | run (scripted stand-in) |\n|---|---|\n| biased | {shown} |"
        in report(runs, notes)
    )


def test_a_brier_score_off_its_range_is_named():
    from vqa_demo.evaluation.records import VariantEntry

    with pytest.raises(ValueError, match="'variants.v.brier' must be a number from 0 to 2"):
        VariantEntry.from_json({"brier": 3.5}, "variants.v.")
