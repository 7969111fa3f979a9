"""PaliGemma processors and configs of any size, and the tiny random model of either generation.

The processor wraps a byte-level tokenizer (:func:`~vqa_demo.model.tokenizer.tiny_tokenizer` for the
tiny model, the checkpoint's for pretraining) in PaliGemma's own processor class; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses

import torch
from transformers import (
    Gemma2Config,
    GemmaConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedTokenizerFast,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
)

from vqa_demo.config import TINY_IMAGE_SIZE, TINY_PATCH_SIZE, TINY_SIZE
from vqa_demo.model.tokenizer import tiny_tokenizer


def paligemma_processor(
    tokenizer: PreTrainedTokenizerFast, image_size: int, patch_size: int
) -> PaliGemmaProcessor:
    """A PaliGemma processor around ``tokenizer``: SigLIP preprocessing to ``image_size`` px squares
    (mean and std 0.5, as PaliGemma's) and ``(image_size // patch_size) ** 2`` image tokens.

    The processor adds its 1152 ``<locXXXX>``/``<segXXX>`` tokens to the tokenizer, as the real one has.
    """
    if image_size % patch_size:
        raise ValueError(f"image size {image_size} must be a multiple of the patch size {patch_size}")
    image_processor = SiglipImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_processor.image_seq_length = (image_size // patch_size) ** 2
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_processor(
    image_size: int = TINY_IMAGE_SIZE, patch_size: int = TINY_PATCH_SIZE, generation: int = 2
) -> PaliGemmaProcessor:
    """:func:`paligemma_processor` around the small byte-level test tokenizer.

    As on the hub, PaliGemma 1's tokenizer is configured to add ``<bos>`` itself and PaliGemma 2's
    is not; the processor switches it off either way.
    """
    tokenizer = tiny_tokenizer()
    tokenizer.add_bos_token = generation == 1
    return paligemma_processor(tokenizer, image_size, patch_size)


def paligemma_config(
    processor: PaliGemmaProcessor,
    *,
    generation: int = 2,
    image_size: int,
    patch_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    vision_hidden_size: int,
    vision_layers: int,
    vision_heads: int,
    vision_intermediate_size: int,
) -> PaliGemmaConfig:
    """A PaliGemma config sized by the arguments: SigLIP tower + Gemma 2 decoder (``generation=2``,
    alternating sliding-window layers, logit soft-capping) or Gemma decoder (``generation=1``).

    The vocabulary follows the processor's tokenizer, rounded up to a multiple of 64 as the real
    257 152-token PaliGemma vocabulary is.
    """
    tokenizer = processor.tokenizer
    vocab_size = -(-len(tokenizer) // 64) * 64
    head_dim = hidden_size // num_heads
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if generation == 1:
        text_config = GemmaConfig(
            **common, max_position_embeddings=8192, hidden_activation="gelu_pytorch_tanh"
        )
    else:
        text_config = Gemma2Config(
            **common, query_pre_attn_scalar=head_dim, max_position_embeddings=4096, sliding_window=4096
        )
    vision_config = SiglipVisionConfig(
        hidden_size=vision_hidden_size,
        intermediate_size=vision_intermediate_size,
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_heads,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=hidden_size,
        vision_use_head=False,
    )
    config = PaliGemmaConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_id=processor.image_token_id,
        projection_dim=hidden_size,
    )
    config.text_config.model_type = text_config.model_type
    return config


def paligemma2_config(processor: PaliGemmaProcessor, **sizes) -> PaliGemmaConfig:
    """:func:`paligemma_config` of PaliGemma 2 (Gemma 2 decoder)."""
    return paligemma_config(processor, generation=2, **sizes)


def tiny_paligemma(
    seed: int = 0, image_size: int = TINY_IMAGE_SIZE, patch_size: int = TINY_PATCH_SIZE, generation: int = 2
) -> tuple[PaliGemmaForConditionalGeneration, PaliGemmaProcessor]:
    """A random model of PaliGemma ``generation``'s structure, sized :data:`~vqa_demo.config.TINY_SIZE`.

    PaliGemma 1 has multi-query attention (one key/value head), PaliGemma 2 grouped queries.
    """
    processor = tiny_processor(image_size, patch_size, generation)
    size = dataclasses.replace(TINY_SIZE, num_kv_heads=1) if generation == 1 else TINY_SIZE
    config = paligemma_config(
        processor,
        generation=generation,
        image_size=image_size,
        patch_size=patch_size,
        **dataclasses.asdict(size),
    )
    torch.manual_seed(seed)
    return PaliGemmaForConditionalGeneration(config).eval(), processor
