"""Models and inputs the benchmarks time: the shipped default, or in-process stand-ins of known size.

- ``load_assets_predictor``: the offline default (``assets/base`` + ``assets/checkpoints``) when it exists.
- ``build_predictor("tiny")``: the tests' five-variant predictor (``vqa_demo.testing``; hidden 32, 16 image tokens).
- ``build_predictor("default")``: a random stand-in with the architecture of the small default model
  (``training/pretrain.py``'s defaults: hidden 256, 4 layers, 144 image tokens at 96 px), used while
  ``assets/`` is empty. Its speed is the default model's; its answers are random.

Every stand-in variant gets a random LoRA adapter (non-zero B) and a random head, so adapters really
switch and scores really differ between variants.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from vqa_demo.config import TINY_IMAGE_SIZE, TINY_PATCH_SIZE, TINY_SIZE, LoraSettings
from vqa_demo.loading import DEFAULT_BASE, DEFAULT_CHECKPOINTS
from vqa_demo.model.backbone import Backbone
from vqa_demo.model.families.paligemma.tiny import paligemma2_config, paligemma_processor, tiny_processor
from vqa_demo.predictor import Predictor
from vqa_demo.testing import make_tiny_predictor, random_variant_predictor


def size_of(size: str) -> tuple[dict[str, int], int | None]:
    """``(paligemma2_config keyword arguments, BPE vocabulary size)`` of a stand-in size: "tiny" is
    ``vqa_demo.config.TINY_SIZE`` (its tokenizer is fixed: no vocabulary size), "default" the
    pretraining defaults of ``training/pretrain.py`` (144 image tokens at 96 px / patch 8)."""
    if size == "tiny":
        dims = {"image_size": TINY_IMAGE_SIZE, "patch_size": TINY_PATCH_SIZE}
        return {**dims, **dataclasses.asdict(TINY_SIZE)}, None
    from training.pretrain import PretrainConfig

    config = PretrainConfig(out=Path("."))
    dims = {"image_size": config.image_size, "patch_size": config.patch_size}
    return {**dims, **dataclasses.asdict(config.size)}, config.vocab_size


def stand_in_processor(size: str):
    """The tiny test processor, or for "default" a byte-level BPE trained on the synthetic data's text
    (plus the processor's 1152 ``<loc>``/``<seg>`` tokens, as the pretraining script builds it)."""
    dims, vocab = size_of(size)
    if size == "tiny":
        return tiny_processor(dims["image_size"], dims["patch_size"])
    from training.pretrain_data import synthetic_texts
    from vqa_demo.model.tokenizer import train_byte_level_tokenizer

    tokenizer = train_byte_level_tokenizer(synthetic_texts(300, seed=0), vocab_size=vocab)
    return paligemma_processor(tokenizer, dims["image_size"], dims["patch_size"])


def build_backbone(size: str = "tiny", seed: int = 0) -> Backbone:
    """A random PaliGemma 2-structured backbone of a stand-in size."""
    from transformers import PaliGemmaForConditionalGeneration

    processor = stand_in_processor(size)
    config = paligemma2_config(processor, **size_of(size)[0])
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    return Backbone(model, processor, f"stand-in:{size}", torch.device("cpu"), torch.float32)


def build_predictor(size: str = "tiny", seed: int = 0, matcher=None, batch_size: int = 16) -> Predictor:
    """A stand-in predictor with all five variants (random LoRA adapters and heads).

    "tiny" is :func:`vqa_demo.testing.make_tiny_predictor`, the one the tests use.
    """
    if size == "tiny":
        return make_tiny_predictor(seed=seed, batch_size=batch_size)
    backbone = build_backbone(size, seed)
    lora = LoraSettings(r=8, alpha=16, dropout=0.0, init_weights=False)
    return random_variant_predictor(
        backbone, seed=seed, lora=lora, max_new_tokens=8, matcher=matcher, batch_size=batch_size
    )


def assets_exist(checkpoints: Path = DEFAULT_CHECKPOINTS, base: Path | None = DEFAULT_BASE) -> bool:
    checkpoints = Path(checkpoints)
    has_variants = (checkpoints / "run_config.json").is_file() or any(checkpoints.glob("*/run_config.json"))
    return has_variants and (base is None or (Path(base) / "config.json").is_file())


def load_assets_predictor(checkpoints: Path, base: Path | None, batch_size: int = 16) -> Predictor:
    from vqa_demo.loading import load_predictor

    return load_predictor(checkpoints, base, device="cpu", batch_size=batch_size)


@dataclass
class Item:
    """One benchmark question: an image, a question and its options (gold 0-based)."""

    image: Image.Image
    question: str
    options: list[str]
    answer: int


def make_items(n: int, image_size: int = 224, seed: int = 0, num_options: int = 4) -> list[Item]:
    """``n`` synthetic diagram questions, families taking turns; extra options beyond 4 are made up."""
    from training.synthetic import FAMILIES, derive_seed, make_mc_item

    items = []
    for i in range(n):
        mc = make_mc_item(FAMILIES[i % len(FAMILIES)], derive_seed(seed, "bench", i), i % 4, image_size)
        options = list(mc.options)
        extra = 0
        while len(options) < num_options:
            extra += 1
            options.append(f"none of the above ({extra})")
        items.append(Item(mc.image, mc.question, options[:num_options], mc.answer - 1))
    return items


def make_split(directory: Path, n: int, image_size: int, seed: int = 0):
    """A labelled synthetic split on disk (the shipped validation split's format), loaded back."""
    from training.synthetic import generate_split
    from vqa_demo.data.splits import load_split

    generate_split(Path(directory), n, seed, "validation", image_size=image_size)
    return load_split(directory, name="validation")
