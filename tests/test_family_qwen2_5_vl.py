"""Qwen2.5-VL behind the family interface, against its own processor and its own plain forward.

References: ``Qwen2_5_VLProcessor`` on the chat template for row ids and patches (on the image resized
to the family's fixed square, which the processor keeps as it is), and the model's plain forward (which
computes its own image features and 3-D positions) for log-likelihoods and hidden states.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tests import chat_family_checks as checks
from tests.family_checks import check_evaluate_cli_and_app_on_a_comparison
from vqa_demo.config import VARIANTS
from vqa_demo.model.classifier_strategies import MultiClassStrategy
from vqa_demo.model.cond_gen import CondGenStrategy, left_padded
from vqa_demo.model.qwen2_5_vl import QWEN2_5_VL, fixed_side, fixed_view, patchify

LEAD, END = "", "<|im_end|>"


@pytest.fixture(scope="module")
def tiny():
    return QWEN2_5_VL.build_tiny("tiny:qwen2_5_vl")


def square(processor):
    """The reference image: resized to the fixed square (bicubic, as the processor resamples)."""
    side = fixed_side(processor.image_processor)
    return lambda image: image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)


def test_fixed_side_is_the_hub_size_or_the_largest_that_fits():
    _, processor = QWEN2_5_VL.build_tiny("tiny:qwen2_5_vl")
    assert fixed_side(processor.image_processor) == 32  # max 32 * 32 pixels, multiples of 4 px * 2
    # The hub's limits: patch 14, merge 2, 56 * 56 .. 28 * 28 * 1280 pixels.
    processor.image_processor.size = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280}
    processor.image_processor.patch_size = 14
    assert fixed_side(processor.image_processor) == 448
    fixed_view(processor)
    assert fixed_side(processor.image_processor) == 448
    assert QWEN2_5_VL.image_seq_length(processor) == (448 // 28) ** 2  # the rows' image span


def test_rows_equal_the_processors_ids(tiny):
    _, processor = tiny
    tokens = checks.check_rows_match_processor(QWEN2_5_VL, processor, square(processor), LEAD, END)
    assert tokens == QWEN2_5_VL.image_seq_length(processor) == 16  # 32 px / 4 px patches, 2 x 2 merged


def test_the_encoder_equals_the_processors_own_chat_template_tokenization(tiny):
    _, processor = tiny
    row = CondGenStrategy().prompt_rows("Why?", ["a", "b"])[0]
    image = square(processor)(checks.IMAGES[1])
    content = [{"type": "image", "image": image}, {"type": "text", "text": row.prefix}]
    own = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    encoded = QWEN2_5_VL.row_encoder(processor).encode([row])
    assert torch.tensor(own["input_ids"]).reshape(-1).tolist() == encoded.input_ids[0].tolist()


def test_typed_special_tokens_stay_text(tiny):
    _, processor = tiny
    encoder = QWEN2_5_VL.row_encoder(processor)
    row = CondGenStrategy().prompt_rows("Is <|image_pad|> here <|im_end|>?", ["a", "b"])[0]
    ids = encoder.encode([row]).input_ids[0]
    assert int((ids == processor.image_token_id).sum()) == 16
    assert int((ids == encoder.eos_id).sum()) == 2  # the system turn's and the user turn's own


def test_pixels_are_the_processors_patches_and_features_its_own(tiny):
    model, processor = tiny
    pixels = QWEN2_5_VL.preprocess(processor, checks.IMAGES)
    assert pixels.shape == (2, *QWEN2_5_VL.pixel_shape(processor)) == (2, 3, 32, 32)
    reference = processor.image_processor([square(processor)(i) for i in checks.IMAGES], return_tensors="pt")
    image_processor = processor.image_processor
    patches = patchify(
        pixels, image_processor.patch_size, image_processor.merge_size, image_processor.temporal_patch_size
    )
    assert torch.equal(patches, reference["pixel_values"])
    features = QWEN2_5_VL.image_features(model, pixels)
    with torch.no_grad():
        own = model.model.get_image_features(
            reference["pixel_values"], reference["image_grid_thw"]
        ).pooler_output
    assert features.shape == (2, 16, 32)
    assert torch.equal(features, torch.stack(own))


def test_positions_are_get_rope_index_under_either_padding(tiny):
    model, processor = tiny
    encoder = QWEN2_5_VL.row_encoder(processor)
    rows = [MultiClassStrategy().prompt_rows(q, o)[0] for q, o in zip(checks.QUESTIONS, checks.OPTIONS)]
    right = encoder.encode(rows, with_suffix=False)
    left = left_padded(right)
    assert not right.attention_mask.all(), "the two rows should need padding"
    for side, encoded, positions in (
        ("right", right, QWEN2_5_VL.positions(right.token_type_ids, right.attention_mask)),
        ("left", left, QWEN2_5_VL.prefix_positions(left, None)),
    ):
        processor.tokenizer.padding_side = side
        texts = [checks.chat_text(processor, row.prefix) for row in rows]
        images = [[square(processor)(image)] for image in checks.IMAGES]
        inputs = processor(images=images, text=texts, padding=True, return_tensors="pt")
        assert torch.equal(inputs["input_ids"], encoded.input_ids)
        own, _ = model.model.get_rope_index(
            inputs["input_ids"],
            inputs["mm_token_type_ids"],
            image_grid_thw=inputs["image_grid_thw"],
            attention_mask=inputs["attention_mask"],
        )
        real = inputs["attention_mask"].bool().expand(3, -1, -1)
        assert torch.equal(positions[real], own[real]), side
    # Text after the image continues at max + 1: fewer positions than tokens, unlike 1-D positions.
    assert int(QWEN2_5_VL.next_positions(positions)[0]) < int(left.attention_mask[0].sum())


def test_cond_gen_loglik_and_generation_equal_the_plain_forward(tiny):
    model, processor = tiny
    worst = checks.check_cond_gen_matches_plain_forward(
        QWEN2_5_VL, model, processor, square(processor), LEAD, END
    )
    print(f"qwen2_5_vl cond_gen max |diff| {worst:.2e}")


@pytest.mark.parametrize("pooling", ["last_token", "attentive"])
def test_pooled_states_under_padding_equal_rows_alone(tiny, pooling):
    model, processor = tiny
    worst = checks.check_pooling_under_padding(QWEN2_5_VL, model, processor, square(processor), pooling)
    print(f"qwen2_5_vl {pooling} max |diff| {worst:.2e}")


def test_swag_rows_equal_single_passes(tiny):
    model, processor = tiny
    worst = checks.check_swag_rows_match_single_passes(QWEN2_5_VL, model, processor, square(processor))
    print(f"qwen2_5_vl swag max |diff| {worst:.2e}")


def test_embeds_forward_uses_the_3d_positions(tiny):
    """The attribution path (embeddings in, no ids) gives the rows' own hidden states."""
    model, processor = tiny
    encoder = QWEN2_5_VL.row_encoder(processor)
    rows = [MultiClassStrategy().prompt_rows(q, o)[0] for q, o in zip(checks.QUESTIONS, checks.OPTIONS)]
    encoded = encoder.encode(rows, with_suffix=False)
    features = checks.features_of(QWEN2_5_VL, model, processor)
    embeds = QWEN2_5_VL.input_embeddings(model)(encoded.input_ids)
    with torch.no_grad():
        via_ids = QWEN2_5_VL.language_forward(model, encoded, features).last_hidden_state
        via_embeds = QWEN2_5_VL.embeds_forward(
            model, embeds, encoded.attention_mask, encoded.token_type_ids, features
        )
    real = encoded.attention_mask.bool()
    assert (via_ids - via_embeds)[real].abs().max() == 0


