"""Prompt rows of chat-templated decoder VLMs, token for token as the family's own processor lays them out.

A row is the family's chat template around one user turn (the image, then the prompt text) with the
generation prompt; the suffix is the assistant's answer and the template's end-of-turn token::

    before (template + the processor's image span) | prompt text | after (end of turn + generation prompt)
    || lead + answer | end-of-turn

The template pieces come from rendering the processor's own chat template around a sentinel, and the
image span from running the processor itself on ``before`` with a blank image of the family's fixed
size: the ids are the processor's (tests compare them with ``processor(images, text=apply_chat_template(...))``).
The prompt text is tokenized on its own with ``split_special_tokens`` (a typed ``<image>`` stays text);
the template pieces around it begin and end with special tokens, which the tokenizer splits off before
BPE, so tokenizing the pieces apart gives the ids of tokenizing them together. The answer is tokenized
apart from the prompt, as the references do (a joint tokenization could merge across the boundary).

Budgets: ``max_text_tokens`` bounds the prompt text (the template and the image span come on top);
truncation shortens the question first, as :class:`~vqa_demo.model.encoding.RowEncoder` does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from PIL import Image

from vqa_demo.model.encoding import EncodedRows, RowEncoder
from vqa_demo.model.prompts import PromptRow

SENTINEL = "\u2063TEXT\u2063"  # invisible separators: no template writes them


@dataclass(frozen=True)
class ChatTemplateParts:
    """The chat template's text around a user turn ``(image, text)`` and around the assistant's answer.

    ``before`` holds the image placeholder the processor expands; ``after`` ends with the generation
    prompt; the answer is written as ``lead + answer + trail`` (``trail`` starts with the end of turn).
    """

    before: str
    after: str
    lead: str
    trail: str


def user_turn(text: str, image: Image.Image | None = None) -> list[dict]:
    """One user message: an image, then ``text`` (the layout every family's template accepts)."""
    picture = {"type": "image"} if image is None else {"type": "image", "image": image}
    return [{"role": "user", "content": [picture, {"type": "text", "text": text}]}]


def template_parts(processor) -> ChatTemplateParts:
    """Split ``processor.apply_chat_template``'s rendering around the user text and the answer."""
    prompt = processor.apply_chat_template(user_turn(SENTINEL), add_generation_prompt=True, tokenize=False)
    before, after = prompt.split(SENTINEL)
    answer = {"role": "assistant", "content": [{"type": "text", "text": SENTINEL}]}
    rendered = processor.apply_chat_template([*user_turn(SENTINEL), answer], tokenize=False)
    if not rendered.startswith(prompt):
        raise ValueError("the chat template writes the assistant turn differently from its generation prompt")
    lead, trail = rendered[len(prompt) :].split(SENTINEL)
    return ChatTemplateParts(before, after, lead, trail)


@dataclass
class ChatRows(EncodedRows):
    """:class:`EncodedRows` that name their image token: ``input_ids == image_token_id`` is the image
    span wherever padding moved it (Qwen2.5-VL's 3-D positions of a left-padded prefix need it)."""

    image_token_id: int = -1

    def to(self, device: torch.device) -> ChatRows:
        moved = super().to(device)
        return ChatRows(
            **{f.name: getattr(moved, f.name) for f in fields(EncodedRows)},
            image_token_id=self.image_token_id,
        )


class ChatRowEncoder(RowEncoder):
    """:class:`RowEncoder` for a chat-templated family: same contract (``EncodedRows``, budgets, ids).

    ``blank_image`` is an image of the fixed size every row's image is brought to, so the processor
    expands the placeholder to the family's fixed image span.
    """

    def __init__(self, processor, blank_image: Image.Image, max_text_tokens: int = 192):
        tokenizer = processor.tokenizer
        self.parts = template_parts(processor)
        before = processor(images=[[blank_image]], text=[self.parts.before])
        self.before_ids: list[int] = list(before["input_ids"][0])
        self.after_ids: list[int] = tokenizer(self.parts.after, add_special_tokens=False)["input_ids"]
        end_of_turn = tokenizer(self.parts.trail, add_special_tokens=False)["input_ids"][0]
        image_token_id = int(processor.image_token_id)
        self.image_tokens = self.before_ids.count(image_token_id)
        # The image span is inside prefix_ids (after the template's opening), so none goes in front.
        super().__init__(tokenizer, image_token_id, 0, separator="", max_text_tokens=max_text_tokens)
        self.eos_id = end_of_turn  # the answer ends, and generation stops, at the end of the turn

    def prefix_ids(self, row: PromptRow) -> tuple[list[int], bool]:
        """The whole prompt ``before + text + after`` (image span included) and a truncation flag."""
        text, truncated = self.prefix_text(row)
        return [*self.before_ids, *self.text_ids(text), *self.after_ids], truncated

    def suffix(self, text: str) -> tuple[list[int], bool]:
        """``lead + text`` ids and the end-of-turn id, and whether the text was cut to fit."""
        ids = self.text_ids(self.parts.lead + text)
        cut = len(ids) > self.max_suffix_tokens - 1
        return [*ids[: self.max_suffix_tokens - 1], self.eos_id], cut

    def encode(self, rows: list[PromptRow], with_suffix: bool = True) -> ChatRows:
        """:meth:`RowEncoder.encode`, naming the image token in the result."""
        encoded = super().encode(rows, with_suffix)
        return ChatRows(**vars(encoded), image_token_id=self.image_token_id)
