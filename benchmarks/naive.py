"""The naive baselines: what the engine would cost without its sharing. They compute the same scores.

Each function here is a straightforward implementation a first version would have: one model pass
per option (and per variant), the vision tower inside every pass, one example at a time. The
benchmarks assert that they agree with the engine's outputs before comparing times, so a speed-up is
never bought with a different answer.

The naive COND_GEN pass is a plain teacher-forced forward of ``[image] prompt \\n option <eos>``
that keeps only the logits it needs (``logits_to_keep``), so the vocabulary projection over the
image tokens is not counted against the baseline: the measured ratio is the KV-sharing and batching.

The naive full evaluation (:func:`naive_predict_item`) runs each variant through peft's unmerged
LoRA forward, as a model loaded with ``PeftModel.from_pretrained`` does; the engine runs the same
adapters merged into swapped-in weights (:mod:`vqa_demo.model.merged_adapters`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from vqa_demo.model.answer_scorer import option_loglik, run_prefix
from vqa_demo.model.cond_gen import CondGenStrategy
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.families.registry import family_for
from vqa_demo.model.forward import as_encoder_outputs, image_features
from vqa_demo.predictor import Predictor

COND_GEN = CondGenStrategy()


@torch.no_grad()
def full_pass_option_loglik(
    core,
    encoder: RowEncoder,
    question: str,
    options: Sequence[str],
    k: int,
    style: str = "default",
    features: torch.Tensor | None = None,
    pixels: torch.Tensor | None = None,
) -> tuple[float, float]:
    """``(sum, mean)`` log-likelihood of option ``k`` from one full teacher-forced pass.

    Give ``pixels float[1,3,H,W]`` to run the vision tower inside the pass (the fully naive path) or
    ``features float[1,N,D]`` to reuse precomputed image features.
    """
    device = core.device
    full = encoder.encode(COND_GEN.prompt_rows(question, list(options), style, answer_index=k)).to(device)
    suffix_len = int((full.labels != -100).sum())
    inputs = {
        "input_ids": full.input_ids,
        "attention_mask": full.attention_mask,
        "token_type_ids": full.token_type_ids,
        "use_cache": False,
        "logits_to_keep": suffix_len + 1,
    }
    if features is not None:
        inputs["mm_encoder_outputs"] = as_encoder_outputs(features)
    else:
        inputs["pixel_values"] = pixels.to(core.dtype)
    logits = core(**inputs).logits[0, :-1].float()  # position j predicts suffix token j
    labels = full.labels[0, -suffix_len:]
    token_logp = torch.log_softmax(logits, dim=-1).gather(-1, labels[:, None]).squeeze(-1)
    return float(token_logp.sum()), float(token_logp.mean())


@torch.no_grad()
def shared_prefix_loglik(
    core, encoder: RowEncoder, question: str, options: Sequence[str], features: torch.Tensor, style="default"
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The engine's path for one example: prefix pass with a KV cache, then all options in one pass.

    Returns ``(sum float[K], mean float[K], {"prefix_s", "options_s", "prefix_tokens"})``.
    """
    rows = encoder.encode(COND_GEN.prompt_rows(question, list(options), style), with_suffix=False)
    rows = rows.to(features.device)
    start = time.perf_counter()
    family = family_for(core.config)
    state = run_prefix(family, core, rows, features)
    _sync(features.device)
    middle = time.perf_counter()
    total, mean = option_loglik(family, core, encoder, state, [list(options)])
    _sync(features.device)
    end = time.perf_counter()
    parts = {
        "prefix_s": middle - start,
        "options_s": end - middle,
        "prefix_tokens": int(rows.prefix_lengths[0]),
    }
    return total[0].float().cpu().numpy(), mean[0].float().cpu().numpy(), parts


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def swag_sequential(predictor: Predictor, name: str, question: str, options: Sequence[str], features):
    """SWAG with one forward per option row (``float[K]``)."""
    variant = predictor.variants[name]
    ctx = predictor.context(variant)
    scores = [
        variant.strategy.classifier_scores(ctx, [question], [[opt]], features).scores[0, 0] for opt in options
    ]
    return torch.stack(scores).float().cpu().numpy()


@torch.no_grad()
def swag_batched(predictor: Predictor, name: str, question: str, options: Sequence[str], features):
    """SWAG as the engine runs it: all K option rows in one forward (``float[K]``)."""
    variant = predictor.variants[name]
    out = variant.strategy.classifier_scores(
        predictor.context(variant), [question], [list(options)], features
    )
    return out.scores[0].float().cpu().numpy()


