"""A tiny random SmolVLM (Idefics3) with its own processor, tokenizer and the hub chat template, in-process."""

from __future__ import annotations

from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    PreTrainedTokenizerFast,
)

from vqa_demo.model.families.tiny_parts import TEXT_SIZES, VISION_SIZES, byte_level_tokenizer, seeded

SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


SMOLVLM_GRID_TOKENS = tuple(f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5))


def smolvlm_tokenizer() -> PreTrainedTokenizerFast:
    """SmolLM2's specials plus Idefics3's image tokens (row/column tags included); pads with ``<|im_end|>``."""
    specials = (
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>", "<fake_token_around_image>",
        "<image>", "<global-img>", *SMOLVLM_GRID_TOKENS,
    )  # fmt: skip
    return byte_level_tokenizer(
        specials,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>", "end_of_utterance_token": "<end_of_utterance>"},
    )


def tiny_smolvlm(
    seed: int = 0, tile_size: int = 16, patch_size: int = 4
) -> tuple[Idefics3ForConditionalGeneration, Idefics3Processor]:
    """SmolVLM (Idefics3 architecture): SigLIP on ``tile_size`` tiles, pixel shuffle (x2), Llama.

    The processor splits an image into at most 2x2 tiles plus a global view, each of
    ``(tile_size / patch_size / 2) ** 2`` ``<image>`` tokens (4 by default), framed by
    ``<fake_token_around_image>`` and ``<row_r_col_c>`` / ``<global-img>`` tags.
    """
    tokenizer = smolvlm_tokenizer()
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * tile_size},
        max_image_size={"longest_edge": tile_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_seq_len = (tile_size // patch_size // 2) ** 2
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Idefics3Config(
        vision_config=dict(**VISION_SIZES, image_size=tile_size, patch_size=patch_size),
        text_config=dict(
            model_type="llama",
            **TEXT_SIZES,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
            bos_token_id=ids("<|im_start|>"),
            eos_token_id=ids("<end_of_utterance>"),
            pad_token_id=ids("<|im_end|>"),
        ),
        image_token_id=ids("<image>"),
        scale_factor=2,
        tie_word_embeddings=False,
    )
    return seeded(Idefics3ForConditionalGeneration, config, seed), processor
