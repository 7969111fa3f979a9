"""Base weights are checked at load (issue 21.5): real tiny bases written to disk, then corrupted,
are refused with one sentence each, through ``load_backbone`` and the ``vqa_demo.evaluate`` CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.hostile_files import write_tiny_base
from tests.test_evaluation import make_split
from vqa_demo.config import BackboneConfig
from vqa_demo.evaluate import cli as evaluate_cli
from vqa_demo.loading import load_predictor
from vqa_demo.model.backbone import load_backbone
from vqa_demo.model.base_checks import UnsafeBaseError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny PaliGemma base with one variant, and tiny LLaVA, SmolVLM, BLIP and ViLT bases."""
    root = tmp_path_factory.mktemp("bases")
    folders = {"paligemma": write_tiny_base(root / "paligemma", variant="multi_class-last_token")}
    for family in ("llava", "smolvlm", "blip", "vilt"):
        folders[family] = write_tiny_base(root / family, f"tiny:{family}")
    return folders


def corrupt_weights(base, edit) -> None:
    """Rewrite ``base/model.safetensors`` after ``edit(tensors)`` (a dict of name -> tensor)."""
    path = base / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def first_matrix(tensors) -> str:
    return next(name for name, t in sorted(tensors.items()) if t.ndim == 2 and "embed" not in name)


def set_value(value):
    def edit(tensors):
        tensors[first_matrix(tensors)][0, 0] = value

    return edit


def remove_one(tensors):
    del tensors[first_matrix(tensors)]


def add_one(tensors):
    tensors["model.extra_projection.weight"] = torch.zeros(4, 4)


def as_int64(tensors):
    name = first_matrix(tensors)
    tensors[name] = tensors[name].round().to(torch.int64)


def reshape_one(tensors):
    name = first_matrix(tensors)
    tensors[name] = torch.zeros(tensors[name].shape[0] + 1, tensors[name].shape[1])


WEIGHT_CORRUPTIONS = {
    "nan-in-one-matrix": (set_value(float("nan")), "NaN or infinite values in"),
    "inf-in-one-matrix": (set_value(float("inf")), "NaN or infinite values in"),
    "minus-inf": (set_value(float("-inf")), "NaN or infinite values in"),
    "tensor-removed": (remove_one, "has no weights for"),
    "tensor-added": (add_one, "holds weights the model does not have"),
    "int64-weights": (as_int64, r"non-floating weight tensors: .*\(I64\)"),
    "wrong-shape": (reshape_one, "could not be loaded as a PaliGemma"),
}


def copy_base(saved, family, tmp_path):
    return shutil.copytree(saved[family] / "base", tmp_path / "base")


@pytest.mark.parametrize("name", list(WEIGHT_CORRUPTIONS))
def test_corrupted_weights_are_refused_with_a_sentence(saved, tmp_path, name):
    edit, message = WEIGHT_CORRUPTIONS[name]
    base = copy_base(saved, "paligemma", tmp_path)
    corrupt_weights(base, edit)
    with pytest.raises(UnsafeBaseError, match=message):
        load_backbone(BackboneConfig(source=str(base)))


@pytest.mark.parametrize(
    "family, switched_to",
    [("paligemma", "llava"), ("smolvlm", "blip"), ("blip", "vilt"), ("vilt", "blip"), ("llava", "paligemma")],
)
def test_a_model_type_switched_to_another_family_is_refused(saved, tmp_path, family, switched_to):
    base = copy_base(saved, family, tmp_path)
    config = json.loads((base / "config.json").read_text())
    config["model_type"] = switched_to
    (base / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsafeBaseError) as refused:
        load_backbone(BackboneConfig(source=str(base)))
    text = str(refused.value)
    assert "\n" not in text and str(base) in text, text
    print(family, "->", switched_to, ":", text)


def test_variants_refuse_a_base_of_another_family(saved):
    """The run config names tiny:paligemma; a LLaVA base given with --base is another family."""
    checkpoints = saved["paligemma"] / "checkpoints"
    config = json.loads((checkpoints / "multi_class-last_token" / "run_config.json").read_text())
    assert config["backbone"]["source"] == "tiny:paligemma"
    with pytest.raises(UnsafeBaseError, match="is a llava model .* trained on a paligemma base"):
        load_predictor(checkpoints, base=saved["llava"] / "base", sentence_model="unused")


def test_a_clean_base_still_loads(saved):
    predictor = load_predictor(
        saved["paligemma"] / "checkpoints", base=saved["paligemma"] / "base", sentence_model="unused"
    )
    assert list(predictor.variants) == ["multi_class-last_token"]


def test_the_evaluate_cli_refuses_a_nan_base_in_one_line(saved, tmp_path, capsys):
    base = copy_base(saved, "paligemma", tmp_path)
    corrupt_weights(base, set_value(float("nan")))
    data = tmp_path / "data"
    data.mkdir()
    make_split(data, n=2)
    with pytest.raises(SystemExit) as caught:
        evaluate_cli(
            ["--checkpoints", str(saved["paligemma"] / "checkpoints"), "--base", str(base)]
            + ["--data", str(data), "--out", str(tmp_path / "out")]
        )
    err = capsys.readouterr().err
    assert caught.value.code == 2 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: the base") and "NaN or infinite values" in last
