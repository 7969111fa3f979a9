"""How well a pretrained base reads the synthetic images: greedy exact match and zero-shot multiple choice.

Both use the inference path of the app (:mod:`vqa_demo.model.cond_gen`: the vision tower once, a cached
prefix pass, then greedy continuation or per-option log-likelihood), so a number here means what it
will mean after loading the base.

- ``generation``: held-out ``answer en {question}`` and ``caption en`` items, greedy decoding, exact
  string match with the target, per family and task.
- ``zero_shot_mc``: held-out MC items of :func:`training.synthetic.make_mc_item` scored by the mean
  log-likelihood of each option after ``answer en {question}``; the argmax is the choice. This is the
  COND_GEN scorer with the pretraining prompt, a floor for what the fine-tuned variants start from.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from transformers import PaliGemmaForConditionalGeneration

from training.pretrain_data import BatchMaker, PretrainItem, make_items
from training.synthetic import FAMILIES, NUM_OPTIONS, derive_seed, make_mc_item
from vqa_demo.model.answer_scorer import greedy_generate, option_loglik, run_prefix
from vqa_demo.model.families.registry import family_for


def heldout_items(n: int, seed: int, render_size: int) -> list[PretrainItem]:
    """Items from a seed no training stream uses (training derives its seeds from ``"stream"``)."""
    return make_items(n, derive_seed(seed, "heldout"), render_size)


def _rates(hits: dict[str, list[bool]]) -> dict[str, float]:
    return {key: round(sum(values) / len(values), 4) for key, values in sorted(hits.items()) if values}


@torch.no_grad()
def generation_exact_match(
    core: PaliGemmaForConditionalGeneration,
    maker: BatchMaker,
    items: list[PretrainItem],
    batch_size: int = 32,
    max_new_tokens: int = 64,
) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Greedy exact match: rates keyed ``question``, ``caption``, ``question/{family}``, ``caption/{family}``.

    Returns the rates and one record per item (family, task, prefix, target, generated).
    """
    was_training = core.training
    core.eval()
    family = family_for(core.config)
    hits: dict[str, list[bool]] = defaultdict(list)
    records = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        features = family.image_features(core, maker.pixel_values([item.image for item in chunk]))
        state = run_prefix(family, core, maker.rows(chunk, with_suffix=False), features)
        generated_ids = greedy_generate(family, core, state, maker.encoder.eos_id, max_new_tokens)
        for item, ids in zip(chunk, generated_ids):
            text = maker.processor.tokenizer.decode(ids, skip_special_tokens=True).strip()
            correct = text == item.suffix
            hits[item.task].append(correct)
            hits[f"{item.task}/{item.family}"].append(correct)
            records.append(
                {
                    "family": item.family,
                    "task": item.task,
                    "prefix": item.prefix,
                    "target": item.suffix,
                    "generated": text,
                }
            )
    core.train(was_training)
    return _rates(hits), records


@torch.no_grad()
def zero_shot_mc_accuracy(
    core: PaliGemmaForConditionalGeneration,
    maker: BatchMaker,
    n: int,
    seed: int,
    render_size: int,
    batch_size: int = 32,
) -> dict[str, float]:
    """Accuracy on ``n`` held-out MC items (families and gold positions take turns), overall and per family.

    Images are drawn at ``render_size`` and resized by the processor, so a 224 px render checks a base
    against data generated at the synthetic generator's default size.
    """
    was_training = core.training
    core.eval()
    mc_items = [
        make_mc_item(
            FAMILIES[i % len(FAMILIES)],
            derive_seed(seed, "heldout-mc", i),
            (i // len(FAMILIES)) % NUM_OPTIONS,
            render_size,
        )
        for i in range(n)
    ]
    family = family_for(core.config)
    hits: dict[str, list[bool]] = defaultdict(list)
    for start in range(0, n, batch_size):
        chunk = mc_items[start : start + batch_size]
        prompts = [PretrainItem(item.image, f"answer en {item.question}", "", item.family) for item in chunk]
        features = family.image_features(core, maker.pixel_values([item.image for item in chunk]))
        state = run_prefix(family, core, maker.rows(prompts, with_suffix=False), features)
        options = [list(item.options) for item in chunk]
        _, mean_scores = option_loglik(family, core, maker.encoder, state, options)
        for item, choice in zip(chunk, mean_scores.argmax(dim=1).tolist()):
            correct = choice + 1 == item.answer
            hits["all"].append(correct)
            hits[item.family].append(correct)
    core.train(was_training)
    return _rates(hits)
