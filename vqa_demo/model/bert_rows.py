"""Rows for the BERT-tokenized encoder families (BLIP-VQA, ViLT), the way their processors lay them out.

Row layout (right padded; no image tokens: these families take the image outside the text)::

    [CLS] head question tail <sep> [SEP] [PAD] ...       the text input (BLIP's question encoder, ViLT's text)
    [DEC] answer [SEP]                                    BLIP's answer-decoder row (``labels``, training only)

A row is what ``processor(images=..., text=prompt)`` gives for the same prompt text, token for
token: the tokenizer's ``[CLS] text [SEP]``. The text budget is the smaller of the prompt config's
``max_text_tokens`` and the model's position limit (ViLT: 40 tokens, BLIP: 512), both special tokens
included; over budget the question is shortened first, then the end of the tail, and the row is
flagged ``truncated`` (:class:`~vqa_demo.model.encoding.RowEncoder`'s rule). User text is tokenized with
``split_special_tokens=True``, so a typed ``[SEP]`` stays text.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from vqa_demo.model.encoding import EncodedRows, RowEncoder, answer_token_budget
from vqa_demo.model.prompts import PromptRow


class BertRowEncoder(RowEncoder):
    """:class:`RowEncoder`'s contract for ``[CLS] text [SEP]`` rows; answers end in ``[SEP]``.

    ``decoder_start_id`` (BLIP's ``[DEC]``) starts an answer-decoder row; ``max_positions`` (the
    model's position limit) caps both the text and the answer budget.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_positions: int,
        separator: str = "\n",
        max_text_tokens: int = 192,
        decoder_start_id: int | None = None,
    ):
        limit = min(max_text_tokens, max_positions)
        # RowEncoder's text budget keeps one place for a leading special token; these rows have two.
        # No image tokens in these rows; the pad id stands in so that an "image position" mask marks
        # padding only (attributions reset those positions to their own, pad, embedding).
        super().__init__(
            tokenizer,
            image_token_id=tokenizer.pad_token_id,
            image_seq_length=0,
            separator=separator,
            max_text_tokens=limit - 1,
            max_suffix_tokens=min(answer_token_budget(), max_positions - 1),
        )
        self.text_limit = limit
        self.cls_id = tokenizer.cls_token_id
        self.eos_id = tokenizer.sep_token_id  # [SEP] ends a question and an answer
        self.decoder_start_id = decoder_start_id

    def prefix_ids(self, row: PromptRow) -> tuple[list[int], bool]:
        """``[CLS] text [SEP]`` ids within the budget, and whether text was cut."""
        text, truncated = self.prefix_text(row)
        return [self.cls_id, *self.text_ids(text), self.eos_id], truncated

    def answer_ids(self, text: str) -> tuple[list[int], bool]:
        """The answer-decoder row ``[DEC] answer [SEP]``, and whether the answer was cut to fit."""
        assert self.decoder_start_id is not None, "this family has no answer decoder"
        ids, cut = self.suffix(text)
        return [self.decoder_start_id, *ids], cut

    def encode(self, rows: list[PromptRow], with_suffix: bool = True) -> EncodedRows:
        """Text rows ``[R, T]``; with ``with_suffix`` (and suffixes present), ``labels long[R, S]`` are
        the answer-decoder rows ``[DEC] answer [SEP]`` padded with -100 (not aligned with the text)."""
        encoded = [self.prefix_ids(row) for row in rows]
        ids, mask = self.pad_suffixes([seq for seq, _ in encoded])
        truncated = [cut for _, cut in encoded]
        labels = None
        if with_suffix and any(row.suffix is not None for row in rows):
            assert all(row.suffix is not None for row in rows), "training rows all carry an answer"
            answers = [self.answer_ids(row.suffix) for row in rows]
            answer_ids, answer_mask = self.pad_suffixes([seq for seq, _ in answers])
            labels = answer_ids.masked_fill(answer_mask == 0, -100)
            truncated = [cut or answer_cut for cut, (_, answer_cut) in zip(truncated, answers)]
        return EncodedRows(
            input_ids=ids,
            attention_mask=mask,
            token_type_ids=torch.zeros_like(ids),
            labels=labels,
            prefix_lengths=mask.sum(dim=1),
            truncated=truncated,
        )


def position_limit(tokenizer: PreTrainedTokenizerBase, model_limit: int) -> int:
    """The text length a model takes: its position embeddings, or less where the tokenizer says so."""
    return min(int(model_limit), int(getattr(tokenizer, "model_max_length", model_limit) or model_limit))
