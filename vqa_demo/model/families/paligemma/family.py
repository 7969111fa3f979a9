"""PaliGemma 1 and 2 behind the backbone family interface (:mod:`vqa_demo.model.family`); the primary family.

Rows are laid out as ``PaliGemmaProcessor`` does (``[<image> x N] <bos> prompt \\n | suffix <eos>``,
prefix-LM attention from ``token_type_ids``; :class:`~vqa_demo.model.encoding.RowEncoder`); positions
are 1-based. The builders (:mod:`vqa_demo.model.families.paligemma.tiny`) make a random model of either
generation's structure in-process: PaliGemma 1 (Gemma decoder, multi-query attention) or PaliGemma 2
(Gemma 2, sliding-window layers).
"""

from __future__ import annotations

import torch
from transformers import PaliGemmaForConditionalGeneration

from vqa_demo.config import TINY_GENERATIONS
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.families.paligemma.tiny import tiny_paligemma
from vqa_demo.model.family import DECODER_LINEARS, BackboneFamily, check_scope

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
    tiny_builder = staticmethod(tiny_paligemma)

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


PALIGEMMA = PaliGemmaFamily()
