"""The family registry: chosen from ``config.model_type``, ``--base tiny:<family>``, presets of every family."""

from __future__ import annotations

import json

import pytest
from transformers import LlamaConfig

from vqa_demo.config import FAMILY_PRESETS, HEAD_NAMES, PRESETS, BackboneConfig, resolve_backbone_source
from vqa_demo.loading import resolve_base
from vqa_demo.model.backbone import load_backbone
from vqa_demo.model.families.registry import FAMILIES, family_for, tiny_family, tiny_model, tiny_sources
from vqa_demo.model.family import BackboneFamily
from vqa_demo.model.strategies import STRATEGIES


def test_every_tiny_name_of_the_issue_that_is_registered_builds_its_family():
    assert {"tiny", "tiny:paligemma", "tiny:paligemma2"} <= set(tiny_sources())
    for source in tiny_sources():
        backbone = load_backbone(BackboneConfig(source=source))
        assert backbone.family is tiny_family(source)
        # The family comes from the model's config, not from the name it was asked for.
        assert family_for(backbone.core.config) is backbone.family
        assert backbone.source == source


def test_a_config_of_no_known_family_says_which_types_are_supported():
    with pytest.raises(ValueError, match="not a supported backbone family.*paligemma"):
        family_for(LlamaConfig())


def test_family_presets_name_families_and_resolve_to_hub_ids():
    assert resolve_backbone_source("llava-1.5-7b") == "llava-hf/llava-1.5-7b-hf"
    assert resolve_backbone_source("gemma-3-4b-it") == "google/gemma-3-4b-it"
    hub_ids = [p.hub_id for p in FAMILY_PRESETS.values()]
    assert len(set(hub_ids)) == len(hub_ids) and not set(FAMILY_PRESETS) & set(PRESETS)
    assert {p.family for p in FAMILY_PRESETS.values()} <= set(FAMILIES) - {"paligemma"}
    for name, preset in FAMILY_PRESETS.items():
        model, _ = tiny_model(preset.family)  # its tiny model has the structure the preset's family handles
        assert family_for(model.config).name == preset.family, name


def test_a_run_config_naming_a_preset_or_tiny_family_is_loaded_as_named(tmp_path):
    from vqa_demo.testing import tiny_run_config

    for source in ("tiny:llava", "llava-1.5-7b"):
        config = tiny_run_config("cond_gen")
        config.backbone.source = source
        (tmp_path / "run_config.json").write_text(json.dumps(config.to_dict()))
        assert resolve_base(None, tmp_path) == source


def test_a_family_without_a_language_model_head_refuses_cond_gen_only():
    class EncoderOnly(BackboneFamily):
        name = "encoder_only"
        answer_scorer = None

    family = EncoderOnly()
    assert "cond_gen" in family.refusal(STRATEGIES["cond_gen"])
    assert family.refusal(STRATEGIES["swag"]) is None and family.refusal(STRATEGIES["multi_class"]) is None
    # Every registered family runs every trained head, except ViLT (no language-model head): COND_GEN
    # only; ViLT's own classifier runs on ViLT only.
    trained = [STRATEGIES[name] for name in HEAD_NAMES]
    refused = {(name, s.name) for name, f in FAMILIES.items() for s in trained if f.refusal(s)}
    assert refused == {("vilt", "cond_gen")}
    assert family.refusal(STRATEGIES["vilt_answer_classifier"]) is not None


def test_every_family_folder_is_registered_once_under_its_folder_name():
    """The registry is the only list: a family folder left out of it (or registered twice) fails here."""
    from pathlib import Path

    import vqa_demo.model.families as families

    root = Path(families.__file__).parent
    folders = sorted(d.name for d in root.iterdir() if (d / "family.py").is_file())
    assert sorted(FAMILIES) == folders
    assert len({id(f) for f in FAMILIES.values()}) == len(FAMILIES)
    assert all(
        f.tiny_builder is not None and (root / name / "README.md").is_file() for name, f in FAMILIES.items()
    )
