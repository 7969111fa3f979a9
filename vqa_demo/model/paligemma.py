"""PaliGemma 1 and 2 behind the backbone family interface (:mod:`vqa_demo.model.family`).

Rows are laid out as ``PaliGemmaProcessor`` does (``[<image> x N] <bos> prompt \\n | suffix <eos>``,
prefix-LM attention from ``token_type_ids``; :class:`~vqa_demo.model.encoding.RowEncoder`); positions
are 1-based. The tiny builders make a random model of either generation's structure in-process:
PaliGemma 1 (Gemma decoder, multi-query attention) or PaliGemma 2 (Gemma 2, sliding-window layers).
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

from vqa_demo.config import TINY_GENERATIONS, TINY_IMAGE_SIZE, TINY_PATCH_SIZE, TINY_SIZE
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.family import DECODER_LINEARS, BackboneFamily, check_scope, register
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


VISION_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def lora_target_regex(targets: tuple[str, ...], vision: bool = False) -> str:
    """Match the targets inside the language model only (SigLIP also has q_proj/k_proj/... layers);
    with ``vision``, also SigLIP's attention/MLP linears and the projector."""
    language = r".*language_model.*\.(" + "|".join(targets) + r")"
    if not vision:
        return language + "$"
    tower = r".*vision_tower.*\.(" + "|".join(VISION_LORA_TARGETS) + r")"
    return rf"({language}|{tower}|.*multi_modal_projector\.linear)$"


class PaliGemmaFamily(BackboneFamily):
    """PaliGemma 1 and 2: SigLIP features scattered at ``<image>``, a Gemma / Gemma 2 decoder."""

    name = "paligemma"
    title = "PaliGemma"
    model_types = ("paligemma",)
    model_class = PaliGemmaForConditionalGeneration
    tiny_sources = tuple(TINY_GENERATIONS)

    def describe(self, config: dict) -> str:
        """``PaliGemma 2`` on a Gemma 2 decoder, ``PaliGemma`` (generation 1) on Gemma."""
        text_type = (config.get("text_config") or {}).get("model_type")
        return "PaliGemma 2" if text_type == "gemma2" else "PaliGemma"

    def build_tiny(self, source: str, seed: int = 0):
        return tiny_paligemma(seed=seed, generation=TINY_GENERATIONS[source])

    def row_encoder(self, processor, separator: str = "\n", max_text_tokens: int = 192) -> RowEncoder:
        return RowEncoder(
            processor.tokenizer,
            processor.image_token_id,
            self.image_seq_length(processor),
            separator=separator,
            max_text_tokens=max_text_tokens,
        )

    def prefix_positions(self, rows, features) -> torch.Tensor:
        # PaliGemma positions are 1-based; left pads get 0 and are masked out everywhere.
        return rows.attention_mask.cumsum(dim=1)

    def lora_targets(self, scope: str, names: tuple[str, ...] = DECODER_LINEARS) -> dict:
        """``language``: the Gemma decoder's linears; ``all-linear``: also SigLIP's and the projector."""
        check_scope(scope)
        return {"target_modules": lora_target_regex(tuple(names), vision=scope == "all-linear")}


PALIGEMMA = register(PaliGemmaFamily())