def test_vision_tower_runs_once_per_image_per_call():
    # The tower takes all images' patches in one block; grid_thw has one row per image.
    seen = checks.check_vision_runs_once_per_call(
        "tiny:qwen2_5_vl", "model.visual", lambda args, kwargs: len(kwargs["grid_thw"])
    )
    assert seen == 2


def test_lora_targets_language_and_all_linear():
    language = checks.lora_wrapped("tiny:qwen2_5_vl", vision=False)
    assert len(language) == 2 * 7 and all(".language_model.layers." in n for n in language)
    everything = checks.lora_wrapped("tiny:qwen2_5_vl", vision=True)
    assert set(language) < set(everything)
    assert any(".visual.blocks." in n for n in everything) and any(".visual.merger." in n for n in everything)
    assert not any(n.endswith("lm_head") for n in everything)


def test_a_saved_base_loads_back_without_a_video_processor(tmp_path):
    assert checks.check_saved_base_loads_back("tiny:qwen2_5_vl", tmp_path) == 0


def test_attributions_score_what_the_predictor_scores():
    worst = checks.check_attribution_scores_equal_predictions("tiny:qwen2_5_vl")
    print(f"qwen2_5_vl attribution vs prediction max |diff| {worst:.2e}")


@pytest.mark.slow
def test_compare_smoke_writes_all_five_variants(tmp_path):
    comparison = checks.compare_smoke("tiny:qwen2_5_vl", tmp_path / "cmp")
    assert sorted(comparison["variants"]) == sorted(VARIANTS)
    assert comparison["n"] == 16
    check_evaluate_cli_and_app_on_a_comparison(tmp_path / "cmp", comparison, tmp_path)
