"""The evaluation layer on top of the predictor: bias detection, circular accuracy, file formats."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from tests.scripted_predictor import ScriptedPredictor
from vqa_demo.data.splits import load_split
from vqa_demo.data.writers import write_metadata
from vqa_demo.evaluation.record_files import read_predictions
from vqa_demo.evaluation.runner import evaluate, write_evaluation
from vqa_demo.predictor import VariantPrediction, softmax_np
from vqa_demo.testing import make_tiny_predictor


class FirstOptionPredictor(ScriptedPredictor):
    """Always answers whatever option is shown first: a maximally position-biased model."""

    def predict_batch(self, images, questions, options, variants=None):
        results = []
        for opts in options:
            scores = np.array([1.0] + [0.0] * (len(opts) - 1))
            results.append({"biased": VariantPrediction("biased", scores, softmax_np(scores), 0)})
        return results


def make_split(root, n=8, labeled=True, names=None):
    rows = []
    for i in range(n):
        name = names[i] if names else f"img_{i}.png"
        Image.new("RGB", (16, 16), (30 * i % 255, 0, 0)).save(root / name)
        row = {"file_name": name, "question": f"q{i}?", "family": "shapes" if i % 2 else "table"}
        row.update({f"option{k + 1}": f"opt{k}-{i}" for k in range(4)})
        if labeled:
            row["answer"] = i % 4 + 1
        rows.append(row)
    write_metadata(root, rows)
    return load_split(root)


def test_position_bias_and_circular_accuracy_catch_a_biased_model(tmp_path):
    split = make_split(tmp_path)
    result = evaluate(FirstOptionPredictor(), split, circular=True, progress=False)
    m = result.metrics["variants"]["biased"]
    assert m["accuracy"]["accuracy"] == 0.25  # right only when gold happens to be A
    bias = m["position_bias"]
    assert [p["accuracy"] for p in bias["accuracy_by_gold_position"]] == [1.0, 0.0, 0.0, 0.0]
    assert bias["predicted_position_rate"] == [1.0, 0.0, 0.0, 0.0]
    assert bias["uniformity_p_value"] < 0.01
    assert m["circular"]["circular_accuracy"] == 0.0
    # Under rotation r the first shown option is original index (0 - r) % 4.
    assert result.records[0]["variants"]["biased"]["circular_choices"] == [0, 3, 2, 1]
    assert set(m["by_metadata"]["family"]) == {"shapes", "table"}


def test_unlabeled_split_writes_submission_in_metadata_order(tmp_path):
    names = ["zeta.png", "alpha.png", "mid.png", "beta.png"]
    data = tmp_path / "data"
    data.mkdir()
    split = make_split(data, n=4, labeled=False, names=names)
    result = evaluate(FirstOptionPredictor(), split, progress=False)
    assert result.metrics["labeled"] is False
    write_evaluation(result, tmp_path / "out", split)
    with open(tmp_path / "out" / "submission_biased.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file_name"] for r in rows] == names
    assert [r["answer"] for r in rows] == ["1"] * 4


@pytest.mark.slow
def test_tiny_model_evaluation_files_round_trip(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    split = make_split(data, n=6)
    predictor = make_tiny_predictor()
    result = evaluate(predictor, split, batch_size=4, progress=False)
    write_evaluation(result, tmp_path / "out", split)
    records = read_predictions(tmp_path / "out" / "predictions.jsonl")
    assert records == json.loads(json.dumps(result.records))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics["variants"]) == set(predictor.variants)
    cg = metrics["variants"]["cond_gen"]
    assert set(cg["scoring_accuracy"]) == {"loglik_mean", "loglik_sum", "loglik_char", "cosine"}
    assert {"exact_match", "token_f1", "rouge_l"} <= set(cg["text_metrics"])
    # Records agree with a direct predict call on the same item: one code path.
    direct = predictor.predict(split[2].load_image(), split[2].question, list(split[2].options))
    for name, prediction in direct.items():
        np.testing.assert_allclose(
            records[2]["variants"][name]["option_scores"], prediction.option_scores, atol=1e-5
        )
    assert len(metrics["mcnemar"]) == 10
