"""What the chat-templated decoder families (LLaVA-1.5, Gemma 3, Qwen2.5-VL, SmolVLM) share.

They are causal decoder VLMs whose image features (computed once per image) replace the image
tokens through ``mm_encoder_outputs``; prompts go through their chat templates
(:class:`~vqa_demo.model.chat_encoding.ChatRowEncoder`); positions are 0-based and passed explicitly
for the left-padded shared prefix.
"""

from __future__ import annotations

import re
import weakref

from vqa_demo.model.chat_encoding import ChatRowEncoder
from vqa_demo.model.family import DECODER_LINEARS, BackboneFamily, check_scope


class ChatDecoderFamily(BackboneFamily):
    """A decoder VLM prompted through its chat template; LoRA ``language`` scope on its text decoder."""

    end_token: str = ""  # ends the assistant's answer
    answer_lead: str = ""  # written before the answer in the assistant turn

    def __init__(self):
        self.image_tokens: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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
