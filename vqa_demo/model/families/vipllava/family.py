"""ViP-LLaVA behind the backbone family interface: LLaVA-1.5's layout with image features read from
several CLIP layers (CLS dropped, concatenated, layer-normed projector), a Llama decoder; prompts
through its chat template (``...###Human: <image>\\n{q}###Assistant:`` + `` answer</s>``).

Everything else is the chat-decoder default: features once per image ``float[B, N, D]`` fed back through
``mm_encoder_outputs``, 0-based positions, the shared-prefix cache for COND_GEN.
"""

from __future__ import annotations

from transformers import VipLlavaForConditionalGeneration

from vqa_demo.model.families.chat import ChatDecoderFamily
from vqa_demo.model.families.vipllava.tiny import tiny_vipllava


class VipLlavaFamily(ChatDecoderFamily):
    """ViP-LLaVA: CLIP tower (several layers), layer-normed MLP projector, Llama decoder."""

    name = "vipllava"
    title = "ViP-LLaVA"
    model_types = ("vipllava",)
    model_class = VipLlavaForConditionalGeneration
    tiny_sources = ("tiny:vipllava",)
    tiny_builder = staticmethod(tiny_vipllava)
    end_token = "</s>"
    answer_lead = " "
    token_types_in_prefix = False

    def pixel_shape(self, processor) -> tuple[int, int, int]:
        crop = processor.image_processor.crop_size
        return 3, crop["height"], crop["width"]


VIPLLAVA = VipLlavaFamily()
