"""Prompt rows through a family's chat template, token for token as its processor lays them out.

An instruction-tuned decoder VLM sees a prompt as one user turn holding the image and the prompt text,
then the generation prompt; the answer (suffix) follows with the turn's end token::

    LLaVA-1.5: <s>USER: <image> x N \\n {prompt} ASSISTANT: | " answer" </s>
    Gemma 3:   <bos><start_of_turn>user\\n\\n\\n<start_of_image><image_soft_token> x N<end_of_image>\\n\\n
               {prompt}<end_of_turn>\\n<start_of_turn>model\\n | answer <end_of_turn>

The layout is taken from the processor itself, once: its chat template rendered around a placeholder,
and its own image-token expansion (``replace_image_token``) for one image. The text around the prompt
splits into a fixed part, ending (or starting) at a special token, and the plain text that touches the
prompt; the latter is tokenized together with the prompt, as one segment between special tokens, which
is exactly how the processor's tokenizer sees it. User text is tokenized with
``split_special_tokens=True``, so a typed special token stays text. Prefix and suffix are tokenized
separately and concatenated (a joint tokenization could merge across the boundary).
"""

from __future__ import annotations

import re

from PIL import Image

from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.prompts import PromptRow
from vqa_demo.model.template_guard import render_within

PLACEHOLDER = "\u2063PROMPT\u2063"  # invisible separators: no template changes or trims them


def special_pattern(tokenizer) -> re.Pattern:
    """A regex of every added token of ``tokenizer`` (the strings that split its input into segments)."""
    tokens = sorted(tokenizer.get_added_vocab(), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, tokens)))


def chat_layout(processor, image_size: tuple[int, int] = (32, 32)) -> tuple[str, str]:
    """``(before, after)``: the processor's rendered user turn (one image, then the prompt) and
    generation prompt around the prompt text, with the image placeholder expanded as the processor does."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PLACEHOLDER}]}]
    rendered = render_within(
        lambda: processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    )
    image_inputs = processor.image_processor([Image.new("RGB", image_size)], return_tensors="pt")
    expansion = processor.replace_image_token(image_inputs, 0)
    before, after = rendered.split(PLACEHOLDER)
    if before.count(processor.image_token) != 1:
        raise ValueError("the chat template must place exactly one image before the prompt text")
    return before.replace(processor.image_token, expansion), after


class ChatRowEncoder(RowEncoder):
    """:class:`RowEncoder`'s contract for a chat-templated decoder VLM (see the module docstring).

    ``answer_lead`` goes before every answer (LLaVA's assistant turn starts with a space);
    ``end_token`` ends it (and generation); image tokens get ``token_type_ids`` 1 (Gemma 3 lets them
    attend to each other), everything else 0.
    """

    def __init__(
        self,
        processor,
        end_token: str,
        answer_lead: str = "",
        max_text_tokens: int = 192,
        max_suffix_tokens: int | None = None,
    ):
        tokenizer = processor.tokenizer
        before, after = chat_layout(processor)
        image_token_id = processor.image_token_ids[0]
        super().__init__(
            tokenizer, image_token_id, 0, separator="", max_text_tokens=max_text_tokens,
            max_suffix_tokens=max_suffix_tokens,
        )  # fmt: skip
        specials = special_pattern(tokenizer)
        head_end = max((m.end() for m in specials.finditer(before)), default=0)
        tail_match = specials.search(after)
        tail_start = tail_match.start() if tail_match else len(after)
        self.lead_text, self.trail_text = before[head_end:], after[:tail_start]
        # The processor adds the tokenizer's special tokens unless the template wrote <bos> itself.
        add_special = not (tokenizer.bos_token and before.startswith(tokenizer.bos_token))
        self.head_ids = tokenizer(before[:head_end], add_special_tokens=add_special)["input_ids"]
        self.tail_ids = tokenizer(after[tail_start:], add_special_tokens=False)["input_ids"]
        self.image_seq_length = self.head_ids.count(image_token_id)
        self.answer_lead = answer_lead
        self.eos_id = tokenizer.convert_tokens_to_ids(end_token)

    def prefix_ids(self, row: PromptRow) -> tuple[list[int], bool]:
        """The ids of the segment holding the prompt text (template text touching it included), cut to
        the budget, and a truncation flag."""
        text, truncated = self.prefix_text(row)
        return self.text_ids(self.lead_text + text + self.trail_text), truncated

    def row_prefix(self, row: PromptRow) -> tuple[list[int], bool]:
        ids, truncated = self.prefix_ids(row)
        return self.head_ids + ids + self.tail_ids, truncated

    def token_types(self, prefix: list[int], suffix: list[int]) -> list[int]:
        return [int(token == self.image_token_id) for token in prefix] + [0] * len(suffix)

    def suffix(self, text: str) -> tuple[list[int], bool]:
        """Suffix ids (``answer_lead`` + text, then the end token), and whether text was cut to fit."""
        ids = self.text_ids(self.answer_lead + text) if text else []
        cut = len(ids) > self.max_suffix_tokens - 1
        return [*ids[: self.max_suffix_tokens - 1], self.eos_id], cut
