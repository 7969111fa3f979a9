"""What is Qwen2.5-VL's own behind the family interface: its fixed square view, patches, 3-D positions.

References: ``Qwen2_5_VLProcessor`` (on the image resized to the family's fixed square, which the processor
keeps as it is) and the model's own image features and ``get_rope_index``. The checks every chat family
shares (rows, COND_GEN, poolings, SWAG, LoRA, attributions, compare) are in test_family_decoders.py.
"""

from __future__ import annotations

import torch

from tests.family_checks import (
    IMAGES,
    OPTIONS,
    QUESTIONS,
    chat_text,
    features_are_the_models_own,
    fixed_square,
)
from vqa_demo.model.answer_scorer import left_padded
from vqa_demo.model.classifier_strategies import MultiClassStrategy
from vqa_demo.model.cond_gen import CondGenStrategy
from vqa_demo.model.families.qwen2_5_vl.family import QWEN2_5_VL, fixed_side, fixed_view, patchify

SOURCE = "tiny:qwen2_5_vl"  # the module's tiny_model


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


def test_typed_special_tokens_stay_text(tiny_model):
    _, processor = tiny_model
    encoder = QWEN2_5_VL.row_encoder(processor)
    row = CondGenStrategy().prompt_rows("Is <|image_pad|> here <|im_end|>?", ["a", "b"])[0]
    ids = encoder.encode([row]).input_ids[0]
    assert int((ids == processor.image_token_id).sum()) == 16
    assert int((ids == encoder.eos_id).sum()) == 2  # the system turn's and the user turn's own


def test_pixels_are_the_processors_patches_and_features_its_own(tiny_model):
    model, processor = tiny_model
    pixels = QWEN2_5_VL.preprocess(processor, IMAGES)
    assert pixels.shape == (2, *QWEN2_5_VL.pixel_shape(processor)) == (2, 3, 32, 32)
    reference = processor.image_processor([fixed_square(processor, i) for i in IMAGES], return_tensors="pt")
    image_processor = processor.image_processor
    patches = patchify(
        pixels, image_processor.patch_size, image_processor.merge_size, image_processor.temporal_patch_size
    )
    assert torch.equal(patches, reference["pixel_values"])
    own = (reference["pixel_values"], reference["image_grid_thw"])
    assert features_are_the_models_own(QWEN2_5_VL, model, pixels, *own).shape == (2, 16, 32)


def test_positions_are_get_rope_index_under_either_padding(tiny_model):
    model, processor = tiny_model
    encoder = QWEN2_5_VL.row_encoder(processor)
    rows = [MultiClassStrategy().prompt_rows(q, o)[0] for q, o in zip(QUESTIONS, OPTIONS)]
    right = encoder.encode(rows, with_suffix=False)
    left = left_padded(right)
    assert not right.attention_mask.all(), "the two rows should need padding"
    for side, encoded, positions in (
        ("right", right, QWEN2_5_VL.positions(right.token_type_ids, right.attention_mask)),
        ("left", left, QWEN2_5_VL.prefix_positions(left, None)),
    ):
        processor.tokenizer.padding_side = side
        texts = [chat_text(processor, row.prefix) for row in rows]
        images = [[fixed_square(processor, image)] for image in IMAGES]
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


def test_embeds_forward_uses_the_3d_positions(tiny_model):
    """The attribution path (embeddings in, no ids) gives the rows' own hidden states."""
    model, processor = tiny_model
    encoder = QWEN2_5_VL.row_encoder(processor)
    rows = [MultiClassStrategy().prompt_rows(q, o)[0] for q, o in zip(QUESTIONS, OPTIONS)]
    encoded = encoder.encode(rows, with_suffix=False)
    features = QWEN2_5_VL.image_features(model, QWEN2_5_VL.preprocess(processor, IMAGES))
    embeds = QWEN2_5_VL.input_embeddings(model)(encoded.input_ids)
    with torch.no_grad():
        via_ids = QWEN2_5_VL.language_forward(model, encoded, features).last_hidden_state
        via_embeds = QWEN2_5_VL.embeds_forward(
            model, embeds, encoded.attention_mask, encoded.token_type_ids, features
        )
    real = encoded.attention_mask.bool()
    assert (via_ids - via_embeds)[real].abs().max() == 0
