"""The encoder lays out every prompt style exactly as ``PaliGemmaProcessor`` does, token for token.

Checked on the shipped byte-level tokenizer (every row of the shipped validation split) and on a real
Gemma-family SentencePiece tokenizer (Gemma 3's, from a packaged GGUF file, offline) configured as
PaliGemma 1's (adds ``<bos>`` itself) and PaliGemma 2's (does not).
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
from transformers import AutoProcessor, AutoTokenizer

from tests.processor_reference import encoded_rows, gemma_tokenizer_dir, make_processor, processor_rows
from vqa_demo.config import HEAD_NAMES, PROMPT_STYLES
from vqa_demo.data.splits import load_split
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.prompts import build_rows

ASSETS = Path(__file__).resolve().parent.parent / "assets"
WORDS = [
    "red",
    "blue",
    "the",
    "of",
    "chart",
    "value",
    "sales",
    "apples",
    "Été",
    "1999",
    "12:30",
    "%",
    "x²",
    "naïve",
    ";",
    "pie",
    "bar",
    "São-Paulo",
]


def encoder_for(processor, tokenizer=None, max_text_tokens: int = 4096) -> RowEncoder:
    return RowEncoder(
        tokenizer or processor.tokenizer,
        processor.image_token_id,
        int(processor.image_seq_length),
        max_text_tokens=max_text_tokens,
        max_suffix_tokens=4096,
    )


def rows_for(head: str, style: str, examples) -> list:
    rows = []
    for question, options, answer in examples:
        rows += build_rows(head, question, options, style=style, answer_index=answer)
    return rows


def mismatches(encoder, processor, rows) -> list[int]:
    """Indices of rows whose encoding differs from the processor's (ids, token types or labels)."""
    ours = encoded_rows(encoder.encode(rows))
    theirs = processor_rows(processor, rows, with_suffix=rows[0].suffix is not None)
    return [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]


@pytest.mark.slow
def test_shipped_validation_split_equals_the_processor_in_every_style():
    processor = AutoProcessor.from_pretrained(ASSETS / "base")
    encoder = encoder_for(processor, max_text_tokens=192)
    examples = [(ex.question, list(ex.options), ex.answer_index) for ex in load_split(ASSETS / "validation")]
    for style in PROMPT_STYLES:
        for head in HEAD_NAMES:
            rows = rows_for(head, style, examples)
            assert not mismatches(encoder, processor, rows), (style, head)


def random_text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def varied_examples(seed: int = 0):
    """Questions and 2-8 options from one word to ~60 words, gold index included."""
    rng = random.Random(seed)
    examples = [
        ("What colour is the circle?", ["red", "blue", "green", "yellow"], 2),
        ("Which value is largest?", ["1", "22", "333", "4444", "55555", "6", "7", "8"], 7),
        ("Tabs\tand | pipes: which?", ["a | b", "c \t d", "e:f", "  g  "], 0),
    ]
    for k in range(2, 9):
        options = list(dict.fromkeys(random_text(rng, rng.choice([1, 2, 5, 12, 30, 60])) for _ in range(k)))
        examples.append((random_text(rng, rng.randint(1, 40)) + "?", options, rng.randrange(len(options))))
    return examples


@pytest.fixture(scope="session")
def gemma_tokenizer():
    """Gemma 3's SentencePiece tokenizer (262k pieces), converted once from the packaged GGUF file."""
    return AutoTokenizer.from_pretrained(gemma_tokenizer_dir())


@pytest.fixture(scope="session", params=[1, 2], ids=["paligemma1", "paligemma2"])
def gemma_setup(request, gemma_tokenizer):
    """``(processor, raw tokenizer)`` as a user of each generation gets them.

    PaliGemma 1's tokenizer config adds ``<bos>`` itself, PaliGemma 2's does not; the processor turns
    that off on its own copy and writes ``[<image> x N] <bos> prompt \\n`` in both generations.
    """
    tokenizer = copy.deepcopy(gemma_tokenizer)
    tokenizer.add_bos_token = request.param == 1
    raw = copy.deepcopy(tokenizer)
    processor = make_processor(tokenizer, image_seq_length=16)
    raw.add_special_tokens({"additional_special_tokens": ["<image>"]})  # what the hub tokenizers carry
    return processor, raw


@pytest.mark.slow
def test_generations_differ_only_in_the_raw_tokenizer(gemma_setup):
    processor, raw = gemma_setup
    bos = raw.bos_token_id
    starts_with_bos = raw("a")["input_ids"][0] == bos
    assert starts_with_bos == raw.add_bos_token
    (row,) = build_rows("cond_gen", "a", ["b", "c"])
    ids = processor_rows(processor, [row], with_suffix=False)[0].input_ids
    assert ids[:17] == [processor.image_token_id] * 16 + [bos] and ids.count(bos) == 1


@pytest.mark.slow
@pytest.mark.parametrize("style", PROMPT_STYLES)
@pytest.mark.parametrize("head", HEAD_NAMES)
def test_every_style_equals_the_processor_on_a_gemma_tokenizer(gemma_setup, style, head):
    processor, raw = gemma_setup
    rows = rows_for(head, style, varied_examples())
    for tokenizer in (processor.tokenizer, raw):
        assert not mismatches(encoder_for(processor, tokenizer), processor, rows)


