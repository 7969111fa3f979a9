"""Malformed variant checkpoints: each is refused by name before anything is built, never touching the others.

Every case edits one file of a copy of a freshly saved tiny variant. Refusals must come from the file
checks (``check_variant_dir``, which builds nothing) with the file's name and the problem in the
message; the app must start with the bad variant left out and say why.
"""

from __future__ import annotations

import json
import pickle
import runpy
import shutil
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import OPTIONS, QUESTIONS
from vqa_demo.checkpoints import CheckpointError, check_variant_dir, load_variants
from vqa_demo.config import BackboneConfig
from vqa_demo.model.backbone import load_backbone
from vqa_demo.predictor import Predictor
from vqa_demo.testing import TrigramMatcher
from vqa_demo.ui import AppConfig
from vqa_demo.ui.holder import PredictorHolder

MC = "multi_class-attentive"


@pytest.fixture(scope="module")
def tree(app_assets, tmp_path_factory):
    """A private copy of the tiny assets' base and checkpoints (module scope: cases copy it again)."""
    root = tmp_path_factory.mktemp("ckpt-files")
    shutil.copytree(app_assets.root / "base", root / "base")
    shutil.copytree(app_assets.root / "checkpoints", root / "checkpoints")
    return root


@pytest.fixture
def variant(tree, tmp_path):
    """A writable copy of one multi_class variant: edit its files, then check it."""
    target = tmp_path / MC
    shutil.copytree(tree / "checkpoints" / MC, target)
    return target


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def set_key(*keys_and_value):
    *keys, value = keys_and_value

    def change(data):
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return change


ADAPTER_CONFIG_CASES = {
    "pissa init rewrites the base": (set_key("init_lora_weights", "pissa"), "init_lora_weights 'pissa'"),
    "olora init": (set_key("init_lora_weights", "olora"), "init_lora_weights 'olora'"),
    "loftq init": (set_key("init_lora_weights", "loftq"), "rewrites the shared base"),
    "corda init": (set_key("init_lora_weights", "corda"), "rewrites the shared base"),
    "eva init": (set_key("init_lora_weights", "eva"), "rewrites the shared base"),
    "init as the number 1": (set_key("init_lora_weights", 1), "init_lora_weights 1"),
    "dora": (set_key("use_dora", True), "use_dora=True is not supported"),
    "layer replication": (set_key("layer_replication", [[0, 1], [0, 1]]), "layer_replication"),
    "modules_to_save": (set_key("modules_to_save", ["lm_head"]), "modules_to_save"),
    "bias on the base": (set_key("bias", "all"), "bias='all'"),
    "unknown peft type": (set_key("peft_type", "LOHA"), "peft_type 'LOHA' is not supported"),
    "unknown peft field": (set_key("use_magic", True), "unknown field.*use_magic"),
    "huge rank": (set_key("r", 200_000), "r must be between 1 and 1024"),
    "rank as text": (set_key("r", "8"), "r must be an integer"),
}


@pytest.mark.parametrize("case", list(ADAPTER_CONFIG_CASES))
def test_adapter_config_that_is_not_plain_lora_is_refused(variant, case):
    change, message = ADAPTER_CONFIG_CASES[case]
    edit_json(variant / "adapter_config.json", change)
    with pytest.raises(CheckpointError, match=rf"adapter_config.json: .*{message}"):
        check_variant_dir(variant)


def test_adapter_config_invalid_json_is_named(variant):
    (variant / "adapter_config.json").write_text('{"peft_type": "LORA", ')
    with pytest.raises(CheckpointError, match=r"adapter_config.json is not valid JSON"):
        check_variant_dir(variant)


def cut_in_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def pickled(path):
    path.write_bytes(pickle.dumps({"lora_A": np.zeros((4, 4))}))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (cut_in_half, "is not a readable safetensors file"),
        (pickled, "is not a readable safetensors file"),
    ],
    ids=["empty", "truncated", "pickle"],
)
@pytest.mark.parametrize("file", ["adapter_model.safetensors", "head.safetensors"])
def test_damaged_weight_files_are_refused(variant, damage, message, file):
    damage(variant / file)
    with pytest.raises(CheckpointError, match=rf"{file} {message}"):
        check_variant_dir(variant)


def rewrite_tensors(path, change):
    state = load_file(path)
    change(state)
    save_file(state, path)


def first_key(state, part="lora_A"):
    return next(k for k in sorted(state) if part in k)


