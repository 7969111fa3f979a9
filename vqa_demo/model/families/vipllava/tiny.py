"""A tiny random ViP-LLaVA with LLaVA's processor and tokenizer and its own prompt, in-process.

Sizes follow transformers' own ``VipLlavaVisionText2TextModelTester`` in spirit (a CLIP tower of 2 layers,
a 2-layer Llama), at this project's tiny widths.
"""

from __future__ import annotations

from transformers import LlavaProcessor, VipLlavaConfig, VipLlavaForConditionalGeneration

from vqa_demo.model.families.llava.tiny import llava_style_parts
from vqa_demo.model.families.tiny_parts import seeded

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
    # LLaVA's processor and the same Llama-1/Vicuna specials plus <image>, with ViP-LLaVA's own prompt.
    processor, fields = llava_style_parts(image_size, patch_size, VIPLLAVA_CHAT_TEMPLATE)
    config = VipLlavaConfig(**fields, vision_feature_layer=(-2, -1))
    return seeded(VipLlavaForConditionalGeneration, config, seed), processor
