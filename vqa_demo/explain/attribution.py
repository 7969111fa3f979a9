"""Captum attributions of one answer: which pixels and prompt tokens a target option's score comes from.

The API has captum's shape: ``Method(forward).attribute(pixel_values, target=targets)`` with a
:class:`ScoreForward` (a differentiable forward from ``(pixel_values, text token embeddings)`` to
one score per example) and a method from :data:`ATTRIBUTION_METHODS`, the names the UI offers;
:func:`attribute` is the one-call convenience. The score is the variant strategy's
:meth:`~vqa_demo.model.head_strategy.HeadStrategy.target_score`: the classifier's logit for the target
option, or for COND_GEN the score of the target option under the variant's decision rule (its summed
log-likelihood from one teacher-forced pass, per token or per character as the rule says: the number
that made the decision). The vision tower is frozen but differentiable, so pixel
gradients flow through it.

Only the target's own prompt row is run: a SWAG option's score depends on its row alone, so the
other K - 1 rows would receive zero attribution anyway. Heatmap painting is :mod:`vqa_demo.explain.heatmaps`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vqa_demo.model.encoding import EncodedRows
from vqa_demo.predictor import Predictor, Variant


@dataclass
class Attribution:
    """Where one example's target score comes from.

    ``pixel_map float[H, W]`` at the processor's resolution: for integrated gradients the signed
    attribution summed over colour channels, for saliency the largest absolute gradient over
    channels. ``tokens`` / ``token_scores float[T]``: the prompt's text tokens (``<bos>``, question,
    options, separator; for COND_GEN also the scored option tokens and ``<eos>``) with the signed
    attribution summed over the embedding (integrated gradients) or the gradient's L2 norm
    (saliency). ``score``: the forward value at the input; ``convergence_delta``: integrated
    gradients' completeness error (attributions' sum minus ``score - baseline_score``).
    ``log_likelihood``: the score is the target option's log-likelihood (COND_GEN, under the decision
    rule ``score_rule``: summed, per token or per character); its
    answer tokens are among ``tokens`` (from ``suffix_start``) unless the family's answer decoder
    reads them apart from the prompt (BLIP: then ``suffix_start`` is None).
    """

    variant: str
    method: str
    target: int
    score: float
    pixel_map: np.ndarray
    tokens: list[str]
    token_scores: np.ndarray
    suffix_start: int | None = None
    convergence_delta: float | None = None
    seconds: float = 0.0
    baseline_score: float | None = None
    n_steps: int | None = None
    log_likelihood: bool = False
    score_rule: str | None = None  # COND_GEN: the decision rule whose score is attributed

    @property
    def relative_error(self) -> float | None:
        """|completeness error| / |score - baseline score| (integrated gradients only)."""
        if self.convergence_delta is None or self.baseline_score is None:
            return None
        change = abs(self.score - self.baseline_score)
        return abs(self.convergence_delta) / change if change > 0 else float("inf")

    @property
    def pixel_magnitude(self) -> np.ndarray:
        """``float[H, W]`` non-negative map for a heatmap."""
        return np.abs(self.pixel_map)


@dataclass
class TargetRows:
    """The attribution rows of B examples (one per example, see
    :meth:`~vqa_demo.model.head_strategy.HeadStrategy.attribution_row`) and their text embeddings.

    ``text_embeds float[B, T, D]`` are the inputs attributed; ``baseline_embeds`` put ``<pad>``'s
    embedding at every text position; ``image_mask bool[B, T]`` marks the image-token positions.
    ``suffix_in_row``: the labels (COND_GEN's answer) are positions of the row; False where the
    family's answer decoder takes them as a row of their own (BLIP).
    """

    rows: EncodedRows
    targets: torch.Tensor
    image_mask: torch.Tensor
    text_embeds: torch.Tensor
    baseline_embeds: torch.Tensor
    suffix_in_row: bool = True

    @property
    def additional_args(self) -> tuple[torch.Tensor, ...]:
        """The per-row tensors captum tiles along with the interpolated inputs."""
        labels = self.rows.labels if self.rows.labels is not None else torch.zeros_like(self.rows.input_ids)
        return (self.image_mask, self.rows.attention_mask, self.rows.token_type_ids, labels, self.targets)

    def text_tokens(self, b: int, tokenizer) -> tuple[list[str], list[int], int | None]:
        """Row ``b``'s text tokens (no image tokens, no padding), their positions, and where the suffix starts."""
        rows = self.rows
        ids = rows.input_ids[b].tolist()
        keep = [i for i in range(len(ids)) if rows.attention_mask[b, i] and not self.image_mask[b, i]]
        # The suffix is where the labels are (token types mark image tokens in some chat families).
        labels = rows.labels if self.suffix_in_row else None
        suffix = [j for j, i in enumerate(keep) if labels is not None and labels[b, i] != -100]
        return [tokenizer.decode([ids[i]]) for i in keep], keep, suffix[0] if suffix else None


class ScoreForward:
    """A differentiable ``(pixel_values float[N,3,H,W], text_embeds float[N,T,D], *row tensors) -> float[N]``.

    Built for B examples of one variant; :meth:`target_rows` encodes each example's row for its
    target option. captum tiles the row tensors (``additional_args``) along with the interpolated
    inputs, so N may be any multiple of B. Image-token positions of ``text_embeds`` are ignored: they
    are reset to the image token's embedding, which is how the model finds where the
    (differentiable) image features go.
    """

    def __init__(
        self,
        predictor: Predictor,
        variant: Variant,
        questions: Sequence[str],
        options: Sequence[Sequence[str]],
    ):
        self.predictor = predictor
        self.variant = variant
        self.strategy = variant.strategy
        self.ctx = predictor.context(variant)
        self.questions = list(questions)
        self.options = [list(o) for o in options]
        self.num_options = {len(o) for o in options}
        self.image_token_id = self.ctx.encoder.image_token_id
        with torch.no_grad():
            self.image_token_embed = self.embed(torch.tensor(self.image_token_id, device=self.device))

    @property
    def device(self) -> torch.device:
        return self.predictor.backbone.device

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.ctx.core.get_input_embeddings()(ids)

    @torch.no_grad()
    def target_rows(self, targets: Sequence[int]) -> TargetRows:
        """The encoded attribution row of every example for its option ``targets[b]``."""
        style, rows = self.ctx.prompt_style, []
        for question, opts, target in zip(self.questions, self.options, targets):
            if not 0 <= target < len(opts):
                raise ValueError(f"target {target} is not an option index (K={len(opts)})")
            rows.append(self.strategy.attribution_row(question, opts, target, style))
        encoder = self.ctx.encoder
        encoded = encoder.encode(rows, with_suffix=self.strategy.attribution_suffix).to(self.device)
        image_mask = encoded.input_ids == self.image_token_id
        text_embeds = self.embed(encoded.input_ids.masked_fill(image_mask, encoder.pad_id)).float()
        pad = self.embed(torch.tensor([encoder.pad_id], device=self.device)).float()
        baseline = torch.where(image_mask[..., None], text_embeds, pad)
        targets = torch.tensor(list(targets), device=self.device)
        in_row = not self.strategy.attribution_suffix or self.ctx.family.answer_scorer.suffix_in_row
        return TargetRows(encoded, targets, image_mask, text_embeds, baseline, in_row)

    def __call__(
        self, pixel_values, text_embeds, image_mask, attention_mask, token_type_ids, labels, targets
    ):
        core = self.ctx.core
        family = self.ctx.family
        features = family.image_features(core, pixel_values, grad=torch.is_grad_enabled())
        embeds = torch.where(
            image_mask[..., None], self.image_token_embed.to(core.dtype), text_embeds.to(core.dtype)
        )
        hidden = family.embeds_forward(core, embeds, attention_mask, token_type_ids, features)
        num_options = max(self.num_options)  # MULTI_CLASS answers one K only (select_variants checks)
        return self.strategy.target_score(self.ctx, hidden, attention_mask, labels, targets, num_options)


@dataclass
class AttributionMaps:
    """A method's result for B examples: ``pixel_maps float[B, H, W]``, ``token_maps float[B, T]``
    (over the rows' positions), ``scores`` at the input, and for integrated gradients the baseline
    scores and convergence deltas (else None per example)."""

    rows: TargetRows
    scores: list[float]
    pixel_maps: torch.Tensor
    token_maps: torch.Tensor
    deltas: list[float | None]
    baseline_scores: list[float | None]
    n_steps: int | None = None


class PixelTokenAttribution:
    """Base of the attribution methods over ``(pixel_values, text embeddings)`` of a :class:`ScoreForward`.

    ``on_progress`` receives the finished fraction after every forward chunk (``internal_batch_size``
    rows, default ``4 * B``).
    """

    def __init__(
        self,
        forward: ScoreForward,
        n_steps: int = 16,
        internal_batch_size: int | None = None,
        on_progress: Callable[[float], None] | None = None,
    ):
        self.forward = forward
        self.n_steps = n_steps
        self.internal_batch_size = internal_batch_size
        self.on_progress = on_progress

    def counted(self, total_chunks: int) -> Callable:
        """The forward, reporting progress after each call."""
        calls = [0]

        def counted(*args):
            out = self.forward(*args)
            calls[0] += 1
            if self.on_progress is not None:
                self.on_progress(min(1.0, calls[0] / total_chunks))
            return out

        return counted

    def attribute(self, pixel_values: torch.Tensor, target: Sequence[int]) -> AttributionMaps:
        """Attribute each example's ``target`` option score to ``pixel_values float[B, 3, H, W]`` and
        its prompt's text tokens."""
        raise NotImplementedError


class PixelTokenSaliency(PixelTokenAttribution):
    """Plain gradients (one backward pass): the largest absolute pixel gradient over colour channels,
    and each token embedding's gradient L2 norm."""

    def attribute(self, pixel_values, target) -> AttributionMaps:
        from captum.attr import Saliency

        rows = self.forward.target_rows(target)
        inputs = (pixel_values, rows.text_embeds)
        with torch.no_grad():
            scores = self.forward(*inputs, *rows.additional_args).float().cpu().tolist()
        inputs = tuple(t.detach().requires_grad_(True) for t in inputs)
        grads = Saliency(self.counted(1)).attribute(
            inputs, additional_forward_args=rows.additional_args, abs=False
        )
        none = [None] * len(scores)
        return AttributionMaps(
            rows, scores, grads[0].abs().amax(dim=1), grads[1].norm(dim=-1), none, list(none)
        )


class PixelTokenIntegratedGradients(PixelTokenAttribution):
    """Integrated gradients (``n_steps`` Gauss-Legendre steps) from the family's image baseline (a
    uniform image, zero after normalisation; ViLT keeps its pixel mask) and ``<pad>`` embeddings
    for every text token; signed attributions summed over colour channels and over the embedding."""

    def attribute(self, pixel_values, target) -> AttributionMaps:
        from captum.attr import IntegratedGradients

        rows = self.forward.target_rows(target)
        batch = len(rows.targets)
        chunk = self.internal_batch_size or 4 * batch
        inputs = (pixel_values, rows.text_embeds)
        baselines = (self.forward.ctx.family.pixel_baseline(pixel_values), rows.baseline_embeds)
        with torch.no_grad():
            scores = self.forward(*inputs, *rows.additional_args).float().cpu().tolist()
            baseline_scores = self.forward(*baselines, *rows.additional_args).float().cpu().tolist()
        attributions, delta = IntegratedGradients(self.counted(-(-self.n_steps * batch // chunk))).attribute(
            inputs,
            baselines=baselines,
            additional_forward_args=rows.additional_args,
            n_steps=self.n_steps,
            internal_batch_size=chunk,
            return_convergence_delta=True,
        )
        deltas = [float(d) for d in delta.detach().cpu()]
        pixel_maps, token_maps = attributions[0].sum(dim=1), attributions[1].sum(dim=-1)
        return AttributionMaps(rows, scores, pixel_maps, token_maps, deltas, baseline_scores, self.n_steps)


# The attribution methods the UI offers, by name.
ATTRIBUTION_METHODS: dict[str, type[PixelTokenAttribution]] = {
    "integrated_gradients": PixelTokenIntegratedGradients,
    "saliency": PixelTokenSaliency,
}
METHODS = tuple(ATTRIBUTION_METHODS)


def attribute(
    predictor: Predictor,
    images: Sequence[Image.Image | torch.Tensor],
    questions: Sequence[str],
    options: Sequence[Sequence[str]],
    variant: str,
    targets: Sequence[int] | None = None,
    method: str = "integrated_gradients",
    n_steps: int = 16,
    internal_batch_size: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> list[Attribution]:
    """Attribute each example's ``targets`` score (default: the variant's own choice) to pixels and tokens.

    ``method`` names one of :data:`ATTRIBUTION_METHODS`. Examples are attributed together; each
    example's result is the same as attributing it alone. An image may be given as its model input,
    :meth:`Predictor.pixel_values`'s row ``float[3, H, W]``.
    """
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if variant not in predictor.variants:
        raise ValueError(f"unknown variant {variant!r}; loaded: {list(predictor.variants)}")
    if not (len(images) == len(questions) == len(options)):
        raise ValueError("images, questions and options must have the same length")
    started = time.perf_counter()
    chosen = predictor.variants[variant]
    predictor.select_variants([variant], {len(o) for o in options})
    if targets is None:
        results = predictor.predict_batch(images, questions, options, [variant])
        targets = [r[variant].choice for r in results]
    with predictor.lock, predictor.activate(chosen), torch.enable_grad():
        forward = ScoreForward(predictor, chosen, questions, options)
        explainer = ATTRIBUTION_METHODS[method](forward, n_steps, internal_batch_size, on_progress)
        maps = explainer.attribute(predictor.pixel_values(images).float(), target=targets)
    seconds = (time.perf_counter() - started) / len(images)
    results = [
        attribution_of(maps, b, variant, method, seconds, predictor.backbone.tokenizer)
        for b in range(len(images))
    ]
    if chosen.strategy.generates_text:
        for result in results:
            result.score_rule = chosen.config.head.cond_gen_scoring
    return results


def attribution_of(
    maps: AttributionMaps, b: int, variant: str, method: str, seconds: float, tokenizer
) -> Attribution:
    """Example ``b``'s :class:`Attribution` from a method's batch result."""
    tokens, keep, suffix_start = maps.rows.text_tokens(b, tokenizer)
    return Attribution(
        variant=variant,
        method=method,
        target=int(maps.rows.targets[b]),
        score=float(maps.scores[b]),
        pixel_map=maps.pixel_maps[b].detach().float().cpu().numpy(),
        tokens=tokens,
        token_scores=maps.token_maps[b].detach().float().cpu().numpy()[keep],
        suffix_start=suffix_start,
        convergence_delta=maps.deltas[b],
        seconds=seconds,
        baseline_score=maps.baseline_scores[b],
        n_steps=maps.n_steps,
        log_likelihood=maps.rows.rows.labels is not None,
    )


def attribute_until_complete(
    predictor: Predictor,
    image: Image.Image,
    question: str,
    options: Sequence[str],
    variant: str,
    target: int,
    n_steps: int = 16,
    max_steps: int = 128,
    tolerance: float = 0.05,
    on_progress: Callable[[float], None] | None = None,
) -> Attribution:
    """Integrated gradients for one example, with more steps (x4, up to ``max_steps``) while the error is large.

    Stops once ``|delta| <= tolerance * |score - baseline score|``; otherwise returns the try with
    the smallest relative error (more steps do not always help: the error is not monotone in steps),
    whose ``relative_error`` and ``n_steps`` let a caller flag an unreliable map.
    """
    steps, best = max(1, int(n_steps)), None
    while True:
        (result,) = attribute(
            predictor,
            [image],
            [question],
            [list(options)],
            variant,
            targets=[target],
            n_steps=steps,
            on_progress=on_progress,
        )
        error = result.relative_error
        if error is None or error <= tolerance:
            return result
        if best is None or error < best.relative_error:
            best = result
        if steps >= max_steps:
            return best
        steps = min(max_steps, steps * 4)