HEAD_CASES = {
    "nan": (
        lambda s: s[first_key(s, "weight")].view(-1).__setitem__(0, float("nan")),
        "contains NaN or infinite",
    ),
    "inf": (
        lambda s: s[first_key(s, "weight")].view(-1).__setitem__(0, float("inf")),
        "contains NaN or infinite",
    ),
    "int8": (
        lambda s: s.__setitem__(first_key(s, "weight"), s[first_key(s, "weight")].to(torch.int8)),
        "has dtype torch.int8; weights must be floating point",
    ),
}


@pytest.mark.parametrize("case", list(HEAD_CASES))
def test_head_with_bad_values_is_refused(variant, case):
    change, message = HEAD_CASES[case]
    rewrite_tensors(variant / "head.safetensors", change)
    with pytest.raises(CheckpointError, match=rf"head.safetensors: tensor '.*' {message}"):
        check_variant_dir(variant)


def load_onto_base(tree, directories, skipped=None):
    backbone = load_backbone(BackboneConfig(source=str(tree / "base")))
    variants = load_variants(backbone, directories, skipped=skipped)
    return backbone, Predictor(backbone, variants, matcher=TrigramMatcher())


def test_head_of_wrong_shape_is_refused_before_any_adapter_is_attached(tree, variant):
    rewrite_tensors(variant / "head.safetensors", lambda s: s.update(extra=torch.zeros(3)))
    backbone = load_backbone(BackboneConfig(source=str(tree / "base")))
    with pytest.raises(CheckpointError, match=r"head.safetensors: unexpected tensor 'extra'"):
        load_variants(backbone, [tree / "checkpoints" / "cond_gen", variant])
    assert not hasattr(backbone.model, "peft_config"), "an adapter was attached before all checks ran"


def test_misnamed_adapter_tensors_are_refused_not_loaded_as_no_lora(tree, variant):
    def rename(state):
        for part in ("lora_A", "lora_B"):
            key = first_key(state, f"q_proj.{part}")
            state[key.replace("q_proj", "q_projection")] = state.pop(key)

    rewrite_tensors(variant / "adapter_model.safetensors", rename)
    backbone = load_backbone(BackboneConfig(source=str(tree / "base")))
    with pytest.raises(
        CheckpointError, match=r"adapter_model.safetensors: '.*q_projection' is not a linear layer"
    ):
        load_variants(backbone, [variant])


def test_adapter_missing_some_targeted_layers_is_refused_and_removed(tree, variant):
    def drop_one_module(state):
        key = first_key(state)
        del state[key], state[key.replace("lora_A", "lora_B")]

    rewrite_tensors(variant / "adapter_model.safetensors", drop_one_module)
    skipped = []
    backbone, predictor = load_onto_base(tree, [tree / "checkpoints" / "cond_gen", variant], skipped)
    assert list(predictor.variants) == ["cond_gen"]
    assert "do not match the layers adapter_config.json targets" in skipped[0][1]
    assert set(backbone.model.peft_config) == {"cond_gen"}


RUN_CONFIG_CASES = {
    "array": (lambda p: p.write_text("[1, 2]"), "must hold a JSON object, not list"),
    "K as text": (
        lambda p: edit_json(p, set_key("head", "num_options", "4")),
        "num_options must be an integer",
    ),
    "K 1e9": (
        lambda p: edit_json(p, set_key("head", "num_options", 10**9)),
        "num_options must be between 2 and 8",
    ),
    "K negative": (lambda p: edit_json(p, set_key("head", "num_options", -3)), "num_options must be between"),
    "max_text_tokens -5": (
        lambda p: edit_json(p, set_key("prompt", "max_text_tokens", -5)),
        "max_text_tokens must be between 1 and",
    ),
    "head not an object": (lambda p: edit_json(p, set_key("head", "swag")), "'head' must be a JSON object"),
    "deep nesting": (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "nested more than 32 levels"),
    "nesting in metrics": (
        lambda p: edit_json(p, set_key("metrics", json.loads("[" * 40 + "]" * 40))),
        "nested more than 32 levels",
    ),
    "huge": (lambda p: edit_json(p, set_key("metrics", "x" * 2_000_000)), "over the 1,048,576-byte limit"),
}


@pytest.mark.parametrize("case", list(RUN_CONFIG_CASES))
def test_malformed_run_config_is_refused(variant, case):
    damage, message = RUN_CONFIG_CASES[case]
    damage(variant / "run_config.json")
    with pytest.raises(CheckpointError, match=rf"run_config.json.*{message}"):
        check_variant_dir(variant)


def test_lora_rank_200000_is_refused_before_allocating(variant):
    edit_json(variant / "run_config.json", set_key("lora", "r", 200_000))
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="lora.r must be between 1 and 1024, got 200000"):
        check_variant_dir(variant)
    assert time.perf_counter() - started < 1.0


