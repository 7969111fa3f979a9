"""training.compare: five variants, one evaluation, a comparison the app can read."""

from __future__ import annotations

import json

import pytest

from training.compare import main, parse_args
from training.ship_default import main as ship_main
from training.ship_default import parse_args as ship_args
from training.train import smoke_data
from vqa_demo.config import VARIANTS
from vqa_demo.data.splits import load_split
from vqa_demo.evaluation.record_files import read_predictions
from vqa_demo.evaluation.records import questions_fingerprint
from vqa_demo.evaluation.selection_report import ZERO_SHOT
from vqa_demo.loading import load_predictor
from vqa_demo.model.backbone import build_tiny_backbone, save_backbone


@pytest.mark.slow
def test_compare_smoke_writes_comparison_and_ships_as_assets(tmp_path):
    data = smoke_data(tmp_path, seed=0)
    base = save_backbone(build_tiny_backbone(), tmp_path / "base")
    cfg, variants = parse_args(
        ["--base", str(base), "--smoke", "--data", str(data), "--out", str(tmp_path / "cmp")]
    )
    assert variants is None
    comparison = main(cfg)
    on_disk = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert on_disk == json.loads(json.dumps(comparison))
    assert sorted(comparison["variants"]) == sorted([*VARIANTS, ZERO_SHOT])
    selection = json.loads((tmp_path / "cmp" / "evaluation_selection" / "metrics.json").read_text())
    for name, entry in comparison["variants"].items():
        assert (
            0.0
            <= entry["accuracy"]["low"]
            <= entry["accuracy"]["accuracy"]
            <= entry["accuracy"]["high"]
            <= 1.0
        )
        assert entry["by_family"], name
        assert entry["position_reading"] and entry["calibration"]["served"]["ece_after"] >= 0
        if name == ZERO_SHOT:
            continue  # no training: no curve, no checkpoint
        assert [r["step"] for r in entry["curve"] if "accuracy" in r] == [4, 8]
        # The selection-split evaluation of the best checkpoint reproduces the accuracy logged during
        # training (for COND_GEN under the rule it trained with; compare may then pick another).
        logged = json.loads((tmp_path / "cmp" / name / "best" / "run_config.json").read_text())["metrics"]
        chosen = selection["variants"][name]
        again = chosen["scoring_accuracy"]["loglik_mean"] if "decision_rules" in entry else chosen["accuracy"]
        assert entry["selection_accuracy"] == chosen["accuracy"] and again == logged["selection_accuracy"]
        assert "val_accuracy" not in logged
    records = read_predictions(tmp_path / "cmp" / "evaluation" / "predictions.jsonl")
    assert len(records) == comparison["n"] == 16
    assert all(sorted(r["variants"]) == sorted([*VARIANTS, ZERO_SHOT]) for r in records)
    # best/ was chosen on questions carved from train, never on the 16 reported ones
    assert comparison["split"] == "validation"
    assert comparison["selection_split"] == {"source": "carved from train", "n": 6, "seed": 0}
    carved = json.loads((tmp_path / "cmp" / "cond_gen" / "selection.json").read_text())["ids"]
    assert len(carved) == 6 and not set(carved) & {r["id"] for r in records}
    assert comparison["variants"][ZERO_SHOT]["training"].startswith("none: the base model with no adapter")
    assert {f"{name} vs {ZERO_SHOT}" for name in VARIANTS} <= set(comparison["mcnemar"])
    rules = comparison["variants"]["cond_gen"]["decision_rules"]
    assert set(rules["rules"]) == {"loglik_mean", "loglik_sum", "loglik_char", "cosine"}
    served = json.loads((tmp_path / "cmp" / "cond_gen" / "best" / "run_config.json").read_text())["head"]
    # six selection questions cannot call another rule better, so the trained rule stays
    assert served["cond_gen_scoring"] == rules["used"] == "loglik_mean"
    assert set(comparison["mcnemar"]) and comparison["agreement"]["variants"]
    # what the Compare tab needs to set this run beside runs on other backbones
    assert comparison["backbone"] == {"source": str(base), "family": "paligemma", "model": "PaliGemma 2"}
    assert comparison["questions"] == questions_fingerprint(records)
    assert (
        questions_fingerprint(records[::-1])
        == questions_fingerprint(records)
        != questions_fingerprint(records[1:])
    )

    assets = tmp_path / "assets"
    ship_main(
        ship_args(
            [
                "--compare",
                str(tmp_path / "cmp"),
                "--data",
                str(data),
                "--base",
                str(base),
                "--assets",
                str(assets),
            ]
        )
    )
    examples = json.loads((assets / "examples" / "examples.json").read_text())
    assert examples and all((assets / "examples" / e["image"]).is_file() for e in examples)
    shipped = json.loads((assets / "comparison.json").read_text())
    assert shipped["variants"]["cond_gen"]["checkpoint"] == "checkpoints/cond_gen"
    predictor = load_predictor(assets / "checkpoints")  # base resolved from run_config: "assets/base"
    assert sorted(predictor.variants) == sorted(VARIANTS)
    first = read_predictions(assets / "evaluation" / "predictions.jsonl")[0]
    example = load_split(assets / "validation")[0]
    live = predictor.predict(example.load_image(), example.question, list(example.options))
    for name, prediction in live.items():
        assert prediction.choice == first["variants"][name]["choice"]
