"""Run the frozen vision tower once, then the (LoRA-adapted) language model on encoded rows.

The image features are computed once per image and handed to the language model (through
``mm_encoder_outputs`` for the decoder families), so every variant and every option row of a call
reuses them. Product code that holds a backbone calls its family (``backbone.family``) directly; these
functions are for callers that hold only the model (tests, benchmarks) and look the family up from
``core.config`` (:func:`~vqa_demo.model.families.registry.family_for`).
"""

from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vqa_demo.model.encoding import EncodedRows
from vqa_demo.model.families.registry import family_for


def image_features(core, pixel_values: torch.Tensor, grad: bool = False) -> torch.Tensor:
    """Projected image features ``float[B, N, D]`` for ``pixel_values float[B, 3, H, W]``.

    Without ``grad`` (the frozen-tower case) no graph is kept: the features are constants.
    """
    return family_for(core.config).image_features(core, pixel_values, grad=grad)


def as_encoder_outputs(features: torch.Tensor) -> dict[str, BaseModelOutputWithPooling]:
    """``features float[B, N, D]`` in the form ``mm_encoder_outputs`` takes."""
    return {"image": BaseModelOutputWithPooling(pooler_output=features)}


def prefix_forward(
    core,
    rows: EncodedRows,
    features: torch.Tensor,
    use_cache: bool = False,
    position_ids: torch.Tensor | None = None,
):
    """Language-model pass over rows; ``features float[R, N, D]`` holds each row's image features.

    ``position_ids`` are needed for left-padded rows (the family's
    :meth:`~vqa_demo.model.family.BackboneFamily.prefix_positions`); by default positions count from
    the first column, right for right-padded rows. Returns the model output:
    ``last_hidden_state float[R, T, D]`` (after the final norm) and, with ``use_cache``, ``cache``.
    """
    family = family_for(core.config)
    return family.language_forward(core, rows, features, use_cache=use_cache, position_ids=position_ids)


# Rows x tokens^2 per prefix forward: what bounds a micro-batch on a GPU (attention memory).
TOKEN_BUDGET = 2_000_000
# Bytes of the MLP's activations in a CPU micro-batch (rows x tokens x its width, fp32). glibc serves
# blocks up to 32 MB from its heap and maps larger ones afresh, so every temporary above it
# page-faults on each use: at 3B widths SWAG's four 269-token rows in one forward spent a third of
# their CPU time in the kernel; bounded (three rows, then one), almost none.
ACTIVATION_BYTES = 32 << 20
# Bytes of eager attention's fp32 scores in a CPU micro-batch (rows x heads x tokens x tokens; Gemma 2's
# soft-capping rules out fused attention). Each layer makes several temporaries of that size (scores,
# capped, softmax), so they are bounded lower: on the shipped default at about 260 prompt tokens,
# SWAG's 64 rows ran fastest 7 to 10 rows (12-17 MB) at a time; 19-21 rows (32-36 MB) were no faster
# than one forward (benchmarks/serving.py measures the bounds against one forward).
SCORE_BYTES = 16 << 20


def row_slices(
    num_rows: int,
    row_tokens: int,
    token_budget: int | None = None,
    width: int | None = None,
    heads: int | None = None,
) -> list[slice]:
    """Consecutive micro-batches of ``num_rows`` rows of ``row_tokens`` tokens each: at most
    ``token_budget`` (default :data:`TOKEN_BUDGET`) rows x tokens^2; given the model's MLP size
    ``width``, at most :data:`ACTIVATION_BYTES` of fp32 activations ``[rows, tokens, width]``; given
    (eager attention) its number of query ``heads``, at most :data:`SCORE_BYTES` of fp32 scores
    ``[rows, heads, tokens, tokens]``. One row at least."""
    tokens = max(1, row_tokens)
    per_batch = (token_budget or TOKEN_BUDGET) // tokens**2
    if width:
        per_batch = min(per_batch, ACTIVATION_BYTES // (4 * tokens * width))
    if heads:
        per_batch = min(per_batch, SCORE_BYTES // (4 * heads * tokens**2))
    per_batch = max(1, per_batch)
    return [slice(start, min(start + per_batch, num_rows)) for start in range(0, num_rows, per_batch)]


def cpu_bounds(core) -> dict[str, int | None]:
    """:func:`row_slices`' activation bounds for ``core``'s language model on the CPU: its MLP
    ``width`` and, if its attention is eager (scores materialised), its query ``heads``. Scores are
    counted over the rows' tokens: where attention also spans image patches outside them (ViLT) or
    cross-attends to them (BLIP), a micro-batch holds more than that."""
    text = core.config.get_text_config()
    eager = getattr(text, "_attn_implementation", None) == "eager"
    return {
        "width": getattr(text, "intermediate_size", None),
        "heads": getattr(text, "num_attention_heads", None) if eager else None,
    }


def lm_logits(core, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits ``float[..., V]`` with final soft-capping (Gemma 2), as the model's forward applies it."""
    return family_for(core.config).lm_logits(core, hidden)
