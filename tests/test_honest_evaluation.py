"""Selection split, temperature scaling, position readings and PriDe, zero-shot rows (issue 24)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import OPTIONS, QUESTIONS
from tests.scripted_predictor import ScriptedPredictor
from training.selection import carve_selection, carved_split, selection_for, selection_size
from vqa_demo.data.splits import load_split
from vqa_demo.data.writers import write_metadata
from vqa_demo.evaluation.calibration import (
    SERVED,
    calibration_report,
    definition_logits,
    fit_temperature,
    shares,
)
from vqa_demo.evaluation.position import position_prior, position_reading, pride_metrics
from vqa_demo.evaluation.runner import evaluate, variant_metrics
from vqa_demo.evaluation.selection_report import ZERO_SHOT, best_rule, chosen_rule, variant_report
from vqa_demo.explain.attribution import attribute
from vqa_demo.model.head_traits import HeadTraits
from vqa_demo.predictor import VariantPrediction, softmax_np
from vqa_demo.ui.tabs.compare_selection import (
    calibration_table,
    position_table,
    rules_table,
    split_note,
    zero_shot_table,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets"


class PositionBiasedPredictor(ScriptedPredictor):
    """Knows each question's gold text (content score 1) but adds 2 to whatever is shown first: it
    answers by position, and a position prior divided out leaves the content."""

    def __init__(self, gold_text: dict[str, str], bias: float = 2.0):
        super().__init__()
        self.gold_text, self.bias = gold_text, bias

    def predict_batch(self, images, questions, options, variants=None):
        results = []
        for question, opts in zip(questions, options):
            scores = np.array([float(o == self.gold_text[question]) for o in opts])
            scores[0] += self.bias
            results.append(
                {"biased": VariantPrediction("biased", scores, softmax_np(scores), int(np.argmax(scores)))}
            )
        return results


def make_split(root: Path, n: int, offset: int = 0):
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(offset, offset + n):
        Image.new("RGB", (8, 8), (i % 255, 0, 0)).save(root / f"img_{i}.png")
        row = {"file_name": f"img_{i}.png", "question": f"q{i}?", "answer": i % 4 + 1}
        row.update({f"option{k + 1}": f"opt{k}-{i}" for k in range(4)})
        rows.append(row)
    write_metadata(root, rows)
    return load_split(root)


def gold_texts(*splits) -> dict[str, str]:
    return {ex.question: ex.options[ex.answer_index] for split in splits for ex in split}


def test_pride_divides_out_the_position_prior_and_the_reading_says_position(tmp_path):
    selection, held_out = make_split(tmp_path / "sel", 8), make_split(tmp_path / "test", 12, offset=100)
    predictor = PositionBiasedPredictor(gold_texts(selection, held_out))
    chosen = evaluate(predictor, selection, circular=True, progress=False)
    result = evaluate(predictor, held_out, circular=True, progress=False)
    metrics = result.metrics["variants"]["biased"]
    assert metrics["accuracy"]["accuracy"] == 0.25 and metrics["circular"]["circular_accuracy"] == 0.0
    prior = position_prior(chosen.records, "biased")
    # Position A gets e^2 times the weight of the others.
    np.testing.assert_allclose(prior, softmax_np(np.array([2.0, 0.0, 0.0, 0.0])), atol=1e-9)
    pride = pride_metrics(result.records, "biased", prior)
    assert pride["accuracy"]["accuracy"] == 1.0 and pride["circular_accuracy"] == 1.0
    reading = position_reading(metrics["position_bias"], metrics["circular"])
    assert reading == "answers by position: circular accuracy 0.00, picks A 100% of the time"
    report = variant_report("biased", (chosen.metrics, chosen.records), (result.metrics, result.records))
    assert report["position_reading"] == reading and report["pride"]["accuracy"]["accuracy"] == 1.0
    assert report["selection_accuracy"]["accuracy"] == 0.25 and "decision_rules" not in report
    # A content-driven model (no bias) reads the other way.
    fair = PositionBiasedPredictor(gold_texts(held_out), bias=0.0)
    fair_metrics = evaluate(fair, held_out, circular=True, progress=False).metrics["variants"]["biased"]
    reading = position_reading(fair_metrics["position_bias"], fair_metrics["circular"])
    assert reading.startswith("answers by content: circular accuracy 1.00")


def test_reading_without_a_circular_evaluation_still_names_the_position():
    bias = {"predicted_position_rate": [0.53, 0.2, 0.17, 0.1], "uniformity_p_value": 1e-5}
    assert position_reading(bias, None).startswith("picks A 53% of the time (positions chosen unevenly")
    assert position_reading(None, None) == "no position figures recorded"


def test_temperature_fit_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 4))
    true_t = 2.5
    probabilities = shares(logits, true_t)
    gold = np.array([rng.choice(4, p=p) for p in probabilities])
    assert fit_temperature(logits, gold) == pytest.approx(true_t, rel=0.1)
    assert fit_temperature(np.zeros((0, 4)), np.zeros(0, int)) == 1.0


def cond_gen_records(rng, n, scale):
    """Records of a COND_GEN variant whose summed log-likelihoods are ``scale`` times too sharp."""
    records = []
    for _ in range(n):
        logits = rng.normal(0, 1, 4)
        gold = int(rng.choice(4, p=softmax_np(logits)))
        loglik_sum = logits * scale
        stored = {
            "choice": int(np.argmax(loglik_sum)),
            "probabilities": softmax_np(loglik_sum / 4).tolist(),  # served: per-token mean, 4 tokens
            "loglik_sum": loglik_sum.tolist(),
            "loglik_mean": (loglik_sum / 4).tolist(),
            "cosine": (logits / 40).tolist(),
        }
        records.append({"gold": gold, "options": list("abcd"), "variants": {"cond_gen": stored}})
    return records


def test_calibration_report_fits_each_definition_on_selection_and_measures_held_out():
    rng = np.random.default_rng(1)
    selection, held_out = cond_gen_records(rng, 3000, 3.0), cond_gen_records(rng, 3000, 3.0)
    logits = definition_logits(held_out, "cond_gen")
    # records written before loglik_char existed have no such definition
    assert set(logits) == {SERVED, "loglik_sum", "loglik_mean", "cosine"}
    report = calibration_report(selection, held_out, "cond_gen")
    assert report["loglik_sum"]["temperature"] == pytest.approx(3.0, rel=0.1)
    assert report[SERVED]["temperature"] == pytest.approx(0.75, rel=0.1)  # the mean is 4x too flat
    for figures in report.values():
        assert figures["ece_after"] < figures["ece_before"]
        assert figures["ece_after"] < 0.03
    assert report["loglik_sum"]["mean_probability_before"] > report["loglik_sum"]["mean_probability_after"]
    table = calibration_table({"variants": {"cond_gen": {"calibration": report}}})
    assert len(table) == 4 and table.iloc[0]["probabilities"] == "score share as served"


def test_old_records_without_the_per_character_score_still_summarize():
    rng = np.random.default_rng(2)
    records = cond_gen_records(rng, 20, 1.0)
    for r in records:
        r["metadata"] = {}
        r["variants"]["cond_gen"].update(
            confidence=max(r["variants"]["cond_gen"]["probabilities"]), truncated=False
        )
        r["variants"]["cond_gen"]["correct"] = r["variants"]["cond_gen"]["choice"] == r["gold"]
        r["variants"]["cond_gen"]["generated_text"] = "a"
    metrics = variant_metrics(records, "cond_gen", HeadTraits(generates_text=True))
    assert set(metrics["scoring_accuracy"]) == {"loglik_mean", "loglik_sum", "cosine"}


def test_best_rule_takes_the_most_accurate_and_breaks_ties_in_rule_order():
    accuracy = {
        "loglik_mean": {"accuracy": 0.6},
        "loglik_sum": {"accuracy": 0.7},
        "cosine": {"accuracy": 0.7},
    }
    assert best_rule(accuracy) == "loglik_sum"
    assert best_rule({"loglik_mean": {"accuracy": 0.5}, "loglik_char": {"accuracy": 0.5}}) == "loglik_mean"


def rule_records(sum_right: int, mean_right: int, n: int = 60) -> list[dict]:
    """``n`` records where ``loglik_sum`` picks the gold in the first ``sum_right``, ``loglik_mean`` in the first ``mean_right``."""
    records = []
    for i in range(n):
        right, wrong = [0.0, -1.0], [-1.0, 0.0]
        stored = {
            "loglik_sum": right if i < sum_right else wrong,
            "loglik_mean": right if i < mean_right else wrong,
        }
        records.append({"gold": 0, "options": ["a", "b"], "variants": {"cond_gen": stored}})
    return records


def test_another_rule_replaces_the_default_only_when_mcnemar_calls_it_better():
    assert chosen_rule(rule_records(50, 30), "cond_gen", "loglik_mean") == "loglik_sum"  # 20 vs 0 discordant
    assert chosen_rule(rule_records(33, 30), "cond_gen", "loglik_mean") == "loglik_mean"  # 3 vs 0: noise
    assert chosen_rule(rule_records(30, 50), "cond_gen", "loglik_mean") == "loglik_mean"


def test_carved_selection_is_seeded_disjoint_and_in_file_order(tmp_path):
    train = make_split(tmp_path / "train", 40)
    rest, selection = carve_selection(train, selection_size(len(train)), seed=3)
    assert len(selection) == 8 and len(rest) == 32  # at most a fifth of train
    ids = [ex.id for ex in selection]
    assert not set(ids) & {ex.id for ex in rest}
    order = [ex.id for ex in train]
    assert ids == sorted(ids, key=order.index)
    again, description = selection_for(train, None, 300, seed=3)[1:]
    assert [ex.id for ex in again] == ids and description["ids"] == ids
    assert [ex.id for ex in carved_split(train, description)] == ids
    assert [ex.id for ex in carve_selection(train, 8, seed=4)[1]] != ids
    assert selection_size(1) == 0 and selection_size(5000) == 300
    explicit = make_split(tmp_path / "chosen", 4, offset=50)
    kept, chosen, description = selection_for(train, str(tmp_path / "chosen"), 300, seed=3)
    assert (
        len(kept) == 40 and len(chosen) == 4 and description == {"source": str(tmp_path / "chosen"), "n": 4}
    )
    with pytest.raises(SystemExit, match="--selection-split"):
        selection_for(make_split(tmp_path / "one", 1), None, 300, seed=0)
    assert explicit.name == "chosen"


def test_compare_section_reads_zero_shot_rules_and_old_files():
    comparison = {
        "split": "validation",
        "n": 100,
        "selection_split": {"source": "carved from train", "n": 50, "seed": 0},
        "variants": {
            "cond_gen": {
                "accuracy": {"accuracy": 0.7, "low": 0.6, "high": 0.78, "n": 100, "correct": 70},
                "decision_rules": {
                    "rules": {
                        "loglik_sum": {
                            "selection_accuracy": {"accuracy": 0.7},
                            "accuracy": {"accuracy": 0.7},
                        },
                        "loglik_mean": {
                            "selection_accuracy": {"accuracy": 0.6},
                            "accuracy": {"accuracy": 0.65},
                        },
                    },
                    "used": "loglik_sum",
                    "best_on_selection": "loglik_sum",
                },
            },
            "multi_class-last_token": {
                "accuracy": {"accuracy": 0.26, "low": 0.18, "high": 0.35, "n": 100, "correct": 26},
                "position_reading": "answers by position: circular accuracy 0.00, picks A 53% of the time",
            },
            ZERO_SHOT: {"accuracy": {"accuracy": 0.5, "low": 0.4, "high": 0.6, "n": 100, "correct": 50}},
        },
        "mcnemar": {
            f"cond_gen vs {ZERO_SHOT}": {"b": 25, "c": 5, "p_value": 0.0003},
            f"multi_class-last_token vs {ZERO_SHOT}": {"b": 10, "c": 34, "p_value": 0.0004},
            "cond_gen vs multi_class-last_token": {"b": 50, "c": 6, "p_value": 1e-9},
        },
    }
    zero = zero_shot_table(comparison)
    assert list(zero["trained variant"]) == ["cond_gen", "multi_class-last_token"]
    assert list(zero["reading"]) == ["fine-tuning helped", "fine-tuning hurt"]
    assert list(zero["only trained right"]) == [25, 10]
    positions = position_table(comparison, 0.25)
    row = positions[positions["variant"] == "multi_class-last_token"].iloc[0]
    assert row["vs chance"] == "chance level" and row["reading"].startswith("answers by position")
    rules = rules_table(comparison)
    assert list(rules["in use"]) == ["in use, best on selection", ""]
    assert "selection split** (50 questions, carved from train, seed 0)" in split_note(comparison)
    # The comparison shipped before the selection split lacks these keys: every part still renders, with plain notes.
    old = json.loads((Path(__file__).parent / "data" / "comparison_before_selection_split.json").read_text())
    assert "no selection split" in split_note(old)
    assert zero_shot_table(old).empty and rules_table(old).empty and calibration_table(old).empty
    assert len(position_table(old, 0.25)) == len(old["variants"])


@pytest.mark.parametrize("rule", ["loglik_sum", "loglik_char"])
def test_explain_attributes_the_score_of_the_rule_that_decided(tiny_predictor, images, rule):
    """Under each decision rule the attributed score at the input is the rule's own option score."""
    variant = tiny_predictor.variants["cond_gen"]
    original = variant.config
    variant.config = replace(original, head=replace(original.head, cond_gen_scoring=rule))
    try:
        predictions = tiny_predictor.predict_batch(images, QUESTIONS, OPTIONS, ["cond_gen"])
        attributions = attribute(tiny_predictor, images, QUESTIONS, OPTIONS, "cond_gen", n_steps=2)
    finally:
        variant.config = original
    for prediction, result in zip(predictions, attributions):
        p = prediction["cond_gen"]
        assert p.option_scores[p.choice] == p.cond_gen.score(rule)[p.choice]
        assert result.score == pytest.approx(float(p.option_scores[p.choice]), abs=1e-4)
        assert result.score_rule == rule
    # per character: the summed log-likelihood over the option text's length
    chars = np.array([len(text) for text in OPTIONS[len(images) - 1]])
    np.testing.assert_allclose(p.cond_gen.loglik_sum / chars, p.cond_gen.loglik_char, rtol=1e-6)