@torch.no_grad()
def predict_vision_per_option(
    predictor: Predictor, image: Image.Image, question: str, options: Sequence[str], names: Sequence[str]
) -> dict[str, np.ndarray]:
    """The predictor's own scoring, but with the vision tower run once per option row and variant.

    Everything else (batched option rows, shared prefix) is the engine's code, so the difference to
    ``predictor.predict`` is the vision sharing alone. Returns ``{variant: option_scores float[K]}``.
    """
    core = predictor.backbone.core
    pixels = predictor.pixel_values([image])
    scores = {}
    for name in names:
        variant = predictor.variants[name]
        with predictor.activate(variant):
            per_row = [image_features(core, pixels) for _ in options]
            features = per_row[-1]
            out = variant.strategy.scores(predictor.context(variant), [question], [list(options)], features)
        scores[name] = out.scores[0, : len(options)]
    return scores


@torch.no_grad()
def greedy_text_hf(predictor: Predictor, name: str, question: str, options: Sequence[str], pixels) -> str:
    """COND_GEN's generated text through transformers' own ``generate`` (greedy, vision inside)."""
    variant = predictor.variants[name]
    encoder = predictor.encoder_for(variant.config)
    core = predictor.backbone.core
    rows = encoder.encode(
        COND_GEN.prompt_rows(question, list(options), variant.config.prompt.style), with_suffix=False
    ).to(core.device)
    out = core.generate(
        input_ids=rows.input_ids,
        attention_mask=rows.attention_mask,
        token_type_ids=rows.token_type_ids,
        pixel_values=pixels.to(core.dtype),
        max_new_tokens=variant.config.head.max_new_tokens,
        do_sample=False,
        eos_token_id=encoder.eos_id,
        pad_token_id=encoder.pad_id,
    )
    new_ids = out[0, rows.input_ids.shape[1] :].tolist()
    if encoder.eos_id in new_ids:
        new_ids = new_ids[: new_ids.index(encoder.eos_id)]
    return predictor.backbone.tokenizer.decode(new_ids, skip_special_tokens=True).strip()


@torch.no_grad()
def naive_predict_item(
    predictor: Predictor, image: Image.Image, question: str, options: Sequence[str], names: Sequence[str]
) -> dict[str, dict]:
    """One example, every variant, one full pass per option with the vision tower in every pass.

    MULTI_CLASS has a single row by design (one pass, vision inside); SWAG runs K passes; COND_GEN
    runs K teacher-forced passes for its likelihoods plus transformers' ``generate`` for its text.
    LoRA runs unmerged (peft's forward).
    Returns ``{variant: {"option_scores": float[K], "generated_text": str | None}}``.
    """
    core = predictor.backbone.core
    pixels = predictor.pixel_values([image])
    out: dict[str, dict] = {}
    for name in names:
        variant = predictor.variants[name]
        config = variant.config
        encoder, ctx, strategy = predictor.encoder_for(config), predictor.context(variant), variant.strategy
        with predictor.adapters.unmerged(), predictor.activate(variant):
            if strategy.generates_text:
                pairs = [
                    full_pass_option_loglik(
                        core, encoder, question, options, k, config.prompt.style, pixels=pixels
                    )
                    for k in range(len(options))
                ]
                text = greedy_text_hf(predictor, name, question, options, pixels)
                cosine = predictor.matcher.cosine_scores([text], [list(options)])[0]
                by_rule = {
                    "loglik_sum": np.array([p[0] for p in pairs]),
                    "loglik_mean": np.array([p[1] for p in pairs]),
                    "cosine": np.asarray(cosine),
                }
                out[name] = {"option_scores": by_rule[config.head.cond_gen_scoring], "generated_text": text}
            elif strategy.rows_per_option:
                scores = [
                    strategy.classifier_scores(ctx, [question], [[opt]], image_features(core, pixels))
                    .scores[0, 0]
                    .item()
                    for opt in options
                ]
                out[name] = {"option_scores": np.array(scores), "generated_text": None}
            else:
                features = image_features(core, pixels)
                scores = strategy.classifier_scores(ctx, [question], [list(options)], features).scores[0]
                out[name] = {"option_scores": scores.float().cpu().numpy(), "generated_text": None}
    return out


def naive_evaluate(predictor: Predictor, split, names: Sequence[str]) -> list[dict[str, dict]]:
    """:func:`naive_predict_item` over a split, one example at a time, in order."""
    return [
        naive_predict_item(predictor, ex.load_image(), ex.question, list(ex.options), names) for ex in split
    ]


def max_abs_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))
