"""Checks shared by the chat-templated decoder families' tests (Qwen2.5-VL, SmolVLM).

Every reference is the family's own: its processor on its own chat template for the row ids, and a
plain full forward of its transformers model (no cache, no precomputed features, no positions of
ours) for log-likelihoods and hidden states. Each check returns the largest difference it measured,
so the tests can assert and report it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from operator import attrgetter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqa_demo.config import VARIANTS, BackboneConfig, HeadConfig, LoraSettings
from vqa_demo.explain.attribution import attribute
from vqa_demo.model.backbone import add_lora, build_tiny_backbone, load_backbone, save_backbone
from vqa_demo.model.classifier_strategies import MultiClassStrategy, SwagStrategy
from vqa_demo.model.cond_gen import CondGenStrategy
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.testing import TrigramMatcher, random_variant_predictor, randomize

TOL = 1e-5
QUESTIONS = ("What colour is the circle?", "How many shapes are there? Answer with a number")
OPTIONS = (["red", "blue and green", "3"], ["two", "a few more", "7"])


def random_image(height: int, width: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


# Two sizes and aspect ratios: the families' fixed layouts must give both the same token count.
IMAGES = (random_image(32, 32, 0), random_image(30, 40, 1))


def chat_text(processor, prompt: str) -> str:
    """The family's chat template around one user turn (an image, then ``prompt``), generation prompt included."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def processor_inputs(processor, image: Image.Image, prompt: str) -> dict:
    """The family processor's tensors for one row: its chat template with the generation prompt."""
    return processor(images=[[image]], text=[chat_text(processor, prompt)], return_tensors="pt")


def answer_ids(processor, lead: str, end_token: str, answer: str) -> list[int]:
    """The assistant turn's answer tokens as the template writes them: ``lead + answer`` then the end token."""
    tokenizer = processor.tokenizer
    ids = tokenizer(lead + answer, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.convert_tokens_to_ids(end_token)]


def with_answer(inputs: dict, answer: list[int]) -> dict:
    """``inputs`` (one row) with ``answer`` appended as text tokens."""
    extended = dict(inputs)
    tail = torch.tensor([answer])
    extended["input_ids"] = torch.cat([inputs["input_ids"], tail], dim=1)
    extended["attention_mask"] = torch.ones_like(extended["input_ids"])
    if "mm_token_type_ids" in inputs:  # answer tokens are text (type 0)
        extended["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros_like(tail)], dim=1
        )
    return extended


@torch.no_grad()
def plain_answer_loglik(model, inputs: dict, answer: list[int]) -> float:
    """Summed ``log p(answer | prompt)`` from one plain full forward of prompt + answer."""
    logits = model(**with_answer(inputs, answer)).logits[0]
    start = inputs["input_ids"].shape[1] - 1  # position j predicts token j + 1
    picked = logits[start : start + len(answer)].log_softmax(-1)
    return float(picked.gather(-1, torch.tensor(answer)[:, None]).sum())


def check_rows_match_processor(family, processor, reference_image, lead: str, end_token: str) -> int:
    """Every head's rows (COND_GEN with its training suffix, MULTI_CLASS, SWAG) encoded in one
    right-padded batch equal the processor's ids row by row; returns the image tokens per row."""
    encoder = family.row_encoder(processor)
    rows, references = [], []
    for question, options, image in zip(QUESTIONS, OPTIONS, IMAGES):
        for strategy in (CondGenStrategy(), MultiClassStrategy(), SwagStrategy()):
            for row in strategy.prompt_rows(question, options, answer_index=1):
                expected = processor_inputs(processor, reference_image(image), row.prefix)["input_ids"][
                    0
                ].tolist()
                suffix = [] if row.suffix is None else answer_ids(processor, lead, end_token, row.suffix)
                rows.append(row)
                references.append((expected, suffix))
    encoded = encoder.encode(rows)
    for i, (prefix, suffix) in enumerate(references):
        ids = encoded.input_ids[i][encoded.attention_mask[i].bool()].tolist()
        assert ids == prefix + suffix, f"row {i} differs from the processor's"
        assert int(encoded.prefix_lengths[i]) == len(prefix)
    counts = (encoded.input_ids == processor.image_token_id).sum(dim=1)
    assert counts.eq(family.image_seq_length(processor)).all()
    return int(counts[0])


