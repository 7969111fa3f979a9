"""What the tiny random models of the families share: sizes, seeding and in-process tokenizers.

Each family's ``tiny.py`` builds ``(model, processor)``: the family's own model class from a small
config (hidden <= 64, 2 layers, images of 16-32 pixels) and its own processor class around an
in-process tokenizer that carries the special tokens of the family's real checkpoint: byte-level BPE
for the decoder families and an uncased WordPiece with ``[CLS] ... [SEP]`` for the BERT-style ones
(BLIP, ViLT). Nothing is downloaded; weights are seeded random. These are the grounds for the
per-family backbones and their tests, not models that answer questions.
"""

from __future__ import annotations

import string
from collections import Counter

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from vqa_demo.model.tokenizer import TINY_CORPUS, byte_level_bpe

CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
# A small causal decoder shared by the families whose language model is Llama/Qwen2-shaped.
TEXT_SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
VISION_SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def seeded(model_class, config, seed: int):
    """``model_class(config)`` with weights drawn from ``seed``, in eval mode, float32."""
    torch.manual_seed(seed)
    return model_class(config).eval()


def byte_level_tokenizer(
    special_tokens: tuple[str, ...], *, add_bos: bool = False, vocab_size: int = 420, **named_tokens
) -> PreTrainedTokenizerFast:
    """A byte-level BPE over the tiny corpus whose first ids are ``special_tokens`` (in order).

    ``named_tokens`` are the roles (``bos_token=..``, ``extra_special_tokens={..}``) as the
    family's hub tokenizer names them; every named token must be in ``special_tokens``.
    """
    core = byte_level_bpe(list(TINY_CORPUS) * 4, vocab_size, special_tokens)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, padding_side="left", **named_tokens)
    tokenizer.add_bos_token = add_bos
    return tokenizer


def wordpiece_vocab(specials: list[str], vocab_size: int) -> dict[str, int]:
    """A fixed WordPiece vocabulary: the specials, every ASCII letter, digit and punctuation mark and
    the corpus's other characters (alone and as ``##`` continuations, so no ASCII word is ``[UNK]``),
    then the corpus's words, most frequent first (ties by spelling), up to ``vocab_size`` tokens.

    Built by hand because ``WordPieceTrainer`` breaks ties differently on every run: two tiny models
    built in one process (a training run and the evaluation that reloads it) got different ids.
    """
    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word for text in TINY_CORPUS for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))
    )
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation) | set("".join(words)))
    tokens = [*specials, *chars, *(f"##{c}" for c in chars)]
    for word, _ in sorted(words.items(), key=lambda item: (-item[1], item[0])):
        if len(tokens) >= vocab_size:
            break
        if word not in tokens:
            tokens.append(word)
    return {token: index for index, token in enumerate(tokens)}


def wordpiece_tokenizer(
    extra_special: tuple[str, ...] = (), vocab_size: int = 300
) -> PreTrainedTokenizerFast:
    """An uncased BERT-style WordPiece (``[PAD]`` = 0, ``[CLS] text [SEP]``), as BLIP and ViLT use;
    the same ids on every build (:func:`wordpiece_vocab`)."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra_special]
    core = Tokenizer(models.WordPiece(wordpiece_vocab(specials, vocab_size), unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.decoder = decoders.WordPiece()
    cls_id, sep_id = core.token_to_id("[CLS]"), core.token_to_id("[SEP]")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        padding_side="right",
    )
