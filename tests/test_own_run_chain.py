"""Your own run end to end, as the README's "Bring your own data" runs it: a ``datasets`` folder in the
A-OKVQA schema -> training.compare on a tiny base saved to disk -> the run folder moves -> evaluate
from another directory -> the app serves the moved run with its own figures."""

from __future__ import annotations

import json
import shutil

import datasets
import numpy as np
import pytest
from PIL import Image

from training.compare import main as compare_main
from training.compare import parse_args as compare_args
from vqa_demo.evaluate import main as evaluate_main
from vqa_demo.evaluate import parse_args as evaluate_args
from vqa_demo.model.backbone import build_tiny_backbone, save_backbone
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.model_card import card_markdown

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def aokvqa_split(n: int, seed: int, labeled: bool = True) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    rows = {"image": [], "question_id": [], "question": [], "choices": [], "correct_choice_idx": []}
    for i in range(n):
        gold = int(rng.integers(4))
        rows["image"].append(Image.new("RGB", (24, 24), COLOURS[names[gold]]))
        rows["question_id"].append(f"{seed}-{i:03d}")
        rows["question"].append("What colour is the picture?")
        rows["choices"].append(names)
        rows["correct_choice_idx"].append(gold if labeled else None)
    return datasets.Dataset.from_dict(rows)


@pytest.mark.slow  # a training chain end to end
def test_datasets_folder_to_moved_run_to_app(tmp_path, monkeypatch):
    project = tmp_path / "project"
    data = project / "data" / "aokvqa"
    datasets.DatasetDict(
        {"train": aokvqa_split(24, 1), "val": aokvqa_split(10, 2), "test": aokvqa_split(5, 3, labeled=False)}
    ).save_to_disk(str(data))
    save_backbone(build_tiny_backbone(), project / "base")
    monkeypatch.chdir(project)
    out = "runs/compare"
    # an absolute --base: peft looks a relative one up on the hub when saving (a warning, and a network try)
    args = ["--base", str(project / "base"), "--data", "data/aokvqa", "--out", out, "--smoke"]
    comparison = compare_main(*compare_args([*args, "--variants", "cond_gen", "swag-attentive"]))
    assert set(comparison["variants"]) >= {"cond_gen", "swag-attentive"} and comparison["n"] == 10
    config = json.loads((project / out / "cond_gen" / "best" / "run_config.json").read_text())
    assert config["backbone"]["source"] == str(project / "base") and config["base_hash"].startswith("sha256:")

    moved = tmp_path / "elsewhere" / "my-run"
    shutil.move(project / "runs" / "compare", moved)
    other = tmp_path / "other-cwd"
    other.mkdir()
    monkeypatch.chdir(other)
    metrics = evaluate_main(
        evaluate_args(["--checkpoints", str(moved), "--data", str(data), "--split", "test", "--out", "eval"])
    )
    assert metrics["n"] == 5
    submission = (other / "eval" / "submission_cond_gen.csv").read_text().splitlines()
    assert submission[0] == "question_id,answer" and [r.split(",")[0] for r in submission[1:]] == [
        f"3-{i:03d}" for i in range(5)
    ]

    demo = build_demo(AppConfig.from_args(["--checkpoints", str(moved)], environ={}))
    card, assets = demo.vqa_card, demo.vqa_assets
    assert assets.config.assets == moved.resolve()
    saved = json.loads((moved / "comparison.json").read_text())
    for name, standing in card.standings.items():
        assert standing.accuracy == saved["variants"][name]["accuracy"]["accuracy"], name
        assert standing.n == 10
    text = card_markdown(card)
    assert "synthetic" not in text and "real photographs" not in text and "n = 10" in text
    assert not card.offline_default and "data/aokvqa" in text
    assert len(assets.validation) == 10 and all(
        assets.validation_image(r["file_name"]) is not None for r in assets.records
    )

    # Packaged for a Space: the package serves the same figures, and finds its copied base by name + hash.
    from training.package_space import cli as package_cli
    from vqa_demo.loading import resolve_base

    package = package_cli(["--run", str(moved), "--out", str(tmp_path / "space" / "run")])
    shutil.move(project / "base", tmp_path / "base-moved-away")
    assert resolve_base(None, package / "cond_gen" / "best") == str(package / "base")
    space = build_demo(AppConfig.from_args(["--checkpoints", str(package)], environ={})).vqa_card
    assert {n: s.accuracy for n, s in space.standings.items()} == {
        n: s.accuracy for n, s in card.standings.items()
    }
