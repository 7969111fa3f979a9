"""LLaVA-1.5 and Gemma 3 behind the backbone family interface (:mod:`vqa_demo.model.family`).

Both are causal decoder VLMs whose image features (computed once per image) replace the image
tokens through ``mm_encoder_outputs``; prompts go through their chat templates
(:class:`~vqa_demo.model.chat_encoding.ChatRowEncoder`); positions are 0-based and passed explicitly
for the left-padded shared prefix. Gemma 3 also takes ``token_type_ids`` (image tokens attend to each
other) in the prefix pass, never in the continuation.
"""

from __future__ import annotations

import re
import weakref

import torch
from transformers import Gemma3ForConditionalGeneration, LlavaForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vqa_demo.model.chat_encoding import ChatRowEncoder
from vqa_demo.model.family import DECODER_LINEARS, BackboneFamily, check_scope, register
from vqa_demo.model.tiny_families import tiny_gemma3, tiny_llava


class ChatDecoderFamily(BackboneFamily):
    """A decoder VLM prompted through its chat template; LoRA ``language`` scope on its text decoder."""

    end_token: str = ""  # ends the assistant's answer
    answer_lead: str = ""  # written before the answer in the assistant turn
    tiny_builder = None

    def __init__(self):
        self.image_tokens: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def build_tiny(self, source: str, seed: int = 0):
        return type(self).tiny_builder(seed=seed)

    def row_encoder(self, processor, separator: str = "\n", max_text_tokens: int = 192) -> ChatRowEncoder:
        """The chat-template encoder (the template's structure replaces ``separator``)."""
        return ChatRowEncoder(processor, self.end_token, self.answer_lead, max_text_tokens=max_text_tokens)

    def image_seq_length(self, processor) -> int:
        # Rendering the template is not free and this is read per prediction: once per processor.
        if processor not in self.image_tokens:
            self.image_tokens[processor] = self.row_encoder(processor).image_seq_length
        return self.image_tokens[processor]

    def lora_targets(self, scope: str, names: tuple[str, ...] = DECODER_LINEARS) -> dict:
        """``language``: the text decoder's attention and MLP linears (7 per layer); ``all-linear``: also
        the vision tower and projector (peft's ``all-linear``, ``lm_head`` excluded)."""
        check_scope(scope)
        if scope == "all-linear":
            return {"target_modules": "all-linear"}
        layers = r".*\.language_model\.layers\.\d+\."
        return {"target_modules": layers + r".*\.(" + "|".join(map(re.escape, names)) + r")$"}


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


class Gemma3Family(ChatDecoderFamily):
    """Gemma 3: SigLIP tower average-pooled to soft tokens, Gemma 3 decoder (sliding + global layers)."""

    name = "gemma3"
    title = "Gemma 3"
    model_types = ("gemma3",)
    model_class = Gemma3ForConditionalGeneration
    tiny_sources = ("tiny:gemma3",)
    tiny_builder = staticmethod(tiny_gemma3)
    end_token = "<end_of_turn>"


LLAVA = register(LlavaFamily())
GEMMA3 = register(Gemma3Family())
