"""THE predictor: images, questions and options in; per-variant option scores, choice and details out.

Training-time evaluation, the CLI evaluation and the app all call :meth:`Predictor.predict_batch`
(``predict`` is the one-example case of it), so their numbers cannot disagree.

Per call, the vision tower runs once per image; every variant (each a LoRA adapter + head on the
shared base) and every option row reuses those features. Only a variant trained with LoRA on the
vision tower (``LoraSettings.vision``) computes image features of its own. How a variant scores is
its head's strategy (:mod:`vqa_demo.model.strategies`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from PIL import Image

from vqa_demo.config import RunConfig
from vqa_demo.model.adapter_switch import AdapterSwitch
from vqa_demo.model.backbone import Backbone
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.head_strategy import HeadContext, HeadScores
from vqa_demo.model.matching import SentenceMatcher
from vqa_demo.model.prompts import clean_option
from vqa_demo.prediction import VariantPrediction, attention_map, softmax_np
from vqa_demo.variant import Variant

__all__ = ["Predictor", "Variant", "VariantPrediction", "softmax_np"]


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
        """``merge_adapters``: see :class:`~vqa_demo.model.adapter_switch.AdapterSwitch` (``merge``)."""
        self.backbone = backbone
        self.variants = {v.name: v for v in variants}
        self.matcher = matcher or SentenceMatcher()
        self.batch_size = batch_size
        # The base's serving precision (vqa_demo.model.precision.apply_precision's summary), if converted.
        self.precision: dict | None = None
        self.encoders: dict[tuple, RowEncoder] = {}
        has_adapters = any(v.adapter for v in self.variants.values())
        self.adapters = AdapterSwitch(backbone.model, has_adapters, merge_adapters, family=backbone.family)
        # peft's active adapter is global model state: one prediction at a time.
        self.lock = self.adapters.lock

    def predict(
        self, image: Image.Image | torch.Tensor, question: str, options: Sequence[str], variants=None
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
            chunk = (list(images[start:stop]), list(questions[start:stop]), options[start:stop])
            results.extend(self.predict_chunk(*chunk, names))
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

    def encoder_for(self, config: RunConfig) -> RowEncoder:
        """The row encoder of a variant's prompt settings (one per distinct setting, cached)."""
        key = (config.prompt.separator, config.prompt.max_text_tokens)
        if key not in self.encoders:
            self.encoders[key] = self.backbone.row_encoder(
                config.prompt.separator, config.prompt.max_text_tokens
            )
        return self.encoders[key]

    def context(self, variant: Variant) -> HeadContext:
        """What ``variant``'s strategy scores with."""
        config = variant.config
        encoder = self.encoder_for(config)
        return HeadContext(
            self.backbone.core,
            encoder,
            config.head,
            config.prompt.style,
            variant.module,
            self.matcher,
            self.backbone.family,
        )

    def pixel_values(self, images: Sequence[Image.Image | torch.Tensor]) -> torch.Tensor:
        """``float[B, 3, H, W]`` on the model's device (:meth:`Backbone.pixel_values`)."""
        return self.backbone.pixel_values(images)

    def activate(self, variant: Variant | None):
        """Context in which the model runs as ``variant`` (``None``: the bare base); hold :attr:`lock`."""
        return self.adapters.activate(None if variant is None else variant.adapter)

    @torch.no_grad()
    def predict_chunk(self, images, questions, options, names) -> list[dict[str, VariantPrediction]]:
        """:meth:`predict_batch` for at most ``batch_size`` cleaned examples and validated ``names``."""
        with self.lock:
            pixels = self.pixel_values(images)
            shared = [n for n in names if not self.variants[n].config.lora.vision]
            start = time.perf_counter()
            features = None
            if shared:
                # The frozen tower: identical features for every variant, computed once. Adapters are
                # switched off only if some variant adapts the tower (switching costs ~17 ms a call).
                with self.activate(None) if self.adapters.adapts_tower() else nullcontext():
                    features = self.backbone.family.image_features(self.backbone.core, pixels)
            vision_seconds = (time.perf_counter() - start) / max(len(shared), 1)
            results: list[dict[str, VariantPrediction]] = [{} for _ in images]
            for name in names:
                variant = self.variants[name]
                start = time.perf_counter()
                with self.activate(variant):
                    own = variant.config.lora.vision
                    variant_features = (
                        self.backbone.family.image_features(self.backbone.core, pixels) if own else features
                    )
                    out = variant.strategy.scores(self.context(variant), questions, options, variant_features)
                    predictions = self.package(name, out, options)
                # Each example's share of the batch time, plus its share of the shared vision pass.
                seconds = (time.perf_counter() - start + (0.0 if own else vision_seconds)) / len(images)
                for result, prediction in zip(results, predictions):
                    prediction.seconds = seconds
                    result[name] = prediction
            return results

    def package(self, name: str, out: HeadScores, options: list[list[str]]) -> list[VariantPrediction]:
        """One :class:`VariantPrediction` per example from a strategy's batch scores."""
        encoder = self.encoder_for(self.variants[name].config)
        image_token = encoder.image_token_id if encoder.image_seq_length else None
        predictions = []
        for b, opts in enumerate(options):
            option_scores = out.scores[b, : len(opts)]
            choice = int(np.argmax(option_scores))
            attention = None
            if out.pooling is not None:
                ids, weights = out.pooling.row(b, choice)
                attention = attention_map(
                    ids,
                    weights,
                    image_token,
                    self.backbone.tokenizer,
                    out.pooling.label,
                    self.backbone.family.pooled_states,
                )
            predictions.append(
                VariantPrediction(
                    name,
                    option_scores,
                    softmax_np(option_scores / out.temperature),
                    choice,
                    cond_gen=out.cond_gen[b] if out.cond_gen is not None else None,
                    attention=attention,
                    truncated=out.truncated[b],
                    note=out.notes[b] if out.notes is not None else None,
                )
            )
        return predictions
