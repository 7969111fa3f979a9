"""COND_GEN's shared-prefix cache under Gemma 2's sliding window (the 896 px case, in miniature).

A tiny PaliGemma 2 whose sliding window (8) is shorter than every prefix (16 image tokens + text)
must score and generate in a batch of rows with different prefix lengths exactly as each row does
alone, and as transformers' own full forward (no cache) does.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import PaliGemmaForConditionalGeneration

from tests.conftest import color_image
from tests.family_checks import TOLERANCE, sum_error
from vqa_demo.config import TINY_IMAGE_SIZE, TINY_PATCH_SIZE, TINY_SIZE
from vqa_demo.model.answer_scorer import greedy_generate, option_loglik, run_prefix
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.families.paligemma.family import PALIGEMMA
from vqa_demo.model.families.paligemma.tiny import paligemma2_config, tiny_processor
from vqa_demo.model.forward import image_features
from vqa_demo.model.strategies import build_rows

WINDOW = 8
QUESTIONS = ["Colour?", "Which colour fills most of this picture, would you say, roughly?", "Shape here?"]
OPTIONS = [
    ["red", "blue", "a dark green square with a thin border"],
    ["blue", "purple", "orange", "black"],
    ["circle", "a triangle pointing up"],
]


def small_window_model(window: int, seed: int = 0):
    processor = tiny_processor()
    # The tiny model with four decoder layers (two sliding-window, two global) and a one-layer tower.
    size = dataclasses.replace(TINY_SIZE, num_layers=4, vision_layers=1)
    config = paligemma2_config(
        processor, image_size=TINY_IMAGE_SIZE, patch_size=TINY_PATCH_SIZE, **dataclasses.asdict(size)
    )
    config.text_config.sliding_window = window
    torch.manual_seed(seed)
    core = PaliGemmaForConditionalGeneration(config).eval()
    # Random init gives near-uniform logits; larger weights make every token's context matter.
    with torch.no_grad():
        for name, param in core.model.language_model.named_parameters():
            if name.endswith("weight") and param.dim() == 2:
                param.mul_(4.0)
    encoder = RowEncoder(processor.tokenizer, processor.image_token_id, int(processor.image_seq_length))
    pixels = processor.image_processor(
        [color_image(c) for c in [(255, 0, 0), (0, 0, 255), (0, 160, 0)]], return_tensors="pt"
    )["pixel_values"]
    return core, encoder, pixels


@pytest.fixture(scope="module")
def windowed():
    return small_window_model(WINDOW)


def prefix_rows(encoder, questions, options):
    return encoder.encode(
        [build_rows("cond_gen", q, o)[0] for q, o in zip(questions, options)], with_suffix=False
    )


def scores_and_generations(core, encoder, pixels, questions, options, max_new_tokens=6):
    with torch.no_grad():
        features = image_features(core, pixels)
        state = run_prefix(PALIGEMMA, core, prefix_rows(encoder, questions, options), features)
        total, mean = option_loglik(PALIGEMMA, core, encoder, state, options)
        generated = greedy_generate(PALIGEMMA, core, state, encoder.eos_id, max_new_tokens)
    return total, mean, generated


def test_prefixes_are_longer_than_the_window_and_differ(windowed):
    core, encoder, _ = windowed
    lengths = prefix_rows(encoder, QUESTIONS, OPTIONS).prefix_lengths
    assert core.config.text_config.layer_types.count("sliding_attention") == 2
    assert int(lengths.min()) > 2 * WINDOW and len(set(lengths.tolist())) == len(QUESTIONS)


def test_batched_equals_each_row_alone(windowed):
    core, encoder, pixels = windowed
    total, mean, generated = scores_and_generations(core, encoder, pixels, QUESTIONS, OPTIONS)
    for b in range(len(QUESTIONS)):
        one_total, one_mean, one_generated = scores_and_generations(
            core, encoder, pixels[b : b + 1], QUESTIONS[b : b + 1], OPTIONS[b : b + 1]
        )
        k = len(OPTIONS[b])
        torch.testing.assert_close(total[b, :k], one_total[0, :k], atol=1e-5, rtol=0)
        torch.testing.assert_close(mean[b, :k], one_mean[0, :k], atol=1e-5, rtol=0)
        assert generated[b] == one_generated[0]


def full_forward_logprobs(core, encoder, pixels, question, options, k):
    """transformers' own forward of the whole row (prefix + option k + <eos>), no cache: sum of log p."""
    full = encoder.encode(build_rows("cond_gen", question, options, answer_index=k))
    logits = core(
        input_ids=full.input_ids,
        attention_mask=full.attention_mask,
        token_type_ids=full.token_type_ids,
        pixel_values=pixels,
    ).logits[0, :-1]
    labels = full.labels[0, 1:]
    keep = labels != -100
    return torch.log_softmax(logits.float(), -1)[keep].gather(-1, labels[keep, None]).sum()


def test_option_loglik_equals_the_plain_full_forward(windowed):
    core, encoder, pixels = windowed
    total, _, _ = scores_and_generations(core, encoder, pixels, QUESTIONS, OPTIONS, max_new_tokens=1)
    with torch.no_grad():
        for b, (question, options) in enumerate(zip(QUESTIONS, OPTIONS)):
            for k in range(len(options)):
                reference = full_forward_logprobs(core, encoder, pixels[b : b + 1], question, options, k)
                assert sum_error(total[b, k], reference) < TOLERANCE


def test_greedy_generation_equals_full_forward_decoding(windowed):
    """Greedy decoding re-run from scratch with transformers' full forward at every step (no cache)."""
    core, encoder, pixels = windowed
    steps = 6
    _, _, generated = scores_and_generations(core, encoder, pixels, QUESTIONS, OPTIONS, max_new_tokens=steps)
    rows = prefix_rows(encoder, QUESTIONS, OPTIONS)
    with torch.no_grad():
        for b in range(len(QUESTIONS)):
            prefix = rows.input_ids[b, : int(rows.prefix_lengths[b])]
            tokens: list[int] = []
            for _ in range(steps):
                ids = torch.cat([prefix, torch.tensor(tokens, dtype=torch.long)])[None]
                types = torch.cat([torch.zeros_like(prefix), torch.ones(len(tokens), dtype=torch.long)])[None]
                logits = core(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    token_type_ids=types,
                    pixel_values=pixels[b : b + 1],
                ).logits[0, -1]
                token = int(logits.argmax())
                if token == encoder.eos_id:
                    break
                tokens.append(token)
            assert generated[b] == tokens
