"""ViLT as a backbone family: one transformer over ``[CLS] text [SEP]`` and the image patches.

Data flow of one call (B examples, R rows)::

    image -> processor (shortest edge S, multiples of the patch) -> canvas float[B, 4, C, C]
             (channels 0-2: the processor's pixels at the top left, channel 3: its pixel mask)
    rows [R, T] + canvas -> model.vilt -> [text T | image CLS | patches] states -> the text part
    float[R, T, D] -> pooling -> head                     (MULTI_CLASS, SWAG)

ViLT's images keep their aspect ratio, so a batch of them is padded with a pixel mask; the canvas
(``C`` = the longest edge the processor can produce) gives every image the same tensor shape, and the
forward crops it to the batch's largest image, which is how the processor pads a batch. Padded
pixels and padded text do not change a row (the test pins it). ViLT has no separate image encoder:
the "image features" are the canvas itself. Text is at most 40 tokens (the position embeddings):
longer prompts are cut, question first, and flagged. The poolings read the text positions, each of
which has attended to every image patch.

COND_GEN is not applicable (no language-model head). ViLT's own VQA classifier is offered as a
zero-training baseline (:mod:`vqa_demo.model.families.vilt.baseline`, :data:`BASELINE_NAME`): it scores an option by its answer logit when the
option is in ``config.label2id`` (3129 VQAv2 answers on the hub), ``-inf`` otherwise, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import ViltForQuestionAnswering
from transformers.modeling_outputs import BaseModelOutput

from vqa_demo.config import BASELINE_HEADS, HeadConfig, RunConfig
from vqa_demo.model.bert_rows import BertRowEncoder, position_limit
from vqa_demo.model.families.vilt.tiny import tiny_vilt
from vqa_demo.model.family import BackboneFamily, PatchGrid, check_scope

# The variant name of ViLT's zero-training answer-classifier baseline in comparisons.
BASELINE_NAME = "vilt-answer-classifier"

LANGUAGE_LORA = (
    r".*vilt\.encoder\.layer\.\d+\."
    r"(attention\.attention\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"
)
# "all-linear" would also wrap the VQA classifier and the pooler, which the baseline reads as trained.
ALL_LINEAR_EXCLUDED = r"(.*\.)?(classifier\.\d+|vilt\.pooler\.dense)"
# ViltImageProcessor's bound on the longer edge, relative to the shorter (its 800 x 1333 rule).
LONGER_PER_SHORTER = 1333 / 800


def canvas_side(processor) -> int:
    """The longest edge the processor can produce: its longer-edge bound, down to a patch multiple."""
    image_processor = processor.image_processor
    longer = int(LONGER_PER_SHORTER * image_processor.size["shortest_edge"])
    return longer // image_processor.size_divisor * image_processor.size_divisor


def vilt_canvas(processor, images) -> torch.Tensor:
    """``float[B, 4, C, C]``: each RGB image through the processor alone, at the top left of a zero
    canvas; channel 3 is the processor's pixel mask (1 on the image)."""
    side = canvas_side(processor)
    canvas = torch.zeros(len(images), 4, side, side)
    for index, image in enumerate(images):
        pixels = processor.image_processor([image.convert("RGB")], return_tensors="pt")["pixel_values"][0]
        height, width = pixels.shape[-2:]
        canvas[index, :3, :height, :width] = pixels
        canvas[index, 3, :height, :width] = 1.0
    return canvas


