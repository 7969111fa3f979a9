"""A byte-level BPE tokenizer for small PaliGemma-architecture models.

Byte-level means every input, emoji and right-to-left text included, maps to known tokens: there is
no ``<unk>`` in practice. The special tokens match what ``PaliGemmaProcessor`` expects.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<image>")

# Enough text for the tiny test models: prompt words, separators and digits get their own merges.
TINY_CORPUS = (
    "What colour is the circle?\nOptions: A) red | B) blue | C) green | D) yellow\nAnswer:",
    "How many shapes are there?\nHypothesis: three squares and a triangle",
    "answer en which is the largest bar? choose from: apples \t pears \t plums \t figs",
    "caption en a bar chart of fruit sales. The table lists events at 10:35 and 11:00.",
    "0 1 2 3 4 5 6 7 8 9 left right top bottom square triangle star purple orange",
)


def byte_level_bpe(texts: Iterable[str], vocab_size: int, special_tokens: Iterable[str]) -> Tokenizer:
    """A byte-level BPE trained on ``texts`` whose first ids are ``special_tokens`` (in order)."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    return core


def train_byte_level_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` and wrap it for transformers.

    ``vocab_size`` includes the 256 byte symbols and the special tokens, so it must exceed 261.
    """
    if vocab_size <= 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed {256 + len(SPECIAL_TOKENS)}, got {vocab_size}")
    return PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(texts, vocab_size, SPECIAL_TOKENS),
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="right",
    )


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The tokenizer the in-process test models use (vocabulary of ~320, deterministic)."""
    return train_byte_level_tokenizer(list(TINY_CORPUS) * 4, vocab_size=320)
