"""LLaVA-1.5 behind the backbone family interface: CLIP tower (penultimate layer, CLS dropped), MLP
projector, Llama decoder; prompts through its chat template (``USER: <image>\\n{q} ASSISTANT:``)."""

from __future__ import annotations

import torch
from transformers import LlavaForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vqa_demo.model.families.chat import ChatDecoderFamily
from vqa_demo.model.families.llava.tiny import tiny_llava


class LlavaFamily(ChatDecoderFamily):
    """LLaVA-1.5: CLIP tower (penultimate layer, CLS dropped), MLP projector, Llama decoder."""

    name = "llava"
    title = "LLaVA-1.5"
    model_types = ("llava",)
    model_class = LlavaForConditionalGeneration
    tiny_sources = ("tiny:llava",)
    tiny_builder = staticmethod(tiny_llava)
    end_token = "</s>"
    answer_lead = " "
    token_types_in_prefix = False

    def pixel_shape(self, processor) -> tuple[int, int, int]:
        crop = processor.image_processor.crop_size
        return 3, crop["height"], crop["width"]

    def image_features(self, core, pixel_values: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """``float[B, N, D]``: the projected features of the configured tower layer, one row per image."""
        config = core.config
        with torch.set_grad_enabled(grad):
            out = core.model.get_image_features(
                pixel_values.to(core.dtype),
                vision_feature_layer=config.vision_feature_layer,
                vision_feature_select_strategy=config.vision_feature_select_strategy,
            )
        return torch.stack(list(out.pooler_output))

    def encoder_outputs(self, features: torch.Tensor) -> dict[str, BaseModelOutputWithPooling]:
        """LLaVA concatenates a sequence of per-image ``float[N, D]`` features."""
        return {"image": BaseModelOutputWithPooling(pooler_output=features.unbind(0))}


LLAVA = LlavaFamily()
