"""Token-exact gradient accumulation: batch 2 x accumulation 2 trains exactly like batch 4, for every head.

The loss of an optimizer step is the sum of its terms (COND_GEN: gold answer tokens; the classifier
heads: examples) over every micro-batch of the step, divided by their global count. The COND_GEN rows
here carry answers of unequal token lengths, so a mean per micro-batch would weigh them differently.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import OPTIONS, QUESTIONS
from training.distributed import epoch_order
from training.train import TrainConfig, main, smoke_data
from vqa_demo.config import VARIANTS, BackboneConfig, HeadConfig
from vqa_demo.data.jsonl import read_jsonl
from vqa_demo.data.splits import load_split
from vqa_demo.model.backbone import build_tiny_backbone, load_backbone
from vqa_demo.model.families.registry import tiny_sources
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.strategies import STRATEGIES, variant_loss_count, variant_loss_terms

# Adapters and heads of the two runs agree to this (absolute, float32 after 3 Adam steps).
ATOL = 1e-5
MAX_TRAIN, SEED = 12, 0


def answer_token_counts(data, seed: int, rows: int) -> list[int]:
    """Gold-answer suffix tokens (``<eos>`` included) of the first ``rows`` examples in epoch-0 order."""
    split = load_split(data / "train")
    split.examples = split.examples[:MAX_TRAIN]
    backbone = build_tiny_backbone()
    encoder = backbone.row_encoder("\n", 256)
    order = epoch_order(len(split), seed, 0)[:rows]
    return [len(encoder.suffix_ids(split[i].options[split[i].answer_index])) for i in order]


def train(data, out, variant: str, batch_size: int, grad_accum: int) -> dict:
    head, pooling = VARIANTS[variant]
    cfg = TrainConfig(
        variant=head, pooling=pooling, base="tiny", data=str(data), out=str(out), max_train=MAX_TRAIN,
        max_val=2, max_steps=3, batch_size=batch_size, grad_accum=grad_accum, lora_dropout=0.0,
        eval_every=100, log_every=1, eval_batch_size=2, threads=1, seed=SEED,
        # an explicit selection split keeps all 12 training examples (3 whole global batches of 4)
        selection_split=str(data / "validation"),
    )  # fmt: skip
    return main(cfg)


def assert_same_weights(one, two, name: str) -> None:
    first, second = load_file(one / "last" / name), load_file(two / "last" / name)
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=0, atol=ATOL, msg=key)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = smoke_data(tmp_path_factory.mktemp("accumulation"), seed=SEED)
    counts = answer_token_counts(root, SEED, 4)
    # The two micro-batches of 2 of the first step hold unequal answer-token counts, so equal weights per
    # micro-batch would not give the batch-of-4 loss.
    assert sum(counts[:2]) != sum(counts[2:4]), counts
    return root


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batch_two_times_accumulation_two_trains_like_batch_four(data, tmp_path, variant):
    train(data, tmp_path / "four", variant, batch_size=4, grad_accum=1)
    train(data, tmp_path / "two-by-two", variant, batch_size=2, grad_accum=2)
    four = read_jsonl(tmp_path / "four" / "metrics.jsonl")
    accumulated = read_jsonl(tmp_path / "two-by-two" / "metrics.jsonl")
    assert [r["step"] for r in accumulated] == [r["step"] for r in four] == [1, 2, 3]
    for a, b in zip(four, accumulated):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    assert_same_weights(tmp_path / "four", tmp_path / "two-by-two", "adapter_model.safetensors")
    if VARIANTS[variant][0] != "cond_gen":
        assert_same_weights(tmp_path / "four", tmp_path / "two-by-two", "head.safetensors")


@pytest.mark.parametrize("source", tiny_sources())
def test_the_counted_terms_are_the_terms_the_loss_sums_for_every_family_and_head(source, images):
    """The count known before the backward (tokenization only) is what the forward's loss sums."""
    backbone = load_backbone(BackboneConfig(source=source))
    features = backbone.family.image_features(backbone.core, backbone.pixel_values(images))
    answers = [0, 2, 3]
    for strategy in STRATEGIES.values():
        if backbone.family.refusal(strategy):
            continue
        head = HeadConfig(head=strategy.name, pooling=None if strategy.name == "cond_gen" else "last_token")
        module = strategy.build_head(head, backbone.hidden_size)
        ctx = HeadContext(backbone.core, backbone.row_encoder(), head, module=module)
        with torch.no_grad():
            _, terms = variant_loss_terms(ctx, QUESTIONS, OPTIONS, answers, features)
        assert variant_loss_count(ctx, QUESTIONS, OPTIONS, answers) == terms, strategy.name
