"""Build a :class:`~vqa_demo.predictor.Predictor` from a base model and variant checkpoint directories."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from vqa_demo.checkpoints import CheckpointError, load_variants, read_run_config, resolve_base
from vqa_demo.config import BackboneConfig, family_preset_for, preset_for
from vqa_demo.model.backbone import Backbone, load_backbone
from vqa_demo.model.base_checks import check_family
from vqa_demo.model.families.registry import tiny_family
from vqa_demo.model.matching import DEFAULT_SENTENCE_MODEL, SentenceMatcher
from vqa_demo.model.precision import apply_precision, resolve_device, resolve_precision
from vqa_demo.model.streaming import stream_backbone, streams
from vqa_demo.predictor import Predictor
from vqa_demo.run_folders import find_checkpoints
from vqa_demo.runtime import ASSETS_DIR, DEFAULT_BASE, DEFAULT_CHECKPOINTS  # noqa: F401 (re-exported)


def recorded_family(checkpoint: Path) -> str | None:
    """The family the checkpoint's run config names as its base (a tiny stand-in or a preset), else None
    (a base folder or hub id: the base fingerprint checks those)."""
    try:
        source = read_run_config(checkpoint).backbone.source
    except CheckpointError:
        return None  # load_variants lists this variant with its reason
    family = tiny_family(source)
    if family is not None:
        return family.name
    preset = family_preset_for(source)
    if preset is not None:
        return preset.family
    return "paligemma" if preset_for(source) else None


def load_base(
    source: str, device: str = "auto", precision: str | None = None
) -> tuple[Backbone, dict | None]:
    """The base model in serving ``precision`` (None: as loaded, fp32 on CPU and bf16 on CUDA), and
    :func:`~vqa_demo.model.precision.apply_precision`'s summary (None without a precision).

    An int8 plan reads a local base one tensor at a time straight into its serving precision
    (:mod:`vqa_demo.model.streaming`: the peak stays near the running memory); other low precisions
    read the weights in bf16 and convert the base module by module, so loading never holds an fp32
    copy of the whole model.
    """
    if precision is None:
        return load_backbone(BackboneConfig(source=source, device=device)), None
    plan = resolve_precision(precision, resolve_device(device))
    if streams(source, plan):
        return stream_backbone(source, plan)
    dtype = "float32" if plan.load_dtype == torch.float32 else "bfloat16"
    backbone = load_backbone(BackboneConfig(source=source, device=device, dtype=dtype))
    serving = apply_precision(backbone.core, plan, backbone.family.vision_modules)
    backbone.dtype = torch.float32 if plan.language == "int8" else plan.load_dtype
    return backbone, serving


def load_predictor(
    checkpoints: Sequence[str | Path] | str | Path = DEFAULT_CHECKPOINTS,
    base: str | Path | None = None,
    device: str = "auto",
    sentence_model: str = DEFAULT_SENTENCE_MODEL,
    batch_size: int = 16,
    skipped: list[tuple[str, str]] | None = None,
    precision: str | None = None,
) -> Predictor:
    """Load the base once and attach every variant found in ``checkpoints`` (dirs or a parent dir).

    A malformed variant raises :class:`CheckpointError`, unless ``skipped`` is a list: then it is
    appended there as ``(directory, reason)`` and left out (at least one variant must load).
    ``precision`` (:mod:`vqa_demo.model.precision`; None: as loaded, fp32 on CPU and bf16 on CUDA)
    converts the base before the adapters attach; the predictor's ``precision`` says what it became.
    """
    roots = [checkpoints] if isinstance(checkpoints, str | Path) else list(checkpoints)
    directories = [d for root in roots for d in find_checkpoints(root)]
    base_source = resolve_base(base, directories[0])
    backbone, serving = load_base(base_source, device, precision)
    check_family(backbone.family.name, recorded_family(directories[0]), base_source)
    variants = load_variants(backbone, directories, skipped=skipped)
    if not variants:
        reasons = "; ".join(reason for _, reason in skipped or [])
        raise CheckpointError(f"none of the variant checkpoints could be loaded: {reasons}")
    predictor = Predictor(backbone, variants, matcher=SentenceMatcher(sentence_model), batch_size=batch_size)
    predictor.precision = serving
    return predictor
