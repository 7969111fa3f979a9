"""Loading paths: presets, saved local directories (the same from_pretrained call as hub ids), LoRA targets."""

from __future__ import annotations

import pytest
import torch

from vqa_demo.config import PRESETS, BackboneConfig, resolve_backbone_source
from vqa_demo.model.backbone import add_lora, build_tiny_backbone, load_backbone, save_backbone
from vqa_demo.testing import tiny_run_config


def test_presets_cover_sizes_and_resolutions():
    assert resolve_backbone_source("paligemma2-3b-pt-448") == "google/paligemma2-3b-pt-448"
    assert len([p for p in PRESETS.values() if p.generation == 2 and not p.mix]) == 9
    assert resolve_backbone_source("some/other-model") == "some/other-model"


def test_tiny_model_has_paligemma2_structure():
    backbone = build_tiny_backbone()
    config = backbone.core.config
    assert config.text_config.model_type == "gemma2"
    assert config.vision_config.model_type == "siglip_vision_model"
    assert config.text_config.final_logit_softcapping and config.text_config.attn_logit_softcapping
    assert config.text_config.vocab_size % 64 == 0 and config.text_config.vocab_size >= len(
        backbone.tokenizer
    )
    assert (
        backbone.image_seq_length == (config.vision_config.image_size // config.vision_config.patch_size) ** 2
    )


@pytest.mark.parametrize("generation", [1, 2])
def test_saved_base_loads_back_identically(tmp_path, generation):
    original = build_tiny_backbone(seed=5, generation=generation)
    save_backbone(original, tmp_path / "base")
    assert not list((tmp_path / "base").glob("*.bin"))
    loaded = load_backbone(BackboneConfig(source=str(tmp_path / "base")))
    assert loaded.fingerprint == original.fingerprint and loaded.generation == generation
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"
    for (name, a), (_, b) in zip(original.core.state_dict().items(), loaded.core.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert (
        loaded.tokenizer("a <image> b", split_special_tokens=True)["input_ids"]
        == original.tokenizer("a <image> b", split_special_tokens=True)["input_ids"]
    )


def test_lora_targets_only_the_language_model():
    backbone = build_tiny_backbone()
    add_lora(backbone, tiny_run_config("cond_gen").lora)
    lora_names = [n for n, _ in backbone.model.named_parameters() if "lora_" in n]
    assert lora_names and all("language_model" in n for n in lora_names)
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert any(f"{proj}.lora_A" in n for n in lora_names), proj


def test_all_linear_lora_trains_the_vision_tower_of_paligemma_too():
    from tests.family_pipeline_checks import check_all_linear_trains_the_tower

    check_all_linear_trains_the_tower("tiny")
