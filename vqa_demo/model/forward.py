"""Run the frozen vision tower once, then the (LoRA-adapted) language model on encoded rows.

The image features are computed once per image and handed to the language model through
``mm_encoder_outputs``, so every variant and every option row of a call reuses them.
"""

from __future__ import annotations

import torch
from transformers import PaliGemmaForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vqa_demo.model.encoding import EncodedRows


def image_features(
    core: PaliGemmaForConditionalGeneration, pixel_values: torch.Tensor, grad: bool = False
) -> torch.Tensor:
    """Projected image features ``float[B, N, D]`` for ``pixel_values float[B, 3, H, W]``.

    Without ``grad`` (the frozen-tower case) no graph is kept: the features are constants.
    """
    with torch.set_grad_enabled(grad):
        return core.model.get_image_features(pixel_values.to(core.dtype)).pooler_output


def as_encoder_outputs(features: torch.Tensor) -> dict[str, BaseModelOutputWithPooling]:
    return {"image": BaseModelOutputWithPooling(pooler_output=features)}


def prefix_forward(
    core: PaliGemmaForConditionalGeneration,
    rows: EncodedRows,
    features: torch.Tensor,
    use_cache: bool = False,
    position_ids: torch.Tensor | None = None,
):
    """Language-model pass over rows; ``features float[R, N, D]`` holds each row's image features.

    ``position_ids long[R, T]`` (1-based) are needed for left-padded rows; by default positions
    count from the first column, right for right-padded rows. Returns the ``PaliGemmaModel`` output:
    ``last_hidden_state float[R, T, D]`` (after the final norm) and, with ``use_cache``, ``cache``.
    """
    return core.model(
        input_ids=rows.input_ids,
        attention_mask=rows.attention_mask,
        token_type_ids=rows.token_type_ids,
        position_ids=position_ids,
        mm_encoder_outputs=as_encoder_outputs(features),
        use_cache=use_cache,
    )


def lm_logits(core: PaliGemmaForConditionalGeneration, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits ``float[..., V]`` with Gemma 2's final soft-capping, as the model's forward applies it."""
    logits = core.lm_head(hidden).float()
    cap = getattr(core.config.get_text_config(), "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits
