"""Tiny bases and variant checkpoints written to disk, for the hostile-file tests (corrupted bases,
chat templates, CSV cells) that go through the real loaders and CLIs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vqa_demo.checkpoints import save_variant
from vqa_demo.model.backbone import build_tiny_backbone, save_backbone
from vqa_demo.testing import random_variant_predictor

ROOT = Path(__file__).resolve().parent.parent


def write_tiny_base(folder: Path, source: str = "tiny:paligemma", variant: str | None = None) -> Path:
    """``folder/base`` (safetensors + processor) of the tiny ``source`` model and, with ``variant``,
    ``folder/checkpoints/<variant>`` trained (randomly) on it; returns ``folder``."""
    backbone = build_tiny_backbone(seed=0, source=source)
    save_backbone(backbone, folder / "base")
    if variant is not None:
        predictor = random_variant_predictor(backbone, [variant], seed=0)
        trained = predictor.variants[variant]
        save_variant(
            folder / "checkpoints" / variant,
            trained.config,
            predictor.backbone,
            trained.module,
            trained.adapter,
        )
    return folder


def run_module(module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m module args`` from the checkout, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
