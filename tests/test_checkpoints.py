"""Checkpoint round trips, pickle refusal, shape and base checks."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from tests.conftest import OPTIONS, QUESTIONS
from vqa_demo.checkpoint_checks import UnsafeCheckpointError
from vqa_demo.checkpoints import CheckpointError, check_variant_dir, load_variants, save_variant
from vqa_demo.config import VARIANTS, BackboneConfig
from vqa_demo.model.backbone import build_tiny_backbone, load_backbone, save_backbone
from vqa_demo.predictor import Predictor
from vqa_demo.testing import TrigramMatcher, make_tiny_predictor


class PlantedPayload:
    """Unpickling this creates a marker file: proof that something was unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    save_backbone(build_tiny_backbone(seed=0), root / "base")
    predictor = make_tiny_predictor(seed=0)
    for name, variant in predictor.variants.items():
        save_variant(root / name, variant.config, predictor.backbone, variant.module, variant.adapter)
    return root, predictor


def load_predictor(root, names=tuple(VARIANTS)):
    backbone = load_backbone(BackboneConfig(source=str(root / "base")))
    return Predictor(backbone, load_variants(backbone, [root / n for n in names]), matcher=TrigramMatcher())


def test_round_trip_reproduces_scores_exactly(saved, images):
    root, original = saved
    for name in VARIANTS:
        files = sorted(p.name for p in (root / name).iterdir())
        expected = ["adapter_config.json", "adapter_model.safetensors", "run_config.json"]
        assert files == sorted(expected + ([] if name == "cond_gen" else ["head.safetensors"]))
    reloaded = load_predictor(root)
    before = original.predict_batch(images, QUESTIONS, OPTIONS)
    after = reloaded.predict_batch(images, QUESTIONS, OPTIONS)
    for x, y in zip(before, after):
        for name in VARIANTS:
            np.testing.assert_array_equal(x[name].option_scores, y[name].option_scores)
            assert (x[name].cond_gen is None) == (y[name].cond_gen is None)
            if x[name].cond_gen is not None:
                assert x[name].cond_gen.generated_text == y[name].cond_gen.generated_text


def test_run_config_is_self_describing(saved):
    root, predictor = saved
    data = json.loads((root / "swag-attentive" / "run_config.json").read_text())
    assert data["head"]["head"] == "swag" and data["head"]["pooling"] == "attentive"
    assert data["base_fingerprint"] == predictor.backbone.fingerprint
    assert data["prompt"]["separator"] == "\n"


@pytest.mark.parametrize("where", ["variant", "base"])
def test_pickle_is_refused_and_never_unpickled(saved, tmp_path, where):
    root, _ = saved
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    marker = tmp_path / "UNPICKLED"
    target = copy / ("swag-attentive" if where == "variant" else "base")
    (target / "adapter_model.bin").write_bytes(pickle.dumps(PlantedPayload(str(marker))))
    with pytest.raises(UnsafeCheckpointError, match="adapter_model.bin"):
        load_predictor(copy)
    assert not marker.exists()


def test_wrong_head_shape_is_named(saved, tmp_path):
    root, _ = saved
    shutil.copytree(root / "base", tmp_path / "base")
    shutil.copytree(root / "multi_class-attentive", tmp_path / "multi_class-attentive")
    config_path = tmp_path / "multi_class-attentive" / "run_config.json"
    data = json.loads(config_path.read_text())
    data["head"]["num_options"] = 5
    config_path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"classifier.weight' has shape \(4, 32\), expected \(5, 32\)"):
        load_predictor(tmp_path, ["multi_class-attentive"])


def test_missing_file_is_named(saved, tmp_path):
    root, _ = saved
    shutil.copytree(root / "swag-last_token", tmp_path / "v")
    (tmp_path / "v" / "head.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing head.safetensors"):
        check_variant_dir(tmp_path / "v")
    with pytest.raises(CheckpointError, match="run_config.json is missing"):
        check_variant_dir(tmp_path)


def test_variant_from_another_base_is_refused_naming_both(saved):
    root, _ = saved
    other = build_tiny_backbone(image_size=25)
    with pytest.raises(CheckpointError, match=r"trained on base 'tiny'.*loaded base is 'tiny'"):
        load_variants(other, [root / "cond_gen"])


def test_quantization_without_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        load_backbone(BackboneConfig(source="google/paligemma2-3b-pt-224", quantization="4bit"))


def test_saving_twice_replaces_atomically(saved, tmp_path):
    _, predictor = saved
    variant = predictor.variants["swag-attentive"]
    for _ in range(2):
        save_variant(tmp_path / "v", variant.config, predictor.backbone, variant.module, variant.adapter)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]
