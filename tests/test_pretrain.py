"""Tests for stage-1 pretraining (`training.pretrain`): the smoke run, its saved base, the tokenizer, the loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.pretrain import PretrainConfig, build_model, lr_factor, main, suffix_loss
from training.pretrain_data import (
    BatchMaker,
    batches,
    build_tokenizer,
    prefetch,
    stdlib_docstrings,
)
from vqa_demo.config import BackboneConfig
from vqa_demo.model.backbone import load_backbone
from vqa_demo.model.families.paligemma.tiny import paligemma_processor

UNICODE_TEXTS = [
    "Which slice is the largest? 🍕🥧 (pie) 👩‍👩‍👧",
    "שלום עולם: מה השעה?",
    "مرحبا بالعالم، كم الساعة؟",
    "混合テキスト 한국어 Ελληνικά кириллица",
    "e\u0301 combining, zero\u200bwidth, tab\tand\nnewline, <image> <eos> typed by a user",
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    summary = main(PretrainConfig(out=out, smoke=True, seed=0))
    return out, summary


@pytest.fixture(scope="module")
def small_tokenizer():
    return build_tokenizer(vocab_size=400, seed=0, num_scenes=50, english_chars=20_000)


def test_smoke_run_saves_a_loadable_base(smoke_run):
    out, summary = smoke_run
    backbone = load_backbone(BackboneConfig(source=str(out), device="cpu"))
    assert backbone.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in backbone.core.parameters())
    assert backbone.image_seq_length == summary["image_seq_length"]
    assert backbone.core.config.text_config.vocab_size >= len(backbone.tokenizer)
    assert backbone.fingerprint  # config round-trips into a usable architecture description


def test_every_saved_file_is_below_10_mb(smoke_run):
    out, _ = smoke_run
    files = [p for p in Path(out).rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert not any(p.suffix in (".bin", ".pt", ".pth") for p in files)
    assert all(p.stat().st_size < 10 * 1000 * 1000 for p in files)


def test_smoke_loss_decreases(smoke_run):
    _, summary = smoke_run
    losses = summary["losses"]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_smoke_run_logs_progress_and_final_eval(smoke_run):
    out, _ = smoke_run
    records = [json.loads(line) for line in (out / "pretrain_log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert steps and all({"step", "loss", "lr", "samples_per_s"} <= r.keys() for r in steps)
    final = [r for r in records if "final_eval" in r]
    assert len(final) == 1
    assert "question" in final[0]["final_eval"]["exact_match"]
    assert 0.0 <= final[0]["final_eval"]["zero_shot_mc"]["all"] <= 1.0
    assert json.loads((out / "pretrain_summary.json").read_text())["num_parameters"] > 0


@pytest.mark.parametrize("text", UNICODE_TEXTS)
def test_tokenizer_round_trips_unicode_without_unk(small_tokenizer, text):
    ids = small_tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert small_tokenizer.unk_token_id not in ids
    assert small_tokenizer.decode(ids) == text


def test_saved_tokenizer_round_trips_unicode(smoke_run):
    out, _ = smoke_run
    tokenizer = load_backbone(BackboneConfig(source=str(out), device="cpu")).tokenizer
    for text in UNICODE_TEXTS:
        ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text


def test_tokenizer_has_a_newline_token_and_prompt_merges(small_tokenizer):
    assert small_tokenizer.convert_ids_to_tokens(
        small_tokenizer("\n", add_special_tokens=False)["input_ids"]
    ) == ["Ċ"]
    # Frequent synthetic words get merges, so prompts take far fewer tokens than bytes.
    prompt = "answer en What colour is the circle?"
    assert len(small_tokenizer(prompt, add_special_tokens=False)["input_ids"]) < len(prompt) / 2


def test_suffix_loss_matches_the_full_forward_loss(small_tokenizer):
    processor = paligemma_processor(small_tokenizer, image_size=32, patch_size=8)
    config = PretrainConfig(out=Path("unused")).shrink_for_smoke()
    model = build_model(config, processor).eval()
    pixel_values, rows = next(batches(BatchMaker(processor), 3, seed=1, image_size=64))
    full = model(
        pixel_values=pixel_values,
        input_ids=rows.input_ids,
        attention_mask=rows.attention_mask,
        token_type_ids=rows.token_type_ids,
        labels=rows.labels,
    ).loss
    torch.testing.assert_close(suffix_loss(model, pixel_values, rows), full)


def test_language_model_init_keeps_embeddings_at_unit_scale(small_tokenizer):
    processor = paligemma_processor(small_tokenizer, image_size=32, patch_size=8)
    config = PretrainConfig(out=Path("unused")).shrink_for_smoke()
    model = build_model(config, processor)
    hidden = config.size.hidden_size
    embed = model.model.language_model.embed_tokens.weight
    # Gemma scales embeddings by sqrt(hidden): std 1/sqrt(hidden) gives unit-RMS token vectors.
    assert embed.std().item() == pytest.approx(hidden**-0.5, rel=0.1)
    projector = model.model.multi_modal_projector.linear.weight
    assert projector.std().item() == pytest.approx(hidden**-0.5, rel=0.15)


def test_learning_rate_warms_up_then_decays_to_the_floor():
    factors = [lr_factor(step, warmup_steps=10, total_steps=100, min_ratio=0.1) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)


def test_english_corpus_is_deterministic_and_capped():
    first, second = stdlib_docstrings(50_000), stdlib_docstrings(50_000)
    assert first == second
    assert 50_000 <= sum(map(len, first)) < 50_000 + max(map(len, first)) + 1


def test_prefetch_keeps_order_ends_and_reraises():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("broken batch")

    stream = prefetch(failing())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="broken batch"):
        next(stream)


def test_same_seed_gives_the_same_base(smoke_run, tmp_path):
    """The shipped default's reproducibility rests on this: background prefetch must not reorder data."""
    from safetensors.torch import load_file

    out, summary = smoke_run
    again = main(PretrainConfig(out=tmp_path, smoke=True, seed=0))
    assert again["first_losses"] == summary["first_losses"]
    assert again["last_losses"] == summary["last_losses"]
    first, second = load_file(out / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