def cropped(canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixel_values float[R, 3, h, w], pixel_mask long[R, h, w])``, cut to the largest image of the batch."""
    mask = canvas[:, 3] > 0
    if not mask.flatten(1).any(dim=1).all():
        raise ValueError(
            "a ViLT canvas has no image pixels (its mask channel is 0 everywhere): "
            "make it with ViltFamily.preprocess"
        )
    height = int(mask.any(dim=2).sum(dim=1).max())
    width = int(mask.any(dim=1).sum(dim=1).max())
    return canvas[:, :3, :height, :width], mask[:, :height, :width].long()


def joint_forward(core: ViltForQuestionAnswering, rows, features: torch.Tensor, inputs_embeds=None):
    """``model.vilt`` over text rows ``[R, T]`` (or their embeddings ``inputs_embeds float[R, T, D]``)
    and their canvases ``float[R, 4, C, C]``: the full output (``last_hidden_state
    float[R, T + 1 + P, D]``, ``pooler_output float[R, D]``)."""
    pixel_values, pixel_mask = cropped(features)
    return core.vilt(
        input_ids=rows.input_ids if inputs_embeds is None else None,
        inputs_embeds=inputs_embeds,
        attention_mask=rows.attention_mask,
        token_type_ids=rows.token_type_ids,
        pixel_values=pixel_values.to(core.dtype),
        pixel_mask=pixel_mask,
    )


@dataclass
class TextRows:
    """The row tensors :func:`joint_forward` reads besides the ids (``long[R, T]`` each)."""

    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    input_ids: torch.Tensor | None = None


class ViltFamily(BackboneFamily):
    """ViLT (``dandelin/vilt-b32-finetuned-vqa``): MULTI_CLASS and SWAG; COND_GEN not applicable."""

    name = "vilt"
    title = "ViLT"
    model_types = ("vilt",)
    model_class = ViltForQuestionAnswering
    tiny_builder = staticmethod(tiny_vilt)
    tiny_sources = ("tiny:vilt",)
    answer_scorer = None  # no language-model head: COND_GEN is not applicable
    vision_modules = ("embeddings", "pooler", "classifier")  # kept out of 4/8-bit quantization
    pooled_states = (
        "The pooled states are ViLT's text positions: each one attends to every image patch inside "
        "ViLT's one encoder"
    )

    def fit_processor(self, model, processor):
        """The processor with its tokenizer's ``model_max_length`` no longer than the 40 text positions."""
        tokenizer = processor.tokenizer
        tokenizer.model_max_length = position_limit(tokenizer, model.config.max_position_embeddings)
        return processor

    def row_encoder(self, processor, separator: str = "\n", max_text_tokens: int = 192) -> BertRowEncoder:
        tokenizer = processor.tokenizer
        return BertRowEncoder(tokenizer, tokenizer.model_max_length, separator, max_text_tokens)

    def image_seq_length(self, processor) -> int:
        """0: the states the poolings read are the text positions only."""
        return 0

    def pixel_shape(self, processor) -> tuple[int, int, int]:
        side = canvas_side(processor)
        return 4, side, side

    def preprocess(self, processor, images) -> torch.Tensor:
        """The canvases ``float[B, 4, C, C]`` (see :func:`vilt_canvas`)."""
        return vilt_canvas(processor, images)

    def pixel_baseline(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Zero pixels under each canvas's own mask ``float[B, 4, C, C]``: the mask says which pixels
        exist, not their value, so the baseline is the same image size and patch layout at the mean
        colour (a valid ViLT input); along the integrated-gradient path the mask stays exact, so
        its channel gets no attribution and completeness is over the pixels alone."""
        baseline = torch.zeros_like(pixel_values)
        baseline[:, 3] = pixel_values[:, 3]
        return baseline

    def patch_grid(self, core, processor, pixel_values: torch.Tensor) -> PatchGrid:
        """The patches of the processed image on one canvas ``float[4, C, C]``: its mask channel's
        extent in whole patches of ``config.patch_size``; the padded rest of the canvas has none."""
        patch = int(core.config.patch_size)
        mask = pixel_values[3] > 0
        height, width = int(mask.any(dim=1).sum()), int(mask.any(dim=0).sum())
        return PatchGrid(height // patch, width // patch, patch, patch)

    def image_features(self, core, pixel_values: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """The canvases themselves: ViLT embeds its patches inside the joint encoder."""
        return pixel_values

    def language_forward(self, core, rows, features, use_cache=False, position_ids=None):
        """The text positions' states ``last_hidden_state float[R, T, D]`` of the joint encoder."""
        states = joint_forward(core, rows, features).last_hidden_state
        return BaseModelOutput(last_hidden_state=states[:, : rows.input_ids.shape[1]])

    def embeds_forward(self, core, embeds, attention_mask, token_type_ids, features) -> torch.Tensor:
        """The text positions' states ``float[R, T, D]`` from text embeddings ``float[R, T, D]``."""
        rows = TextRows(attention_mask, token_type_ids)
        return joint_forward(core, rows, features, inputs_embeds=embeds).last_hidden_state[
            :, : embeds.shape[1]
        ]

    def baseline_configs(self, source: str) -> dict[str, RunConfig]:
        """ViLT's own VQA classifier as a zero-training variant (:mod:`vqa_demo.model.families.vilt.baseline`)."""
        config = RunConfig(head=HeadConfig(head=BASELINE_HEADS[0], num_options=None))
        config.backbone.source = source
        return {BASELINE_NAME: config}

    def lm_logits(self, core, hidden: torch.Tensor) -> torch.Tensor:
        raise ValueError("ViLT has no language-model head: use a multi_class or swag variant")

    def lora_targets(self, scope: str, names=()) -> dict:
        check_scope(scope)
        if scope == "language":
            return {"target_modules": LANGUAGE_LORA}
        return {"target_modules": "all-linear", "exclude_modules": ALL_LINEAR_EXCLUDED}

    def frozen_modules(self, core) -> list[nn.Module]:
        """The patch embedding (ViLT's only image-specific weights)."""
        return [core.vilt.embeddings.patch_embeddings]

    def hidden_size(self, core) -> int:
        return int(core.config.hidden_size)


VILT = ViltFamily()
