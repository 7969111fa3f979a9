"""Gemma 3 (image-text) behind the backbone family interface: SigLIP tower average-pooled to soft
tokens, Gemma 3 decoder (sliding + global layers). It also takes ``token_type_ids`` (image tokens
attend to each other) in the prefix pass, never in the continuation."""

from __future__ import annotations

from transformers import Gemma3ForConditionalGeneration

from vqa_demo.model.families.chat import ChatDecoderFamily
from vqa_demo.model.families.gemma3.tiny import tiny_gemma3


class Gemma3Family(ChatDecoderFamily):
    """Gemma 3: SigLIP tower average-pooled to soft tokens, Gemma 3 decoder (sliding + global layers)."""

    name = "gemma3"
    title = "Gemma 3"
    model_types = ("gemma3",)
    model_class = Gemma3ForConditionalGeneration
    tiny_sources = ("tiny:gemma3",)
    tiny_builder = staticmethod(tiny_gemma3)
    end_token = "<end_of_turn>"


GEMMA3 = Gemma3Family()
