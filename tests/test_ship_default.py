"""training.ship_default's steps without a training run: run configs edited through RunConfig, the
examples listing the Ask tab shows, and one source for the Compare tab's figures."""

from __future__ import annotations

import json

from training.ship_default import SHIPPED_BASE, point_at_shipped_base, ship_predictions, write_examples
from training.synthetic import generate_split
from vqa_demo.checkpoints import read_run_config
from vqa_demo.config import BackboneConfig, HeadConfig, LoraSettings, RunConfig
from vqa_demo.data.splits import load_split
from vqa_demo.ui import AppConfig
from vqa_demo.ui.assets import AppAssets


def test_the_shipped_run_config_changes_only_the_base_source(tmp_path):
    original = RunConfig(
        head=HeadConfig(head="swag", pooling="attentive"),
        backbone=BackboneConfig(source=str(tmp_path / "runs" / "base"), dtype="float32"),
        lora=LoraSettings(r=4, alpha=8),
        base_fingerprint="abc123",
        metrics={"val_accuracy": 0.5, "step": 7},
    )
    (tmp_path / "run_config.json").write_text(json.dumps(original.to_dict()))
    point_at_shipped_base(tmp_path)
    shipped = read_run_config(tmp_path)
    assert shipped.backbone.source == SHIPPED_BASE
    shipped.backbone.source = original.backbone.source
    assert shipped == original


def test_every_family_is_listed_and_the_app_offers_exactly_the_listing(tmp_path):
    split_dir = tmp_path / "assets" / "validation"
    generate_split(split_dir, 30, 0, "validation", image_size=64)
    split = load_split(split_dir)
    families = {ex.metadata["family"] for ex in split}
    listing = write_examples(split, tmp_path / "assets" / "examples", per_family=2)
    assert {e["family"] for e in listing} == families and len(listing) == 2 * len(families)
    assets = AppAssets.load(AppConfig(assets=tmp_path / "assets"))
    assert [(e.image_path.name, e.question, e.options) for e in assets.examples] == [
        (e["image"], e["question"], e["options"]) for e in listing
    ]
    assert {e.caption.split(":")[0] for e in assets.examples} == families


def test_only_the_predictions_ship_from_the_evaluation(tmp_path):
    evaluation = tmp_path / "cmp" / "evaluation"
    evaluation.mkdir(parents=True)
    (evaluation / "predictions.jsonl").write_text('{"index": 0}\n')
    (evaluation / "metrics.json").write_text("{}")
    stale = tmp_path / "assets" / "evaluation"
    stale.mkdir(parents=True)
    (stale / "metrics.json").write_text("{}")
    ship_predictions(tmp_path / "cmp", tmp_path / "assets")
    assert sorted(p.name for p in stale.iterdir()) == ["predictions.jsonl"]
