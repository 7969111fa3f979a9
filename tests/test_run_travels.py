"""A run travels: its checkpoints are found in any of its folders and its base resolves after moving."""

from __future__ import annotations

import json
import shutil

import pytest

from vqa_demo.base_ref import PACKAGE_PREFIX, PACKAGE_ROOT, content_hash, record_base, resolve_recorded_base
from vqa_demo.checkpoint_checks import CheckpointError
from vqa_demo.evaluation.saved_runs import load_run
from vqa_demo.loading import resolve_base
from vqa_demo.run_folders import find_checkpoints
from vqa_demo.testing import tiny_run_config


def fake_base(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "paligemma"}')
    (folder / "model.safetensors").write_bytes(b"\x01" * 3000)
    return folder


def write_config(folder, source, base_hash=None):
    config = tiny_run_config("cond_gen")
    config.backbone.source, config.base_hash = source, base_hash
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run_config.json").write_text(json.dumps(config.to_dict()))
    return folder


def test_every_run_folder_shape_gives_its_checkpoints(tmp_path):
    compare = tmp_path / "compare"
    for name in ("swag-attentive", "cond_gen"):
        write_config(compare / name / "best", "tiny")
        write_config(compare / name / "last", "tiny")
    (compare / "comparison.json").write_text("{}")
    assert find_checkpoints(compare) == [compare / "cond_gen" / "best", compare / "swag-attentive" / "best"]
    assert find_checkpoints(compare / "cond_gen") == [compare / "cond_gen" / "best"]
    assert find_checkpoints(compare / "cond_gen" / "best") == [compare / "cond_gen" / "best"]
    flat = tmp_path / "checkpoints"
    write_config(flat / "a", "tiny"), write_config(flat / "b", "tiny")
    assert find_checkpoints(flat) == [flat / "a", flat / "b"]
    with pytest.raises(
        CheckpointError, match=r"--checkpoints .*empty: no variant checkpoints .* training.compare"
    ):
        find_checkpoints((tmp_path / "empty").mkdir() or tmp_path / "empty")
    with pytest.raises(CheckpointError, match=r"no variant checkpoints \(no such folder\)"):
        find_checkpoints(tmp_path / "missing")


def test_a_local_base_is_recorded_absolute_with_its_hash_and_found_after_moving(tmp_path, monkeypatch):
    project = tmp_path / "project"
    fake_base(project / "bases" / "mybase")
    monkeypatch.chdir(project)
    source, base_hash = record_base("bases/mybase")
    assert source == str(project / "bases" / "mybase") and base_hash == content_hash(
        project / "bases" / "mybase"
    )
    run = write_config(project / "runs" / "r1" / "best", source, base_hash)
    monkeypatch.chdir(tmp_path)  # another working directory
    assert resolve_base(None, run) == source
    moved = tmp_path / "elsewhere"
    shutil.move(project / "runs", moved / "runs")
    shutil.move(project / "bases" / "mybase", moved / "mybase")  # the base travelled with the runs
    assert resolve_base(None, moved / "runs" / "r1" / "best") == str(moved / "mybase")
    (moved / "mybase" / "model.safetensors").write_bytes(b"\x02" * 3000)  # same name, other weights
    with pytest.raises(CheckpointError) as caught:
        resolve_base(None, moved / "runs" / "r1" / "best")
    message = str(caught.value)
    assert f"the base model '{source}'" in message and "was not found; pass --base" in message
    assert "\n" not in message


def test_the_shipped_default_is_recorded_by_a_package_name():
    default = PACKAGE_ROOT / "assets" / "base"
    if not (default / "config.json").is_file():
        pytest.skip("the shipped default base is not in this checkout")
    assert record_base(str(default)) == (PACKAGE_PREFIX + "assets/base", None)


def test_package_names_hub_ids_and_tiny_resolve_without_files(tmp_path):
    run = write_config(tmp_path / "run", "tiny")
    assert resolve_recorded_base("tiny:blip", None, run) == "tiny:blip"
    assert resolve_recorded_base("google/paligemma2-3b-pt-224", None, run) == "google/paligemma2-3b-pt-224"
    with pytest.raises(CheckpointError, match="'package:assets/nothing-here'.*--base"):
        resolve_recorded_base("package:assets/nothing-here", None, run)
    with pytest.raises(CheckpointError, match="was not found"):
        resolve_recorded_base(str(tmp_path / "gone" / "base"), "sha256:0", run)


def test_compare_runs_accepts_a_run_folder_and_its_best_dir(tmp_path):
    run = tmp_path / "swag-run"
    write_config(run / "best", "tiny")
    (run / "evaluation").mkdir()
    metrics = {
        "split": "validation",
        "n": 4,
        "variants": {
            "swag-attentive": {"n": 4, "accuracy": {"accuracy": 0.5, "low": 0.1, "high": 0.9, "n": 4}}
        },
    }
    (run / "evaluation" / "metrics.json").write_text(json.dumps(metrics))
    (run / "best_selection").mkdir()  # the split that chose best/: never read as the run's figures
    (run / "best_selection" / "metrics.json").write_text(json.dumps({**metrics, "n": 99}))
    for path in (run, run / "best"):
        loaded = load_run(path)
        assert loaded.name == "swag-run" and loaded.accuracy("swag-attentive")["accuracy"] == 0.5


def test_the_app_serves_the_checkpoints_own_run_folder(tmp_path):
    from vqa_demo.run_folders import served_run_folder
    from vqa_demo.ui.server_settings import AppConfig

    compare = tmp_path / "compare"
    for name in ("cond_gen", "swag-attentive"):
        write_config(compare / name / "best", "tiny")
    (compare / "comparison.json").write_text("{}")
    every_shape = (
        [compare],
        [compare / "cond_gen"],
        [compare / "cond_gen" / "best", compare / "swag-attentive" / "best"],
    )
    assert all(served_run_folder(shape) == compare.resolve() for shape in every_shape)
    single = tmp_path / "single"
    write_config(single / "best", "tiny")
    (single / "evaluation").mkdir()
    (single / "evaluation" / "metrics.json").write_text("{}")
    config = AppConfig(checkpoints=[single / "best"])
    assert (
        config.assets == single.resolve()
        and config.comparison_file == single.resolve() / "evaluation" / "metrics.json"
    )
    assert served_run_folder([compare / "cond_gen" / "best", single]) is None  # two runs: none of them
    assert AppConfig(assets=tmp_path, checkpoints=[compare]).assets == tmp_path.resolve()  # --assets wins
    assert AppConfig(checkpoints=[compare]).launch_kwargs()["blocked_paths"] == [
        str(compare.resolve() / "cond_gen" / "best"),
        str(compare.resolve() / "swag-attentive" / "best"),
    ]


def test_a_run_without_evaluation_gets_the_command_not_other_figures(tmp_path):
    from vqa_demo.ui.holder import read_variant_infos
    from vqa_demo.ui.model_card import build_model_card, card_markdown

    run = tmp_path / "run"
    write_config(run / "best", "tiny")
    infos = read_variant_infos([run])
    card = build_model_card(infos, None, [run], "tiny")
    assert card.standings == {} and not card.offline_default
    text = card_markdown(card)
    assert f"python -m vqa_demo.evaluate --checkpoints {run} --data <your data>" in text
    assert "no evaluation yet" in text and "synthetic" not in text
