"""Turn prompt rows into PaliGemma token tensors, the way ``PaliGemmaProcessor`` lays them out.

Row layout (right padded)::

    [<image> x N] <bos> head question tail <sep> | suffix <eos> | <pad> ...
    |------------- prefix: token_type 0 ------------| suffix: 1 |

Attention is prefix-LM: bidirectional over the prefix, causal over the suffix (transformers builds it
from ``token_type_ids``). Every row equals ``PaliGemmaProcessor(text=prefix, suffix=suffix)`` token
for token: the prompt text is tokenized in one piece, and exactly one ``<bos>`` follows the image
tokens in both generations (PaliGemma 1's tokenizer is configured to add a ``<bos>`` of its own, the
processor switches that off, and the encoder never asks the tokenizer for special tokens). User text
is tokenized with ``split_special_tokens=True`` so a typed ``<image>`` or ``<eos>`` stays plain text
(the processor would turn it into a special token), and truncation only ever removes text: first
from the question, then from the end of the tail. The image token count is fixed by the processor.

Suffixes (answers) get their own budget, sized so that every option the input layer accepts
(``MAX_OPTION_CHARS``) is scored and trained in full: a character is at most 4 UTF-8 bytes and
neither byte-level BPE nor SentencePiece's byte fallback spends more than one token per byte. Only
text that never passed that layer (a data file's overlong answer) can be cut, and the row is then
flagged ``truncated``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from vqa_demo.inputs.text import MAX_OPTION_CHARS
from vqa_demo.model.prompts import PromptRow

MAX_TOKENS_PER_CHAR = 4


def answer_token_budget(max_chars: int = MAX_OPTION_CHARS) -> int:
    """Suffix tokens (``<eos>`` included) that any answer of ``max_chars`` characters fits in.

    One more than ``MAX_TOKENS_PER_CHAR`` per character for SentencePiece's word-boundary piece.
    """
    return MAX_TOKENS_PER_CHAR * max_chars + 1 + 1


@dataclass
class EncodedRows:
    """A padded batch of R rows of length T.

    input_ids, attention_mask, token_type_ids: long[R, T]; labels: long[R, T] with -100 outside the
    suffix (None when no row has a suffix); prefix_lengths: long[R] (image + text prefix tokens);
    truncated: one flag per row, True when text (prompt or suffix) was cut to fit a budget.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor | None
    prefix_lengths: torch.Tensor
    truncated: list[bool]

    def select(self, part: slice) -> EncodedRows:
        """Rows ``part`` (a micro-batch), padded to the same T as the whole batch."""
        take = lambda t: t[part] if t is not None else None  # noqa: E731
        return EncodedRows(
            take(self.input_ids),
            take(self.attention_mask),
            take(self.token_type_ids),
            take(self.labels),
            take(self.prefix_lengths),
            self.truncated[part],
        )

    def to(self, device: torch.device) -> EncodedRows:
        move = lambda t: t.to(device) if t is not None else None  # noqa: E731
        return EncodedRows(
            move(self.input_ids),
            move(self.attention_mask),
            move(self.token_type_ids),
            move(self.labels),
            move(self.prefix_lengths),
            self.truncated,
        )


