"""One micro-batch of training: the module DDP wraps, its cached inputs, forward and backward.

Under several processes each runs :func:`train_micro_batch` on its share of a global micro-batch
(:func:`training.distributed.rank_indices`). Accumulation is token-exact: before the first backward of
an optimizer step, :func:`plan_step` counts the loss terms (gold answer tokens for COND_GEN,
examples for the classifier heads) of all the step's micro-batches on all processes, by tokenization
alone (transformers' ``num_items_in_batch``); every micro-batch's summed loss is divided by that one
count, so the accumulated, averaged gradient is that of the whole global batch's mean loss, however
its terms fall into micro-batches and processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from training.distributed import MicroBatch, rank_indices
from vqa_demo.config import RunConfig
from vqa_demo.data.splits import MCSplit
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.strategies import variant_loss_count, variant_loss_terms


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class VariantModule(nn.Module):
    """LoRA-adapted PaliGemma + head as one module, so accelerate/DDP see every trainable parameter.

    ``forward(inputs, questions, options, answers) -> (loss_sum, terms)``, where ``inputs`` are image
    features ``float[B,N,D]``, or pixels ``float[B,3,H,W]`` when the vision tower trains too.
    """

    def __init__(self, backbone, head: nn.Module | None, run_config: RunConfig, encoder: RowEncoder):
        super().__init__()
        self.model = backbone.model
        self.head = head
        self.backbone = backbone
        self.run_config = run_config
        self.encoder = encoder

    def context(self) -> HeadContext:
        cfg = self.run_config
        backbone = self.backbone
        return HeadContext(
            backbone.core, self.encoder, cfg.head, cfg.prompt.style, self.head, family=backbone.family
        )

    def forward(self, inputs, questions, options, answers, label_smoothing: float = 0.0):
        """``(summed loss, number of terms)``, see :func:`~vqa_demo.model.strategies.variant_loss_terms`."""
        features = (
            self.backbone.family.image_features(self.backbone.core, inputs, grad=True)
            if self.run_config.lora.vision
            else inputs
        )
        return variant_loss_terms(self.context(), questions, options, answers, features, label_smoothing)


class FeatureCache:
    """Per-example model inputs of a split, computed once.

    With a frozen tower these are the image features ``float[N, D]`` (they never change, so the
    tower runs once per image for the whole run); with ``--train-vision`` they are the pixel values,
    and the tower runs inside the module's forward with gradients.
    """

    def __init__(
        self, backbone, split: MCSplit, enabled: bool, pixels_only: bool = False, batch_size: int = 32
    ):
        self.backbone, self.split, self.enabled, self.pixels_only = backbone, split, enabled, pixels_only
        self.store: dict[int, torch.Tensor] = {}
        self.batch_size = batch_size

    def get(self, indices: list[int]) -> torch.Tensor:
        """``float[B, N, D]`` features (or ``float[B, 3, H, W]`` pixels) for the examples at ``indices``."""
        missing = [i for i in indices if i not in self.store]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            images = [self.split[i].load_image() for i in chunk]
            pixels = self.backbone.pixel_values(images)
            values = (
                pixels
                if self.pixels_only
                else self.backbone.family.image_features(self.backbone.core, pixels)
            )
            for i, value in zip(chunk, values):
                self.store[i] = value
        out = torch.stack([self.store[i] for i in indices])
        if not self.enabled:
            self.store.clear()
        return out


@dataclass(frozen=True)
class StepPlan:
    """One optimizer step: this process's micro-batches, and the loss terms of all of them on all
    processes (gold answer tokens for COND_GEN, examples otherwise)."""

    batches: list[MicroBatch]
    terms: float


def plan_step(cfg, accelerator, module: VariantModule, split: MCSplit, micro_index: int) -> StepPlan:
    """The step whose first global micro-batch is ``micro_index``: its ``cfg.grad_accum`` micro-batches
    (:func:`~training.distributed.rank_indices`) and their global term count, from tokenization alone."""
    ctx = module.context()
    batches, local = [], 0.0
    for index in range(micro_index, micro_index + cfg.grad_accum):
        batch = rank_indices(
            len(split), cfg.seed, index, cfg.batch_size, accelerator.num_processes, accelerator.process_index
        )
        examples = [split[i] for i in batch.indices]
        questions, options = [ex.question for ex in examples], [list(ex.options) for ex in examples]
        local += batch.weight * variant_loss_count(
            ctx, questions, options, [ex.answer_index for ex in examples]
        )
        batches.append(batch)
    total = accelerator.reduce(torch.tensor([local], dtype=torch.float64, device=accelerator.device), "sum")
    return StepPlan(batches, float(total.cpu()[0]))


def train_micro_batch(cfg, accelerator, module, optimizer, features, split, batch, step, step_terms) -> float:
    """Forward and backward of this process's share of one micro-batch; returns the summed loss of the
    whole global micro-batch (all processes).

    ``step_terms`` is the optimizer step's global term count (:attr:`StepPlan.terms`). The summed loss
    is divided by it and multiplied by the accumulation steps and the process count, which accelerate
    (``backward``) and DDP (the gradient average) divide out again.
    """
    examples = [split[i] for i in batch.indices]
    with accelerator.accumulate(module):
        total, _ = module(
            features.get(batch.indices),
            [ex.question for ex in examples],
            [list(ex.options) for ex in examples],
            [ex.answer_index for ex in examples],
            cfg.label_smoothing,
        )
        total = total * batch.weight
        local = torch.tensor([total.item()], dtype=torch.float64)
        summed = float(accelerator.reduce(local.to(accelerator.device), reduction="sum").cpu()[0])
        if not math.isfinite(summed):
            raise NonFiniteLossError(
                f"the loss became {summed} at step {step + 1} (epoch {batch.epoch}); lower --lr "
                f"(now {cfg.lr}) or add --label-smoothing, then restart or --resume from the last good state"
            )
        scale = accelerator.num_processes * accelerator.gradient_accumulation_steps / step_terms
        accelerator.backward(total * scale)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    return summed
