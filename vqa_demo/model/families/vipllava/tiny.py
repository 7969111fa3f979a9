"""A tiny random ViP-LLaVA with LLaVA's processor and tokenizer and its own prompt, in-process.

Sizes follow transformers' own ``VipLlavaVisionText2TextModelTester`` in spirit (a CLIP tower of 2 layers,
a 2-layer Llama), at this project's tiny widths.
"""

from __future__ import annotations

from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlavaProcessor,
    VipLlavaConfig,
    VipLlavaForConditionalGeneration,
)

from vqa_demo.model.families.llava.tiny import llava_tokenizer
from vqa_demo.model.families.tiny_parts import (
    CLIP_MEAN,
    CLIP_STD,
    TEXT_SIZES,
    VISION_SIZES,
    seeded,
)

# llava-hf/vip-llava-7b-hf's documented prompt: the system sentence, "###Human: <image>\n{q}###Assistant:".
# Written from the model card without network: on the first real load, compare processor.chat_template.
VIPLLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.###Human: "
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% else %}###Assistant: "
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "</s>{% endif %}{% endfor %}{% if add_generation_prompt %}###Assistant:{% endif %}"
)


def tiny_vipllava(
    seed: int = 0, image_size: int = 16, patch_size: int = 4
) -> tuple[VipLlavaForConditionalGeneration, LlavaProcessor]:
    """ViP-LLaVA: CLIP tower read at several layers (here the last two, CLS dropped, concatenated),
    layer-normed MLP projector, Llama. An image gives ``(image_size / patch_size) ** 2`` ``<image>`` tokens."""
    tokenizer = llava_tokenizer()  # the same Llama-1/Vicuna specials plus <image>
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
        chat_template=VIPLLAVA_CHAT_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = VipLlavaConfig(
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
        vision_feature_layer=(-2, -1),
    )
    return seeded(VipLlavaForConditionalGeneration, config, seed), processor
