"""Explanations of one answer: attentive-pooling heatmaps and captum attributions.

Two kinds of evidence, both for the option a variant chose (or any ``target`` option):

- **Pooling weights** (attentive variants only, free): the predictor's ``extras["attention"]``
  holds the weights over the image patch grid and the text tokens; :func:`heatmap_overlay` paints
  the upsampled grid over the image and :func:`token_highlights` turns token weights into
  ``(token, score)`` pairs for ``gr.HighlightedText``.
- **Attributions** (any variant, on demand): :func:`attribute` runs captum's integrated gradients
  or saliency through a differentiable forward from ``(pixel_values, text token embeddings)`` to
  one score per example. The score is the classifier's logit for the target option, or for
  COND_GEN the target option's summed log-likelihood from one teacher-forced pass (the same
  number as ``extras["loglik_sum"]``). The vision tower is frozen but differentiable, so pixel
  gradients flow through it.

Only the target's own prompt row is run: a SWAG option's score depends on its row alone, so the
other K - 1 rows would receive zero attribution anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vqa_demo.model.encoding import EncodedRows
from vqa_demo.model.forward import as_encoder_outputs, lm_logits
from vqa_demo.model.prompts import build_rows
from vqa_demo.predictor import Predictor, Variant

METHODS = ("integrated_gradients", "saliency")
OVERLAY_MAX_SIDE = 512  # heatmaps are painted on the image fitted into this many pixels

# Anchor colours of matplotlib's "inferno" map (dark = little weight, bright = much).
_INFERNO = np.array(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=np.float32,
)


# ------------------------------------------------------------------------------------------------
# Heatmaps and highlighted tokens
# ------------------------------------------------------------------------------------------------


def colormap(values: np.ndarray) -> np.ndarray:
    """``float[...]`` in [0, 1] -> ``uint8[..., 3]`` inferno colours."""
    scaled = np.clip(values, 0.0, 1.0) * (len(_INFERNO) - 1)
    low = np.floor(scaled).astype(int)
    high = np.minimum(low + 1, len(_INFERNO) - 1)
    frac = (scaled - low)[..., None]
    return (_INFERNO[low] * (1 - frac) + _INFERNO[high] * frac).round().astype(np.uint8)


def normalise_map(values: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to [0, 1] by its maximum (an all-zero map stays zero)."""
    values = np.asarray(values, dtype=np.float32)
    peak = float(values.max()) if values.size else 0.0
    return values / peak if peak > 0 else np.zeros_like(values)


def fit_long_side(image: Image.Image, max_side: int | None, min_side: int | None = None) -> Image.Image:
    """``image`` scaled (Lanczos) so its long side is at most ``max_side`` and at least ``min_side``.

    Returns ``image`` itself when it already fits. Fitting an already fitted image changes nothing,
    so a copy fitted into ``max_side`` gives the same overlays as the original.
    """
    long_side = max(image.size)
    target = min(long_side, max_side or long_side)
    target = max(target, min_side or 0)
    if target == long_side:
        return image
    scale = target / long_side
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
    )


def heatmap_overlay(
    image: Image.Image,
    grid: np.ndarray,
    opacity: float = 0.5,
    max_side: int | None = OVERLAY_MAX_SIDE,
    min_side: int | None = None,
    peak: float | None = None,
    nearest: bool = False,
) -> Image.Image:
    """Paint ``grid float[g, g]`` (or any ``float[h, w]`` map, >= 0) over ``image``.

    The grid is divided by ``peak`` (default: its own maximum; pass a shared one to put several maps
    on one scale) and upsampled to the image size, bilinearly or, with ``nearest``, as crisp patches.
    That is the geometry the processor used (it stretches the image to a square, so the stretch is
    undone here).
    ``opacity`` 0 shows the image alone, 1 the heatmap alone. The image is first scaled so its long
    side is at most ``max_side`` and (for display) at least ``min_side`` pixels.
    """
    base = fit_long_side(image.convert("RGB"), max_side, min_side)
    grid = np.asarray(grid, dtype=np.float32)
    if grid.ndim != 2:
        raise ValueError(f"grid must be 2-D, got shape {grid.shape}")
    grid = normalise_map(grid) if peak is None else (grid / peak if peak > 0 else np.zeros_like(grid))
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    upsampled = np.asarray(Image.fromarray(grid, mode="F").resize(base.size, resample), dtype=np.float32)
    colours = colormap(upsampled).astype(np.float32)
    opacity = float(np.clip(opacity, 0.0, 1.0))
    blended = (1 - opacity) * np.asarray(base, dtype=np.float32) + opacity * colours
    return Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))


