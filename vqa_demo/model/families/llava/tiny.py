"""A tiny random LLaVA-1.5 with its own processor, tokenizer and the hub chat template, in-process."""

from __future__ import annotations

from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from vqa_demo.model.families.tiny_parts import (
    CLIP_MEAN,
    CLIP_STD,
    TEXT_SIZES,
    VISION_SIZES,
    byte_level_tokenizer,
    seeded,
)

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def llava_tokenizer() -> PreTrainedTokenizerFast:
    """Llama-1/Vicuna's specials plus ``<image>``; ``<s>`` is added in front as the hub tokenizer does."""
    return byte_level_tokenizer(
        ("<unk>", "<s>", "</s>", "<pad>", "<image>"),
        add_bos=True,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )


def llava_style_parts(image_size: int, patch_size: int, chat_template: str) -> tuple[LlavaProcessor, dict]:
    """The LLaVA processor with ``chat_template`` and the config fields LLaVA-style models share
    (CLIP tower, Llama decoder, ``<image>`` token and count), for LLaVA and ViP-LLaVA alike."""
    tokenizer = llava_tokenizer()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template,
    )
    ids = tokenizer.convert_tokens_to_ids
    fields = dict(
        vision_config=CLIPVisionConfig(
            **VISION_SIZES, image_size=image_size, patch_size=patch_size, projection_dim=32
        ),
        text_config=dict(
            model_type="llama",
            **TEXT_SIZES,
            num_key_value_heads=4,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
            bos_token_id=ids("<s>"),
            eos_token_id=ids("</s>"),
            pad_token_id=ids("<pad>"),
        ),
        image_token_index=ids("<image>"),
        image_seq_length=(image_size // patch_size) ** 2,
    )
    return processor, fields


def tiny_llava(
    seed: int = 0, image_size: int = 16, patch_size: int = 4
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """LLaVA-1.5: CLIP vision tower (penultimate layer, CLS dropped), 2-layer MLP projector, Llama.

    An image gives ``(image_size / patch_size) ** 2`` ``<image>`` tokens (16 by default).
    """
    processor, fields = llava_style_parts(image_size, patch_size, LLAVA_CHAT_TEMPLATE)
    config = LlavaConfig(**fields, vision_feature_select_strategy="default", vision_feature_layer=-2)
    return seeded(LlavaForConditionalGeneration, config, seed), processor
