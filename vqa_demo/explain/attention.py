"""Attentive pooling weights of one prompt row, split for display into an image grid and text tokens."""

from __future__ import annotations

import math

import numpy as np
import torch

from vqa_demo.prediction import AttentionMap


def attention_map(
    input_ids: torch.Tensor,
    weights: torch.Tensor,
    image_token_id: int | None,
    tokenizer,
    row: str,
    pooled_states: str | None = None,
) -> AttentionMap:
    """Split pooling weights ``float[T']`` of one row (``input_ids long[T]``) into a patch grid and tokens.

    Image positions are where the row holds ``image_token_id`` (PaliGemma puts them first, chat
    families such as LLaVA or Qwen2.5-VL in the middle of the template), plus any positions past the
    row's ids (ViLT appends its image patches to the text); ``None``: the row has no image tokens
    (BLIP pools its question encoder). The image weights form a ``g x g`` grid when their count is a
    square number; the text part leaves out padding. ``row`` names which prompt row it is;
    ``pooled_states`` is the family's :attr:`~vqa_demo.model.family.BackboneFamily.pooled_states`.
    """
    weights = weights.float().cpu().numpy()
    ids = input_ids.cpu().tolist()
    is_image = [image_token_id is not None and tok == image_token_id for tok in ids]
    is_image += [True] * (len(weights) - len(ids))
    image = weights[np.flatnonzero(is_image)] if any(is_image) else np.zeros(0, dtype=weights.dtype)
    real = [i for i, tok in enumerate(ids) if not is_image[i] and tok != tokenizer.pad_token_id]
    side = math.isqrt(len(image))
    return AttentionMap(
        image_grid=image.reshape(side, side) if side and side * side == len(image) else image,
        tokens=[tokenizer.decode([ids[i]]) for i in real],
        token_weights=weights[real],
        image_mass=float(image.sum()),
        row=row,
        pooled_states=pooled_states,
    )
