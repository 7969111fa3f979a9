"""A tiny random Qwen2.5-VL with its own processor, tokenizer and the hub chat template, in-process."""

from __future__ import annotations

from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

from vqa_demo.model.families.qwen2_5_vl.processor import ImageOnlyQwen2_5_VLProcessor
from vqa_demo.model.families.tiny_parts import TEXT_SIZES, byte_level_tokenizer, seeded

QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen2_5_vl_tokenizer() -> PreTrainedTokenizerFast:
    """Qwen2's specials; no ``<bos>`` is added, ``<|endoftext|>`` pads, ``<|im_end|>`` ends a turn."""
    specials = (
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
        "<|image_pad|>", "<|video_pad|>",
    )  # fmt: skip
    return byte_level_tokenizer(
        specials,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )


def tiny_qwen2_5_vl(
    seed: int = 0, image_size: int = 32
) -> tuple[Qwen2_5_VLForConditionalGeneration, ImageOnlyQwen2_5_VLProcessor]:
    """Qwen2.5-VL: native-resolution patches (4 px, 2x2 merged), window attention, 3-D (m)RoPE.

    An ``image_size`` square image gives ``(image_size / 8) ** 2`` ``<|image_pad|>`` tokens; other
    sizes are resized (multiples of 8, area within 16x16 .. 32x32) as the real processor does.
    """
    tokenizer = qwen2_5_vl_tokenizer()
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": 16 * 16, "longest_edge": image_size * image_size},
        patch_size=4,
        temporal_patch_size=2,
        merge_size=2,
    )
    processor = ImageOnlyQwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_5_VL_CHAT_TEMPLATE
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config=dict(
            **TEXT_SIZES,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
            # head_dim 8 = 2 * (2 + 1 + 1): temporal, height, width rotary sections.
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
            bos_token_id=None,
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=4,
            patch_size=4,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=16,
            fullatt_block_indexes=[1],
            out_hidden_size=32,
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    return seeded(Qwen2_5_VLForConditionalGeneration, config, seed), processor
