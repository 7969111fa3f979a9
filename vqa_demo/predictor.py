"""THE predictor: images, questions and options in; per-variant option scores, choice and extras out.

Training-time evaluation, the CLI evaluation and the app all call :meth:`Predictor.predict_batch`
(``predict`` is the one-example case of it), so their numbers cannot disagree.

Per call, the vision tower runs once per image; every variant (each a LoRA adapter + head on the
shared base) and every option row reuses those features. Only a variant trained with LoRA on the
vision tower (``LoraSettings.vision``) computes image features of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from vqa_demo.config import RunConfig
from vqa_demo.model.backbone import Backbone
from vqa_demo.model.cond_gen import greedy_generate, option_loglik, run_prefix
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.forward import image_features
from vqa_demo.model.matching import SentenceMatcher
from vqa_demo.model.merged_adapters import MergedAdapters
from vqa_demo.model.prompts import build_rows, clean_option
from vqa_demo.model.scoring import classifier_scores

# Cosine similarities live in [-1, 1]; a temperature spreads them into usable probabilities.
COSINE_TEMPERATURE = 0.05


@dataclass
class Variant:
    """One trained answer strategy on the shared base: its config, head module and peft adapter name.

    ``adapter`` None means the base weights without LoRA.
    """

    name: str
    config: RunConfig
    head: nn.Module | None = None
    adapter: str | None = None

    @property
    def head_name(self) -> str:
        return self.config.head.head

    def incompatibility(self, num_options: int) -> str | None:
        """Why this variant cannot answer a question with ``num_options`` options (None if it can)."""
        trained_k = self.config.head.num_options
        if self.head_name == "multi_class" and num_options != trained_k:
            return f"{self.name} was trained for exactly {trained_k} options (got {num_options})"
        return None


@dataclass
class VariantPrediction:
    """One variant's answer to one example.

    option_scores float[K] (higher is better; the choice is their argmax), probabilities float[K]
    (softmax over option_scores), extras: COND_GEN's generated text and its cosine / likelihood
    scores, attentive pooling weights (image patch grid and text tokens).
    """

    variant: str
    option_scores: np.ndarray
    probabilities: np.ndarray
    choice: int
    extras: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        def plain(value):
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        return plain(
            {
                "variant": self.variant,
                "option_scores": self.option_scores,
                "probabilities": self.probabilities,
                "choice": self.choice,
                "extras": self.extras,
                "seconds": self.seconds,
                "truncated": self.truncated,
            }
        )


def softmax_np(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; -inf (padded options) gets probability 0."""
    shifted = scores - np.max(scores, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Predictor:
    """Answers multiple-choice questions with any subset of the loaded variants."""

    def __init__(
        self,
        backbone: Backbone,
        variants: Sequence[Variant],
        matcher: SentenceMatcher | None = None,
        batch_size: int = 16,
        merge_adapters: bool | None = None,
    ):
        """``merge_adapters``: run each variant with its LoRA merged into swapped-in weights
        (:mod:`vqa_demo.model.merged_adapters`); ``None`` does so where the model allows it (small float32),
        ``True`` insists, ``False`` keeps peft's unmerged forward."""
        self.backbone = backbone
        self.variants = {v.name: v for v in variants}
        self.matcher = matcher or SentenceMatcher()
        self.batch_size = batch_size
        self._encoders: dict[tuple, RowEncoder] = {}
        # peft's active adapter is global model state: one prediction at a time.
        self.lock = threading.Lock()
        self.merged: MergedAdapters | None = None
        self.unmerged_reason: str | None = "merging switched off" if merge_adapters is False else None
        if merge_adapters is not False and any(v.adapter for v in self.variants.values()):
            merged = MergedAdapters(backbone.model)
            self.unmerged_reason = merged.unsupported_reason()
            if self.unmerged_reason is None:
                self.merged = merged
            elif merge_adapters:
                raise ValueError(f"cannot merge the adapters: {self.unmerged_reason}")

    # -- public API -------------------------------------------------------------------------------
    def predict(
        self,
        image: Image.Image | torch.Tensor,
        question: str,
        options: Sequence[str],
        variants: Sequence[str] | None = None,
    ) -> dict[str, VariantPrediction]:
        """Answer one question; returns ``{variant name: VariantPrediction}``."""
        return self.predict_batch([image], [question], [list(options)], variants)[0]

    def predict_batch(
        self,
        images: Sequence[Image.Image | torch.Tensor],
        questions: Sequence[str],
        options: Sequence[Sequence[str]],
        variants: Sequence[str] | None = None,
    ) -> list[dict[str, VariantPrediction]]:
        """Answer B questions (chunked by ``batch_size``); one dict per example, in input order.

        An image may be given as its :meth:`pixel_values` row (``float[3, H, W]``) instead."""
        if not (len(images) == len(questions) == len(options)):
            raise ValueError("images, questions and options must have the same length")
        # Every head sees options exactly as its prompts were trained on them (whitespace collapsed).
        options = [[clean_option(o) for o in opts] for opts in options]
        names = self.select_variants(variants, {len(o) for o in options})
        results: list[dict[str, VariantPrediction]] = []
        for start in range(0, len(images), self.batch_size):
            stop = start + self.batch_size
            results.extend(
                self._predict_chunk(
                    list(images[start:stop]),
                    list(questions[start:stop]),
                    [list(o) for o in options[start:stop]],
                    names,
                )
            )
        return results

    def select_variants(self, requested: Sequence[str] | None, option_counts: set[int]) -> list[str]:
        """Validate the requested variant names against the loaded ones and the option counts.

        With ``requested=None``, every loaded variant that can answer is used.
        """
        if requested is None:
            return [
                name
                for name, v in self.variants.items()
                if all(v.incompatibility(k) is None for k in option_counts)
            ]
        unknown = [n for n in requested if n not in self.variants]
        if unknown:
            raise ValueError(f"unknown variants {unknown}; loaded: {list(self.variants)}")
        reasons = [
            reason
            for n in requested
            for k in option_counts
            if (reason := self.variants[n].incompatibility(k))
        ]
        if reasons:
            raise ValueError("; ".join(reasons))
        return list(requested)

    def incompatible_variants(self, num_options: int) -> dict[str, str]:
        """``{variant: reason}`` for variants that cannot answer with ``num_options`` options."""
        return {n: r for n, v in self.variants.items() if (r := v.incompatibility(num_options))}

    # -- internals --------------------------------------------------------------------------------
    def encoder_for(self, config: RunConfig) -> RowEncoder:
        key = (config.prompt.separator, config.prompt.max_text_tokens)
        if key not in self._encoders:
            self._encoders[key] = RowEncoder(
                self.backbone.tokenizer,
                self.backbone.processor.image_token_id,
                self.backbone.image_seq_length,
                separator=config.prompt.separator,
                max_text_tokens=config.prompt.max_text_tokens,
            )
        return self._encoders[key]

    def pixel_values(self, images: Sequence[Image.Image | torch.Tensor]) -> torch.Tensor:
        """``float[B, 3, H, W]`` on the model's device (:meth:`Backbone.pixel_values`)."""
        return self.backbone.pixel_values(images)

    def activate(self, variant: Variant | None):
        """Context in which the model runs as ``variant`` (its LoRA adapter active); ``None`` or an
        adapter-less variant means the bare base. Where merging is available the adapter runs merged
        into the weights, else through peft's LoRA branch; the scores agree to float rounding. The
        active adapter is global model state: hold :attr:`lock` around any use."""
        model = self.backbone.model
        if variant is None or variant.adapter is None:
            return model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
        if self.merged is not None:
            return self.merged.active(variant.adapter)
        model.set_adapter(variant.adapter)
        return nullcontext()

    @contextmanager
    def unmerged(self) -> Iterator[None]:
        """Meanwhile every variant runs through peft's unmerged LoRA forward (for comparisons)."""
        merged, self.merged = self.merged, None
        try:
            yield
        finally:
            self.merged = merged

    def _model_adapts_tower(self) -> bool:
        """Whether any adapter on the shared model (not only this predictor's) touches the vision tower."""
        configs = getattr(self.backbone.model, "peft_config", {})
        return any("vision_tower" in str(c.target_modules) for c in configs.values())

    @torch.no_grad()
    def _predict_chunk(self, images, questions, options, names) -> list[dict[str, VariantPrediction]]:
        with self.lock:
            pixels = self.pixel_values(images)
            shared = [n for n in names if not self.variants[n].config.lora.vision]
            start = time.perf_counter()
            features = None
            if shared:
                # The frozen tower: identical features for every variant, computed once. Adapters are
                # switched off only if some variant adapts the tower (switching costs ~17 ms a call).
                with self.activate(None) if self._model_adapts_tower() else nullcontext():
                    features = image_features(self.backbone.core, pixels)
            vision_seconds = (time.perf_counter() - start) / max(len(shared), 1)
            results: list[dict[str, VariantPrediction]] = [{} for _ in images]
            for name in names:
                variant = self.variants[name]
                start = time.perf_counter()
                with self.activate(variant):
                    own = variant.config.lora.vision
                    variant_features = image_features(self.backbone.core, pixels) if own else features
                    if variant.head_name == "cond_gen":
                        predictions = self._cond_gen(variant, questions, options, variant_features)
                    else:
                        predictions = self._classifier(variant, questions, options, variant_features)
                # Each example's share of the batch time, plus its share of the shared vision pass.
                seconds = (time.perf_counter() - start + (0.0 if own else vision_seconds)) / len(images)
                for result, prediction in zip(results, predictions):
                    prediction.seconds = seconds
                    result[name] = prediction
            return results

    def _classifier(self, variant, questions, options, features) -> list[VariantPrediction]:
        config = variant.config
        encoder = self.encoder_for(config)
        out = classifier_scores(
            self.backbone.core,
            variant.head,
            config.head,
            encoder,
            questions,
            options,
            features,
            config.prompt.style,
        )
        scores = out.scores.cpu().numpy()
        per_option = variant.head_name == "swag"
        predictions = []
        for b, opts in enumerate(options):
            option_scores = scores[b, : len(opts)]
            choice = int(np.argmax(option_scores))
            first = out.first_row(b)
            extras: dict[str, Any] = {}
            if out.weights is not None:
                row = first + (choice if per_option else 0)
                extras["attention"] = self.attention_extras(out.rows.input_ids[row], out.weights[row])
                extras["attention"]["row"] = "chosen option" if per_option else "prompt"
            truncated = any(out.rows.truncated[first : first + out.row_counts[b]])
            predictions.append(
                VariantPrediction(
                    variant.name,
                    option_scores,
                    softmax_np(option_scores),
                    choice,
                    extras,
                    truncated=truncated,
                )
            )
        return predictions

    def _cond_gen(self, variant, questions, options, features) -> list[VariantPrediction]:
        config = variant.config
        encoder = self.encoder_for(config)
        core = self.backbone.core
        prompt_rows = [
            build_rows("cond_gen", q, o, config.prompt.style)[0] for q, o in zip(questions, options)
        ]
        rows = encoder.encode(prompt_rows, with_suffix=False).to(features.device)
        state = run_prefix(core, rows, features)
        loglik_sum, loglik_mean = option_loglik(core, encoder, state, options)
        generated_ids = greedy_generate(core, state, encoder.eos_id, config.head.max_new_tokens)
        generated = [
            self.backbone.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in generated_ids
        ]
        cosine = self.matcher.cosine_scores(generated, options)
        # Only text that skipped the input layer's option limit can exceed the answer budget.
        options_cut = [any(encoder.suffix(text)[1] for text in opts) for opts in options]
        by_scoring = {
            "loglik_mean": loglik_mean.cpu().numpy(),
            "loglik_sum": loglik_sum.cpu().numpy(),
            "cosine": cosine,
        }
        chosen = by_scoring[config.head.cond_gen_scoring]
        predictions = []
        for b, opts in enumerate(options):
            k = len(opts)
            option_scores = chosen[b, :k]
            scaled = (
                option_scores / COSINE_TEMPERATURE
                if config.head.cond_gen_scoring == "cosine"
                else option_scores
            )
            extras = {
                "generated_text": generated[b],
                "cosine": cosine[b, :k],
                "cosine_choice": int(np.argmax(cosine[b, :k])),
                "loglik_sum": by_scoring["loglik_sum"][b, :k],
                "loglik_mean": by_scoring["loglik_mean"][b, :k],
                "scoring": config.head.cond_gen_scoring,
            }
            predictions.append(
                VariantPrediction(
                    variant.name,
                    option_scores,
                    softmax_np(scaled),
                    int(np.argmax(option_scores)),
                    extras,
                    truncated=rows.truncated[b] or options_cut[b],
                )
            )
        return predictions

    def attention_extras(self, input_ids: torch.Tensor, weights: torch.Tensor) -> dict[str, Any]:
        """Split pooling weights ``float[T]`` of one row into an image patch grid and text tokens.

        Returns ``image_grid float[g, g]`` (row-major patches), ``tokens`` / ``token_weights`` for the
        text part (padding excluded) and ``image_mass``, the share of weight on the image.
        """
        n_image = self.backbone.image_seq_length
        side = int(round(n_image**0.5))
        weights = weights.float().cpu().numpy()
        ids = input_ids.cpu().tolist()
        real = [
            i for i, tok in enumerate(ids) if i >= n_image and tok != self.backbone.tokenizer.pad_token_id
        ]
        tokenizer = self.backbone.tokenizer
        return {
            "image_grid": weights[:n_image].reshape(side, side)
            if side * side == n_image
            else weights[:n_image],
            "tokens": [tokenizer.decode([ids[i]]) for i in real],
            "token_weights": weights[real],
            "image_mass": float(weights[:n_image].sum()),
        }