class RowEncoder:
    """Encodes :class:`PromptRow` lists for one tokenizer and image token count."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        image_token_id: int,
        image_seq_length: int,
        separator: str = "\n",
        max_text_tokens: int = 192,
        max_suffix_tokens: int | None = None,
    ):
        self.tokenizer = tokenizer
        self.image_token_id = image_token_id
        self.image_seq_length = image_seq_length
        self.max_text_tokens = max_text_tokens
        # The default fits every option the inputs accept; smaller budgets are for known-short suffixes.
        self.max_suffix_tokens = max_suffix_tokens or answer_token_budget()
        self.separator = separator
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id
        if max_text_tokens < len(self.text_ids(separator)) + 2:
            raise ValueError(f"max_text_tokens={max_text_tokens} leaves no room for text")

    def text_ids(self, text: str) -> list[int]:
        """Token ids of plain text; special-token strings in it are split into ordinary tokens."""
        if not text:
            return []
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def prefix_text(self, row: PromptRow) -> tuple[str, bool]:
        """The prompt text that is encoded (head + question + tail + separator), cut to the budget.

        The whole text is tokenized in one piece, exactly as ``PaliGemmaProcessor`` tokenizes
        ``<bos>{prompt}\\n`` (tokenizing the parts separately leaves a lone space token after a head
        like ``"answer en "``, and merges across part boundaries differ). Over budget, the question
        is shortened at a token boundary (its longest prefix that fits), then the end of the tail:
        the result is still the processor's encoding of a shorter prompt. Returns ``(text, truncated)``.
        """
        parts = [row.head, row.question, row.tail]
        budget = self.max_text_tokens - 1  # the <bos>
        if self.count(parts) <= budget:
            return "".join(parts) + self.separator, False
        for index in (1, 2, 0):  # question first, then the tail's end, the head only as a last resort
            parts[index] = self.shortened(parts, index, budget)
            if self.count(parts) <= budget:
                break
        return "".join(parts) + self.separator, True

    def count(self, parts: list[str]) -> int:
        """Number of tokens of the joined parts plus the separator."""
        return len(self.text_ids("".join(parts) + self.separator))

    def shortened(self, parts: list[str], index: int, budget: int) -> str:
        """The longest token-boundary prefix of ``parts[index]`` with which all parts fit ``budget``."""
        text = parts[index]
        spans = self.tokenizer(
            text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True
        )["offset_mapping"]
        cuts = sorted({0, *(end for _, end in spans)})  # byte pieces of one character share an end

        def fits(cut: int) -> bool:
            return self.count([*parts[:index], text[:cut], *parts[index + 1 :]]) <= budget

        # Token counts grow with the cut almost always by one per token: start at the estimate and walk.
        excess = self.count(parts) - budget
        position = max(0, len(cuts) - 1 - excess)
        while position > 0 and not fits(cuts[position]):
            position -= 1
        while position + 1 < len(cuts) and fits(cuts[position + 1]):
            position += 1
        return text[: cuts[position]]

    def prefix_ids(self, row: PromptRow) -> tuple[list[int], bool]:
        """Text prefix ids (``<bos>`` ... ``<sep>``, no image tokens) within the budget, and a truncation flag."""
        text, truncated = self.prefix_text(row)
        return [self.bos_id, *self.text_ids(text)], truncated

    def suffix(self, text: str) -> tuple[list[int], bool]:
        """Suffix ids ending in ``<eos>``, and whether text was cut (before the ``<eos>``) to fit."""
        ids = self.text_ids(text)
        cut = len(ids) > self.max_suffix_tokens - 1
        return [*ids[: self.max_suffix_tokens - 1], self.eos_id], cut

    def suffix_ids(self, text: str) -> list[int]:
        """Suffix ids ending in ``<eos>`` (see :meth:`suffix`)."""
        return self.suffix(text)[0]

    def row_prefix(self, row: PromptRow) -> tuple[list[int], bool]:
        """The whole prefix of a row (image tokens, then :meth:`prefix_ids`) and its truncation flag."""
        prefix, was_cut = self.prefix_ids(row)
        return [self.image_token_id] * self.image_seq_length + prefix, was_cut

    def token_types(self, prefix: list[int], suffix: list[int]) -> list[int]:
        """``token_type_ids`` of one row: 0 on the prefix, 1 on the suffix (PaliGemma's prefix-LM mask)."""
        return [0] * len(prefix) + [1] * len(suffix)

    def encode(self, rows: list[PromptRow], with_suffix: bool = True) -> EncodedRows:
        """Encode rows; suffixes are appended (and labelled) only when ``with_suffix`` and present."""
        sequences, types, label_rows, prefix_lengths, truncated = [], [], [], [], []
        for row in rows:
            prefix, was_cut = self.row_prefix(row)
            suffix, suffix_cut = [], False
            if with_suffix and row.suffix is not None:
                suffix, suffix_cut = self.suffix(row.suffix)
            sequences.append(prefix + suffix)
            types.append(self.token_types(prefix, suffix))
            label_rows.append([-100] * len(prefix) + suffix)
            prefix_lengths.append(len(prefix))
            truncated.append(was_cut or suffix_cut)
        length = max(len(s) for s in sequences)
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        token_type_ids = torch.zeros((len(rows), length), dtype=torch.long)
        labels = torch.full((len(rows), length), -100, dtype=torch.long)
        for i, (seq, typ, lab) in enumerate(zip(sequences, types, label_rows)):
            input_ids[i, : len(seq)] = torch.tensor(seq)
            attention_mask[i, : len(seq)] = 1
            token_type_ids[i, : len(seq)] = torch.tensor(typ)
            labels[i, : len(seq)] = torch.tensor(lab)
        has_suffix = any(len(seq) > length for seq, length in zip(sequences, prefix_lengths))
        return EncodedRows(
            input_ids,
            attention_mask,
            token_type_ids,
            labels if has_suffix else None,
            torch.tensor(prefix_lengths),
            truncated,
        )

    def pad_suffixes(self, suffixes: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad suffix id lists: returns ids long[R, L] and mask long[R, L]."""
        length = max(len(s) for s in suffixes)
        ids = torch.full((len(suffixes), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(suffixes), length), dtype=torch.long)
        for i, seq in enumerate(suffixes):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        return ids, mask
