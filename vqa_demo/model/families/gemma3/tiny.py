"""A tiny random Gemma 3 (image-text) with its own processor, tokenizer and the hub chat template, in-process."""

from __future__ import annotations

import torch
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    PreTrainedTokenizerFast,
)

from vqa_demo.model.families.tiny_parts import TEXT_SIZES, VISION_SIZES, byte_level_tokenizer, seeded

GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    '{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = "" -%}'
    "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    '{{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}{%- endif -%}'
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}{%- endfor -%}"
    '{%- else -%}{{ raise_exception("Invalid content type") }}{%- endif -%}'
    "{{ '<end_of_turn>\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}"
)


def gemma3_tokenizer() -> PreTrainedTokenizerFast:
    """Gemma 3's specials; ``<bos>`` is added in front, an image is ``<start_of_image>`` in the text."""
    specials = (
        "<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
        "<end_of_image>", "<image_soft_token>",
    )  # fmt: skip
    return byte_level_tokenizer(
        specials,
        add_bos=True,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )


def tiny_gemma3(
    seed: int = 0, image_size: int = 16, patch_size: int = 4, sliding_window: int = 64
) -> tuple[Gemma3ForConditionalGeneration, Gemma3Processor]:
    """Gemma 3: SigLIP tower, average-pooled to 4 soft tokens per image, Gemma 3 text (sliding + global).

    The processor expands each ``<start_of_image>`` into
    ``"\\n\\n<start_of_image>" + 4 x <image_soft_token> + "<end_of_image>\\n\\n"``.
    """
    tokenizer = gemma3_tokenizer()
    tokens_per_image = 4
    image_processor = Gemma3ImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=tokens_per_image,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Gemma3Config(
        text_config=dict(
            **TEXT_SIZES,
            num_key_value_heads=2,
            head_dim=8,
            query_pre_attn_scalar=8,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
            # One local (sliding-window) and one global layer, Gemma 3's two kinds.
            layer_types=["sliding_attention", "full_attention"],
            sliding_window=sliding_window,
            bos_token_id=ids("<bos>"),
            eos_token_id=ids("<eos>"),
            pad_token_id=ids("<pad>"),
        ),
        # As in google/gemma-3-4b-it: SigLIP without its attention-pooling head.
        vision_config=dict(
            model_type="siglip_vision_model",
            **VISION_SIZES,
            image_size=image_size,
            patch_size=patch_size,
            vision_use_head=False,
        ),
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    model = seeded(Gemma3ForConditionalGeneration, config, seed)
    # transformers starts the projector at zero (a checkpoint overwrites it); a stand-in kept that way
    # would give image features of exactly 0, and no image test could fail. Same scale as the embeddings.
    projector = model.model.multi_modal_projector.mm_input_projection_weight
    with torch.no_grad():
        projector.normal_(
            0.0, config.text_config.initializer_range, generator=torch.Generator().manual_seed(seed)
        )
    return model, processor
