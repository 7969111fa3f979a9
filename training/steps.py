"""One micro-batch of training: the module DDP wraps, its cached inputs, forward and backward.

Under several processes each runs :func:`train_micro_batch` on its share of a global micro-batch
(:func:`training.distributed.rank_indices`); the loss it backpropagates makes the averaged gradient
that of the whole micro-batch's mean loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vqa_demo.config import RunConfig
from vqa_demo.data.splits import MCSplit
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.forward import image_features
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.strategies import variant_loss_terms


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

    def forward(self, inputs, questions, options, answers, label_smoothing: float = 0.0):
        """``(summed loss, number of terms)``, see :func:`~vqa_demo.model.strategies.variant_loss_terms`."""
        cfg = self.run_config
        features = image_features(self.backbone.core, inputs, grad=True) if cfg.lora.vision else inputs
        ctx = HeadContext(self.backbone.core, self.encoder, cfg.head, cfg.prompt.style, self.head)
        return variant_loss_terms(ctx, questions, options, answers, features, label_smoothing)


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
            values = pixels if self.pixels_only else image_features(self.backbone.core, pixels)
            for i, value in zip(chunk, values):
                self.store[i] = value
        out = torch.stack([self.store[i] for i in indices])
        if not self.enabled:
            self.store.clear()
        return out


def train_micro_batch(cfg, accelerator, module, optimizer, features, split, batch, step) -> float:
    """Forward and backward of this process's share of one micro-batch; returns the global mean loss.

    Each process's summed loss is divided by the terms of the whole micro-batch and multiplied by the
    process count (DDP averages gradients), so the gradient is that of the global mean.
    """
    examples = [split[i] for i in batch.indices]
    with accelerator.accumulate(module):
        total, terms = module(
            features.get(batch.indices),
            [ex.question for ex in examples],
            [list(ex.options) for ex in examples],
            [ex.answer_index for ex in examples],
            cfg.label_smoothing,
        )
        total = total * batch.weight
        local = torch.tensor([total.item(), terms * batch.weight], dtype=torch.float64)
        summed = accelerator.reduce(local.to(accelerator.device), reduction="sum").cpu()
        loss = float(summed[0] / summed[1])
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss became {loss} at step {step + 1} (epoch {batch.epoch}); lower --lr "
                f"(now {cfg.lr}) or add --label-smoothing, then restart or --resume from the last good state"
            )
        accelerator.backward(total * (accelerator.num_processes / float(summed[1])))
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    return loss
