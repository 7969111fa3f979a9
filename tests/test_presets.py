"""PaliGemma 1, PaliGemma 2 and PaliGemma 2 mix presets, and their tiny stand-ins end to end."""

from __future__ import annotations

import copy
import json

import pytest
from PIL import Image
from transformers import Gemma2Config, GemmaConfig

from tests.processor_reference import encoded_rows, processor_rows
from training.train import TrainConfig, main, parse_args, smoke_data
from vqa_demo.config import (
    HEAD_NAMES,
    PRESETS,
    PROMPT_STYLES,
    BackboneConfig,
    default_prompt_style,
    preset_for,
    resolve_backbone_source,
    variant_name,
)
from vqa_demo.evaluate import main as evaluate_main
from vqa_demo.evaluate import parse_args as evaluate_args
from vqa_demo.model.backbone import build_tiny_backbone, load_backbone
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.strategies import build_rows
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.server_settings import AppConfig


def test_presets_name_every_released_checkpoint():
    assert sorted(n for n, p in PRESETS.items() if p.generation == 1) == [
        "paligemma-3b-pt-224",
        "paligemma-3b-pt-448",
        "paligemma-3b-pt-896",
    ]
    pt2 = [n for n, p in PRESETS.items() if p.generation == 2 and not p.mix]
    mix = [n for n, p in PRESETS.items() if p.mix]
    assert len(pt2) == 9 and len(mix) == 6 and len(PRESETS) == 18
    assert resolve_backbone_source("paligemma-3b-pt-896") == "google/paligemma-3b-pt-896"
    assert resolve_backbone_source("paligemma2-28b-mix-448") == "google/paligemma2-28b-mix-448"
    assert resolve_backbone_source("some/other-model") == "some/other-model"
    for name, preset in PRESETS.items():
        assert preset.hub_id == f"google/{name}" and preset_for(preset.hub_id) is preset
        assert name.endswith(str(preset.resolution))
        assert preset.tiny == ("tiny:paligemma" if name.startswith("paligemma-") else "tiny:paligemma2")


def test_mix_checkpoints_default_to_the_task_prefix_style():
    assert default_prompt_style("paligemma2-10b-mix-224") == "choose_from"
    assert default_prompt_style("google/paligemma2-3b-mix-448") == "choose_from"
    assert default_prompt_style("paligemma-3b-pt-224") == "default"
    assert default_prompt_style("assets/base") == "default"
    (row,) = build_rows("cond_gen", "Which?", ["a", "b"], style=default_prompt_style("paligemma2-3b-mix-224"))
    assert row.prefix.startswith("answer en Which?")
    mix = parse_args(["--base", "paligemma2-3b-mix-448"]).run_config()
    assert mix.prompt.style == "choose_from"
    forced = parse_args(["--base", "paligemma2-3b-mix-448", "--prompt-style", "default"]).run_config()
    assert forced.prompt.style == "default"
    assert parse_args(["--base", "paligemma2-3b-pt-448"]).run_config().prompt.style == "default"


@pytest.mark.parametrize(
    ("source", "config_class", "kv_heads"),
    [("tiny:paligemma", GemmaConfig, 1), ("tiny:paligemma2", Gemma2Config, 2), ("tiny", Gemma2Config, 2)],
)
def test_tiny_stand_ins_have_each_generations_structure(source, config_class, kv_heads):
    backbone = load_backbone(BackboneConfig(source=source))
    text = backbone.core.config.text_config
    assert type(text) is config_class and text.num_key_value_heads == kv_heads
    assert backbone.generation == (1 if config_class is GemmaConfig else 2)
    assert backbone.source == source
    assert getattr(text, "sliding_window", None) == (4096 if config_class is Gemma2Config else None)


@pytest.mark.parametrize("generation", [1, 2])
def test_both_generations_encode_as_their_processor(generation):
    processor = build_tiny_backbone(generation=generation).processor
    # As loaded from the hub, PaliGemma 1's tokenizer adds <bos> itself and PaliGemma 2's does not;
    # the processor turns that off on its own copy. The encoder gives its single <bos> either way.
    raw = copy.deepcopy(processor.tokenizer)
    raw.add_bos_token = generation == 1
    assert (raw("a")["input_ids"][0] == raw.bos_token_id) == (generation == 1)
    encoder = RowEncoder(raw, processor.image_token_id, int(processor.image_seq_length))
    examples = [("What colour is the circle?", ["red", "blue", "green"], 1), ("Time?", ["10:35", "11:00"], 0)]
    for style in PROMPT_STYLES:
        for head in HEAD_NAMES:
            rows = [r for q, o, a in examples for r in build_rows(head, q, o, style=style, answer_index=a)]
            expected = processor_rows(processor, rows, with_suffix=head == "cond_gen")
            assert encoded_rows(encoder.encode(rows)) == expected, (style, head)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return smoke_data(tmp_path_factory.mktemp("data"), seed=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("base", "style", "variant", "pooling"),
    [
        ("tiny:paligemma", "default", "cond_gen", None),  # paligemma-3b-pt-*
        ("tiny:paligemma2", "default", "swag", "attentive"),  # paligemma2-*-pt-*
        ("tiny:paligemma2", "choose_from", "multi_class", "last_token"),  # paligemma2-*-mix-*
    ],
)
def test_each_generation_trains_evaluates_and_serves(tmp_path, data_dir, base, style, variant, pooling):
    cfg = TrainConfig(variant=variant, pooling=pooling, base=base, prompt_style=style, smoke=True, threads=1)
    cfg.out, cfg.data = str(tmp_path / "run"), str(data_dir)
    # best/ is chosen on the split evaluated below, so training's figure and the CLI's must agree
    cfg.selection_split = str(data_dir / "validation")
    result = main(cfg)
    run_config = json.loads((tmp_path / "run" / "best" / "run_config.json").read_text())
    assert run_config["backbone"]["source"] == base and run_config["prompt"]["style"] == style
    name = variant_name(variant, pooling)

    metrics = evaluate_main(
        evaluate_args(
            ["--checkpoints", str(tmp_path / "run" / "best"), "--data", str(data_dir / "validation")]
            + ["--out", str(tmp_path / "eval")]
        )
    )
    assert metrics["variants"][name]["accuracy"]["accuracy"] == result["best_accuracy"]

    holder = PredictorHolder.from_config(AppConfig(checkpoints=[tmp_path / "run" / "best"]))
    predictor = holder.get()
    assert predictor.backbone.source == base
    assert predictor.backbone.generation == (1 if base == "tiny:paligemma" else 2)
    image = Image.new("RGB", (40, 40), (200, 30, 30))
    prediction = predictor.predict(image, "What colour is the square?", ["red", "blue", "green", "pink"])
    assert prediction[name].probabilities.shape == (4,)