def context(family, model, processor, head: HeadConfig, module=None) -> HeadContext:
    return HeadContext(model, family.row_encoder(processor), head, module=module, matcher=TrigramMatcher())


def features_of(family, model, processor, images=IMAGES) -> torch.Tensor:
    return family.image_features(model, family.preprocess(processor, images))


def check_cond_gen_matches_plain_forward(family, model, processor, reference_image, lead, end_token) -> float:
    """COND_GEN's cached option log-likelihoods (both examples in one call) against a plain forward
    of each (prompt, option) alone; its greedy text against the model's own ``generate``."""
    head = HeadConfig("cond_gen", cond_gen_scoring="loglik_sum", max_new_tokens=4)
    strategy = CondGenStrategy()
    out = strategy.scores(
        context(family, model, processor, head),
        list(QUESTIONS),
        list(OPTIONS),
        features_of(family, model, processor),
    )
    worst = 0.0
    for b, (question, options, image) in enumerate(zip(QUESTIONS, OPTIONS, IMAGES)):
        prompt = strategy.prompt_rows(question, options)[0].prefix
        inputs = processor_inputs(processor, reference_image(image), prompt)
        for k, option in enumerate(options):
            reference = plain_answer_loglik(model, inputs, answer_ids(processor, lead, end_token, option))
            worst = max(worst, abs(float(out.cond_gen[b].loglik_sum[k]) - reference))
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)[
                0, inputs["input_ids"].shape[1] :
            ]
        text = processor.tokenizer.decode(generated, skip_special_tokens=True).strip()
        assert out.cond_gen[b].generated_text == text
    assert worst <= TOL, worst
    return worst


@torch.no_grad()
def plain_states(model, processor, image: Image.Image, prompt: str) -> torch.Tensor:
    """One row's final hidden states ``float[T, D]`` (after the final norm) from the base model's
    plain forward on the processor's tensors (its own image features and positions)."""
    return model.model(**processor_inputs(processor, image, prompt)).last_hidden_state[0]


def trained_head(strategy, family, model, head: HeadConfig):
    module = strategy.build_head(head, family.hidden_size(model))
    randomize(module, 0)
    return module.eval()


@torch.no_grad()
def check_pooling_under_padding(family, model, processor, reference_image, pooling: str) -> float:
    """MULTI_CLASS on a right-padded batch of two prompts of different lengths: every real position's
    hidden state (what the poolings read; the last one for last-token pooling) and the scores equal
    each prompt's plain forward alone."""
    head = HeadConfig("multi_class", pooling=pooling, num_options=3)
    strategy = MultiClassStrategy()
    module = trained_head(strategy, family, model, head)
    ctx = context(family, model, processor, head, module)
    features = features_of(family, model, processor)
    out = strategy.classifier_scores(ctx, list(QUESTIONS), list(OPTIONS), features)
    lengths = out.rows.attention_mask.sum(dim=1)
    assert lengths[0] != lengths[1], "the two rows should need padding"
    hidden = family.language_forward(model, out.rows, features).last_hidden_state
    worst = 0.0
    for b, (question, options, image) in enumerate(zip(QUESTIONS, OPTIONS, IMAGES)):
        prompt = strategy.prompt_rows(question, options)[0].prefix
        alone = plain_states(model, processor, reference_image(image), prompt)
        assert alone.shape[0] == lengths[b]
        worst = max(worst, float((hidden[b, : lengths[b]] - alone).abs().max()))
        scores, _ = module(alone[None], torch.ones(1, len(alone), dtype=torch.bool), len(options))
        worst = max(worst, float((out.scores[b] - scores[0]).abs().max()))
    assert worst <= TOL, worst
    return worst


@torch.no_grad()
def check_swag_rows_match_single_passes(family, model, processor, reference_image) -> float:
    """SWAG's rows of both examples (one per option, in one forward) against each row's plain forward alone."""
    head = HeadConfig("swag", pooling="attentive")
    strategy = SwagStrategy()
    module = trained_head(strategy, family, model, head)
    ctx = context(family, model, processor, head, module)
    out = strategy.classifier_scores(
        ctx, list(QUESTIONS), list(OPTIONS), features_of(family, model, processor)
    )
    worst = 0.0
    for b, (question, options, image) in enumerate(zip(QUESTIONS, OPTIONS, IMAGES)):
        for k, row in enumerate(strategy.prompt_rows(question, options)):
            alone = plain_states(model, processor, reference_image(image), row.prefix)
            logit, _ = module.row_scores(alone[None], torch.ones(1, len(alone), dtype=torch.bool))
            worst = max(worst, abs(float(out.scores[b, k]) - float(logit[0])))
    assert worst <= TOL, worst
    return worst