def test_loading_one_variant_never_changes_another_variants_answers(tree, tmp_path, images):
    """A refused base-rewriting variant, loaded between two good ones, changes neither their answers nor the base."""
    checkpoints = tree / "checkpoints"
    _, alone = load_onto_base(tree, [checkpoints / "cond_gen", checkpoints / "swag-attentive"])
    before = alone.predict_batch(images, QUESTIONS, OPTIONS)
    hostile = tmp_path / "hostile"
    shutil.copytree(checkpoints / "multi_class-last_token", hostile)
    edit_json(hostile / "adapter_config.json", set_key("init_lora_weights", "pissa"))
    skipped = []
    backbone, together = load_onto_base(
        tree, [checkpoints / "cond_gen", hostile, checkpoints / "swag-attentive"], skipped
    )
    assert [d for d, _ in skipped] == [str(hostile)]
    after = together.predict_batch(images, QUESTIONS, OPTIONS)
    for x, y in zip(before, after):
        for name in ("cond_gen", "swag-attentive"):
            np.testing.assert_array_equal(x[name].option_scores, y[name].option_scores)
    # Every variant alone gives the same answers as when all five share the base.
    _, everyone = load_onto_base(tree, sorted(checkpoints.iterdir()))
    together_all = everyone.predict_batch(images, QUESTIONS, OPTIONS)
    for name in ("multi_class-last_token", "swag-last_token"):
        _, single = load_onto_base(tree, [checkpoints / name])
        for x, y in zip(single.predict_batch(images, QUESTIONS, OPTIONS), together_all):
            np.testing.assert_array_equal(x[name].option_scores, y[name].option_scores)


def test_app_starts_with_a_bad_variant_skipped_and_says_why(tree, app_assets, tmp_path, monkeypatch):
    """``app.py`` as launched (settings from the environment) with a JSON array as one run_config.json."""
    assets = tmp_path / "assets"
    shutil.copytree(app_assets.root, assets, ignore=shutil.ignore_patterns("base"))
    (assets / "checkpoints" / "swag-last_token" / "run_config.json").write_text("[]")
    monkeypatch.setenv("VQA_ASSETS", str(assets))
    monkeypatch.setenv("VQA_BASE", str(tree / "base"))
    namespace = runpy.run_path("app.py", run_name="app_under_test")
    demo = namespace["demo"]
    (notice,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "skipped-variants"]
    shown = notice.value
    assert "Skipped variant swag-last_token" in shown and "must hold a JSON object" in shown
    assert str(assets) not in shown, "the reason should name the variant folder, not server paths"

    holder = PredictorHolder.from_config(AppConfig(assets=assets, base=str(tree / "base")))
    assert "swag-last_token" not in holder.names and len(holder.names) == 4
    assert holder.problem is None
    predictor = holder.get()
    assert sorted(predictor.variants) == sorted(holder.names)


def test_app_with_only_bad_variants_explains_instead_of_crashing(app_assets, tmp_path):
    assets = tmp_path / "assets"
    shutil.copytree(app_assets.root / "checkpoints" / "cond_gen", assets / "checkpoints" / "cond_gen")
    (assets / "checkpoints" / "cond_gen" / "adapter_config.json").write_text("not json")
    holder = PredictorHolder.from_config(AppConfig(assets=assets))
    assert holder.names == [] and "cond_gen: " in holder.problem and "not valid JSON" in holder.problem


def test_variant_refused_only_at_load_time_is_reported_not_run(tree, app_assets, tmp_path):
    """Mis-named LoRA modules pass the start-up checks (no base yet) and are refused when the base loads."""
    assets = tmp_path / "assets"
    shutil.copytree(app_assets.root / "checkpoints", assets / "checkpoints")

    def rename(state):
        for part in ("lora_A", "lora_B"):
            key = first_key(state, f"q_proj.{part}")
            state[key.replace("q_proj", "q_projection")] = state.pop(key)

    rewrite_tensors(assets / "checkpoints" / "swag-attentive" / "adapter_model.safetensors", rename)
    holder = PredictorHolder.from_config(AppConfig(assets=assets, base=str(tree / "base")))
    assert "swag-attentive" in holder.names and holder.skipped == []
    predictor = holder.get()
    assert "swag-attentive" not in predictor.variants and len(predictor.variants) == 4
    assert "Skipped variant swag-attentive" in holder.skipped_text and "q_projection" in holder.skipped_text
    reason = holder.info("swag-attentive").incompatibility(4)
    assert reason.startswith("swag-attentive could not be loaded: swag-attentive/adapter_model.safetensors")
