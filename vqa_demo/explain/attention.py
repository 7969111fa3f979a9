"""Attentive pooling weights of one prompt row, split for display into an image grid and text tokens."""

from __future__ import annotations

import torch

from vqa_demo.prediction import AttentionMap


def attention_map(
    input_ids: torch.Tensor, weights: torch.Tensor, image_seq_length: int, tokenizer, row: str
) -> AttentionMap:
    """Split pooling weights ``float[T]`` of one row (``input_ids long[T]``) into a patch grid and tokens.

    The first ``image_seq_length`` positions are image patches (a ``g x g`` grid when that is a
    square number); the text part leaves out padding. ``row`` names which prompt row it is.
    """
    side = int(round(image_seq_length**0.5))
    weights = weights.float().cpu().numpy()
    ids = input_ids.cpu().tolist()
    real = [i for i, tok in enumerate(ids) if i >= image_seq_length and tok != tokenizer.pad_token_id]
    image = weights[:image_seq_length]
    return AttentionMap(
        image_grid=image.reshape(side, side) if side * side == image_seq_length else image,
        tokens=[tokenizer.decode([ids[i]]) for i in real],
        token_weights=weights[real],
        image_mass=float(image.sum()),
        row=row,
    )