# Four options each: the predictor's random multi_class heads are built for K = 4.
PREDICT_OPTIONS = (["red", "blue", "green", "3"], ["two", "a few more", "7", "none"])


def check_vision_runs_once_per_call(source: str, tower: str, images_in) -> int:
    """One ``predict_batch`` of both images with all five variants (random LoRA adapters and heads)
    runs the vision tower ``core.<tower>`` exactly once, on both images; returns the images it saw.

    ``images_in(args, kwargs)`` reads how many images one tower call received.
    """
    backbone = build_tiny_backbone(source=source)
    predictor = random_variant_predictor(backbone)
    calls = []
    module = attrgetter(tower)(backbone.core)
    hook = module.register_forward_pre_hook(lambda _, a, k: calls.append(images_in(a, k)), with_kwargs=True)
    try:
        results = predictor.predict_batch(list(IMAGES), list(QUESTIONS), [list(o) for o in PREDICT_OPTIONS])
    finally:
        hook.remove()
    assert calls == [len(IMAGES)], calls
    for result in results:
        assert sorted(result) == sorted(VARIANTS)
        assert all(np.isfinite(p.option_scores).all() for p in result.values())
    return calls[0]


def lora_wrapped(source: str, vision: bool) -> list[str]:
    """Names of the modules LoRA wraps on ``source``'s tiny model for ``language`` / ``all-linear``."""
    backbone = build_tiny_backbone(source=source)
    add_lora(backbone, LoraSettings(r=2, alpha=4, dropout=0.0, vision=vision))
    return [name for name, module in backbone.model.named_modules() if hasattr(module, "lora_A")]


def check_saved_base_loads_back(source: str, tmp_path) -> float:
    """A tiny base saved with ``save_backbone`` loads back through the family (chosen from the saved
    config's ``model_type``) and scores identically; returns the max |diff| of the prefix logits."""
    built = build_tiny_backbone(source=source)
    loaded = load_backbone(BackboneConfig(source=str(save_backbone(built, tmp_path / "base"))))
    assert type(loaded.family) is type(built.family)
    outputs = []
    for backbone in (built, loaded):
        encoder = backbone.row_encoder()
        rows = encoder.encode([CondGenStrategy().prompt_rows(QUESTIONS[0], OPTIONS[0])[0]], with_suffix=False)
        with torch.no_grad():
            features = backbone.family.image_features(backbone.core, backbone.pixel_values(IMAGES[:1]))
            hidden = backbone.family.language_forward(backbone.core, rows, features).last_hidden_state
            outputs.append(backbone.family.lm_logits(backbone.core, hidden))
    return float((outputs[0] - outputs[1]).abs().max())


def compare_smoke(source: str, out) -> dict:
    """``python -m training.compare --base <source> --smoke --out <out>`` as a user runs it; its comparison."""
    command = [sys.executable, "-m", "training.compare", "--base", source, "--smoke", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((Path(out) / "comparison.json").read_text())


def check_attribution_scores_equal_predictions(source: str) -> float:
    """The attribution path (embeddings in, :meth:`embeds_forward`) scores each example's choice as
    the predictor does, for COND_GEN (log-likelihood) and SWAG (logit); returns the max |diff|."""
    predictor = random_variant_predictor(build_tiny_backbone(source=source), ("cond_gen", "swag-attentive"))
    options = [list(o) for o in PREDICT_OPTIONS]
    predictions = predictor.predict_batch(list(IMAGES), list(QUESTIONS), options)
    worst = 0.0
    for variant in predictor.variants:
        explained = attribute(predictor, list(IMAGES), list(QUESTIONS), options, variant, n_steps=2)
        for attribution, prediction in zip(explained, predictions):
            chosen = prediction[variant]
            # COND_GEN attributes the summed log-likelihood, whichever score made the choice.
            scores = chosen.option_scores if chosen.cond_gen is None else chosen.cond_gen.loglik_sum
            worst = max(worst, abs(attribution.score - float(scores[chosen.choice])))
    assert worst <= TOL, worst
    return worst