@pytest.mark.slow
def test_every_gold_option_is_labelled_as_the_processor_labels_it(gemma_setup):
    processor, raw = gemma_setup
    examples = [(q, opts, i) for q, opts, _ in varied_examples(1) for i in range(len(opts))]
    for style in PROMPT_STYLES:
        rows = rows_for("cond_gen", style, examples)
        assert not mismatches(encoder_for(processor, raw), processor, rows)


@pytest.mark.slow
def test_typed_special_tokens_stay_text_on_a_gemma_tokenizer(gemma_setup):
    processor, raw = gemma_setup
    tokenizer, n = processor.tokenizer, int(processor.image_seq_length)
    question = "Is <image> a <eos> or <bos>? <start_of_turn>user <end_of_turn> <pad>"
    options = ["<image>", "<eos>", "<start_of_turn>model", "b"]
    encoder = encoder_for(processor, raw)
    framing = processor_rows(processor, build_rows("multi_class", "x", ["a", "b"]), False)[0].input_ids[
        : n + 1
    ]
    typed = ["<image>", "<eos>", "<bos>", "<pad>", "<start_of_turn>", "<end_of_turn>"]
    specials = set(tokenizer.convert_tokens_to_ids(typed))
    assert len(specials) == len(typed) and tokenizer.unk_token_id not in specials
    for style in PROMPT_STYLES:
        for head in HEAD_NAMES:
            rows = build_rows(head, question, options, style=style, answer_index=1)
            for row, mine in zip(rows, encoded_rows(encoder.encode(rows))):
                text = tokenizer(row.prefix + "\n", add_special_tokens=False, split_special_tokens=True)
                suffix = []
                if head == "cond_gen":
                    suffix = tokenizer(row.suffix, add_special_tokens=False, split_special_tokens=True)[
                        "input_ids"
                    ]
                    suffix.append(tokenizer.eos_token_id)
                prefix = framing + text["input_ids"]
                assert mine.input_ids == prefix + suffix
                assert mine.token_type_ids == [0] * len(prefix) + [1] * len(suffix)
                assert not specials & set(mine.input_ids[n + 1 : len(prefix)] + suffix[:-1])
                assert mine.input_ids.count(processor.image_token_id) == n
                # Read as the processor reads text, the typed strings become special tokens (the
                # processor even refuses a typed <image>): that is what the encoder avoids.
                assert specials & set(tokenizer(row.prefix, add_special_tokens=False)["input_ids"])


@pytest.mark.slow
def test_truncation_keeps_the_processor_layout_of_the_shortened_prompt(gemma_setup):
    processor, raw = gemma_setup
    encoder = encoder_for(processor, raw, max_text_tokens=48)
    question = "How many of the coloured shapes in this picture are squares or Été circles " * 12
    options = ["three", "four", "five", "six"]
    for style in PROMPT_STYLES:
        for head in HEAD_NAMES:
            rows = build_rows(head, question, options, style=style, answer_index=0)
            encoded = encoder.encode(rows)
            assert encoded.truncated == [True] * len(rows)
            for row, mine in zip(rows, encoded_rows(encoded)):
                text, truncated = encoder.prefix_text(row)
                assert truncated and text.endswith(row.tail + "\n") and text.startswith(row.head)
                kept = text[len(row.head) : len(text) - len(row.tail) - 1]
                assert row.question.startswith(kept) and len(kept) < len(row.question)
                assert len(raw(text, add_special_tokens=False)["input_ids"]) + 1 <= 48
                # one more question token would not fit: the question is cut as little as possible
                spans = raw(row.question, add_special_tokens=False, return_offsets_mapping=True)[
                    "offset_mapping"
                ]
                longer = row.question[: min(end for _, end in spans if end > len(kept))]
                assert (
                    len(raw(row.head + longer + row.tail + "\n", add_special_tokens=False)["input_ids"]) + 1
                    > 48
                )
                shortened = type(row)(row.head, kept, row.tail, row.suffix)
                (reference,) = processor_rows(processor, [shortened], with_suffix=head == "cond_gen")
                assert mine == reference
                assert mine.input_ids.count(processor.image_token_id) == processor.image_seq_length


@pytest.mark.slow
def test_options_longer_than_the_budget_cut_the_tail_end_never_image_tokens(gemma_setup):
    processor, raw = gemma_setup
    encoder = encoder_for(processor, raw, max_text_tokens=192)
    rng = random.Random(3)
    options = [random_text(rng, 80)[:300] for _ in range(8)]
    (row,) = build_rows("multi_class", "Which one?", options, style="choose_from")
    text, truncated = encoder.prefix_text(row)
    kept_tail = text[len(row.head) : -1]
    assert truncated and text.startswith(row.head) and row.tail.startswith(kept_tail), (
        "question first, then tail end"
    )
    assert len(kept_tail) < len(row.tail)
    (mine,) = encoded_rows(encoder.encode([row]))
    (reference,) = processor_rows(processor, [type(row)(row.head, "", kept_tail)], with_suffix=False)
    assert mine == reference
    assert len(mine.input_ids) <= processor.image_seq_length + 192
    assert mine.input_ids.count(processor.image_token_id) == processor.image_seq_length