def token_highlights(
    tokens: Sequence[str], weights: Sequence[float], signed: bool = False
) -> list[tuple[str, float]]:
    """``(token, score)`` pairs for ``gr.HighlightedText``: scores scaled to [0, 1] (or [-1, 1] if signed)."""
    values = np.asarray(weights, dtype=np.float32)
    peak = float(np.abs(values).max()) if values.size else 0.0
    scaled = values / peak if peak > 0 else np.zeros_like(values)
    if not signed:
        scaled = np.clip(scaled, 0.0, 1.0)
    return [(token, round(float(score), 4)) for token, score in zip(tokens, scaled)]


# ------------------------------------------------------------------------------------------------
# Captum attributions
# ------------------------------------------------------------------------------------------------


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


class ScoreForward:
    """A differentiable ``(pixel_values float[N,3,H,W], text_embeds float[N,T,D], *row tensors) -> float[N]``.

    Built for B examples of one variant; captum tiles the row tensors (``additional_args``) along
    with the interpolated inputs, so N may be any multiple of B. Image-token positions of
    ``text_embeds`` are ignored: they are reset to the image token's embedding, which is how the
    model finds where the (differentiable) image features go.
    """

    def __init__(
        self,
        predictor: Predictor,
        variant: Variant,
        questions: Sequence[str],
        options: Sequence[Sequence[str]],
        targets: Sequence[int],
    ):
        self.predictor = predictor
        self.variant = variant
        self.core = predictor.backbone.core
        config = variant.config
        head = variant.head_name
        rows = []
        for question, opts, target in zip(questions, options, targets):
            if not 0 <= target < len(opts):
                raise ValueError(f"target {target} is not an option index (K={len(opts)})")
            if head == "cond_gen":
                rows.append(
                    build_rows("cond_gen", question, list(opts), config.prompt.style, answer_index=target)[0]
                )
            elif head == "swag":
                rows.append(build_rows("swag", question, list(opts), config.prompt.style)[target])
            else:
                rows.append(build_rows("multi_class", question, list(opts), config.prompt.style)[0])
        device = predictor.backbone.device
        self.encoder = predictor.encoder_for(config)
        self.rows: EncodedRows = self.encoder.encode(rows, with_suffix=head == "cond_gen").to(device)
        self.targets = torch.tensor(list(targets), device=device)
        self.num_options = {len(o) for o in options}
        image_token_id = predictor.backbone.processor.image_token_id
        embed = self.core.get_input_embeddings()
        with torch.no_grad():
            ids = self.rows.input_ids
            self.image_mask = ids == image_token_id
            self.text_embeds = embed(ids.masked_fill(self.image_mask, self.encoder.pad_id)).float()
            pad = embed(torch.tensor([self.encoder.pad_id], device=device)).float()
            self.baseline_embeds = torch.where(self.image_mask[..., None], self.text_embeds, pad)
            self.image_token_embed = embed(torch.tensor(image_token_id, device=device))

    def text_tokens(self, b: int) -> tuple[list[str], list[int], int | None]:
        """Row ``b``'s text tokens (no image tokens, no padding), their positions, and where the suffix starts."""
        rows, tokenizer = self.rows, self.predictor.backbone.tokenizer
        ids = rows.input_ids[b].tolist()
        keep = [i for i in range(len(ids)) if rows.attention_mask[b, i] and not self.image_mask[b, i]]
        suffix = [j for j, i in enumerate(keep) if rows.token_type_ids[b, i] == 1]
        return [tokenizer.decode([ids[i]]) for i in keep], keep, suffix[0] if suffix else None

    @property
    def additional_args(self) -> tuple[torch.Tensor, ...]:
        labels = self.rows.labels if self.rows.labels is not None else torch.zeros_like(self.rows.input_ids)
        return (self.image_mask, self.rows.attention_mask, self.rows.token_type_ids, labels, self.targets)

    def __call__(
        self, pixel_values, text_embeds, image_mask, attention_mask, token_type_ids, labels, targets
    ):
        core = self.core
        features = core.model.get_image_features(pixel_values.to(core.dtype)).pooler_output
        embeds = torch.where(
            image_mask[..., None], self.image_token_embed.to(core.dtype), text_embeds.to(core.dtype)
        )
        hidden = core.model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            mm_encoder_outputs=as_encoder_outputs(features),
            use_cache=False,
        ).last_hidden_state
        head = self.variant.head_name
        if head == "cond_gen":
            # Summed log-probabilities of the suffix tokens (the target option and <eos>), never losses.
            logp = torch.log_softmax(lm_logits(core, hidden[:, :-1]), dim=-1)
            gold = labels[:, 1:]
            scored = gold != -100
            token_logp = logp.gather(-1, gold.clamp(min=0)[..., None]).squeeze(-1)
            return (token_logp * scored).sum(dim=1)
        mask = attention_mask.bool()
        if head == "swag":
            scores, _ = self.variant.head(hidden, mask, 1)
            return scores[:, 0].float()
        (num_options,) = self.num_options
        scores, _ = self.variant.head(hidden, mask, num_options)
        return scores.float().gather(1, targets[:, None]).squeeze(1)


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

    ``method`` is ``"integrated_gradients"`` (baselines: a uniform grey image, i.e. zero after
    normalisation, and ``<pad>`` embeddings for every text token; ``n_steps`` Gauss-Legendre steps)
    or ``"saliency"`` (plain gradients, one backward pass). Examples are attributed together; each
    example's result is the same as attributing it alone. ``on_progress`` receives the finished
    fraction after every forward chunk (``internal_batch_size`` rows, default ``4 * B``). An image
    may be given as its model input, :meth:`Predictor.pixel_values`'s row ``float[3, H, W]``.
    """
    from captum.attr import IntegratedGradients, Saliency

    if method not in METHODS:
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
    batch = len(images)
    chunk = internal_batch_size or 4 * batch
    total_chunks = 1 if method == "saliency" else -(-n_steps * batch // chunk)
    with predictor.lock, predictor.activate(chosen), torch.enable_grad():
        forward = ScoreForward(predictor, chosen, questions, options, targets)
        calls = [0]

        def counted(*args):
            out = forward(*args)
            calls[0] += 1
            if on_progress is not None:
                on_progress(min(1.0, calls[0] / total_chunks))
            return out

        pixels = predictor.pixel_values(images).float()
        inputs = (pixels, forward.text_embeds)
        with torch.no_grad():
            scores = forward(*inputs, *forward.additional_args).float().cpu().numpy()
        if method == "saliency":
            inputs = tuple(t.detach().requires_grad_(True) for t in inputs)
            grads = Saliency(counted).attribute(
                inputs, additional_forward_args=forward.additional_args, abs=False
            )
            pixel_maps = grads[0].abs().amax(dim=1)
            token_maps = grads[1].norm(dim=-1)
            deltas = baseline_scores = [None] * batch
        else:
            baselines = (torch.zeros_like(pixels), forward.baseline_embeds)
            with torch.no_grad():
                baseline_scores = forward(*baselines, *forward.additional_args).float().cpu().tolist()
            attributions, delta = IntegratedGradients(counted).attribute(
                inputs,
                baselines=baselines,
                additional_forward_args=forward.additional_args,
                n_steps=n_steps,
                internal_batch_size=chunk,
                return_convergence_delta=True,
            )
            pixel_maps = attributions[0].sum(dim=1)
            token_maps = attributions[1].sum(dim=-1)
            deltas = [float(d) for d in delta.detach().cpu()]
    seconds = (time.perf_counter() - started) / batch
    results = []
    for b in range(batch):
        tokens, keep, suffix_start = forward.text_tokens(b)
        results.append(
            Attribution(
                variant=variant,
                method=method,
                target=int(targets[b]),
                score=float(scores[b]),
                pixel_map=pixel_maps[b].detach().float().cpu().numpy(),
                tokens=tokens,
                token_scores=token_maps[b].detach().float().cpu().numpy()[keep],
                suffix_start=suffix_start,
                convergence_delta=deltas[b],
                seconds=seconds,
                baseline_score=baseline_scores[b],
                n_steps=n_steps if method == "integrated_gradients" else None,
            )
        )
    return results


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
