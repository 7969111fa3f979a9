"""Poolings and the classifier heads that sit on PaliGemma's final hidden states.

Contracts:
- a pooling maps ``(hidden float[B,T,D], mask bool[B,T])`` to ``(pooled float[B,D], weights float[B,T] | None)``;
- MULTI_CLASS maps pooled ``float[B,D]`` to ``float[B,K]``;
- SWAG maps ``float[B*K,D]`` rows to one logit each, reshaped to ``float[B,K]`` like ``BertForMultipleChoice``.
COND_GEN has no head of its own: it scores options with the language-model head (see cond_gen.py).
Which head a variant gets is its strategy's ``build_head`` (:mod:`vqa_demo.model.strategies`).
"""

from __future__ import annotations

import torch
from torch import nn


def last_real_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last True position per row of ``mask bool[B,T]`` -> ``long[B]``.

    Correct for left and right padding alike; ``hidden[:, -1]`` would pick a pad under right padding.
    """
    assert mask.any(dim=1).all(), "every row needs at least one real token"
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, -1).max(dim=1).values


def freeze_shift_bias(layer: nn.Linear) -> None:
    """Zero and freeze the bias of a layer whose outputs only meet a softmax over them (attentive
    pooling over positions, SWAG over options): it shifts them all alike, so its true gradient is 0,
    and Adam would turn float noise in it into steps of up to the learning rate. The parameter stays,
    out of the optimizer, so checkpoints written when it trained load unchanged with their value."""
    nn.init.zeros_(layer.bias)
    layer.bias.requires_grad_(False)


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` an optimizer should update (frozen shift biases left out)."""
    return [p for p in module.parameters() if p.requires_grad]


class LastTokenPooling(nn.Module):
    """The hidden state of the last real token (it has attended to the whole prefix bidirectionally)."""

    def __init__(self, hidden_size: int):
        super().__init__()

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, None]:
        index = last_real_index(mask)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), index], None


class AttentivePooling(nn.Module):
    """Single-query attention pooling: a linear score per position, masked softmax, weighted sum.

    The weights over image positions reshape to the patch grid (a saliency map) and over text positions
    highlight tokens. The scorer starts at zero, so training starts from mean pooling. Its bias adds the
    same number to every position, which the softmax cancels: it is frozen (see :func:`freeze_shift_bias`).
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.score.weight)
        freeze_shift_bias(self.score)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The head stays fp32 when the base is served in bf16 (vqa_demo.model.precision).
        logits = self.score(hidden.to(self.score.weight.dtype)).squeeze(-1).float()  # [B, T]
        logits = logits.masked_fill(~mask.bool(), float("-inf"))
        weights = torch.softmax(logits, dim=-1)  # [B, T], exactly 0 on padding
        pooled = torch.einsum("bt,btd->bd", weights.to(hidden.dtype), hidden)
        return pooled, weights


POOLINGS: dict[str, type[nn.Module]] = {"last_token": LastTokenPooling, "attentive": AttentivePooling}


class MultiClassHead(nn.Module):
    """K-way classifier on the pooled state of the single lettered prompt row."""

    def __init__(self, hidden_size: int, pooling: str, num_options: int):
        super().__init__()
        self.pooling = POOLINGS[pooling](hidden_size)
        self.classifier = nn.Linear(hidden_size, num_options)
        self.num_options = num_options

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor, num_options: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hidden float[B,T,D]``, ``mask bool[B,T]`` -> ``(scores float[B,K], weights float[B,T] | None)``."""
        if num_options != self.num_options:
            raise ValueError(
                f"this multi_class head was trained for {self.num_options} options, got {num_options}; "
                "use cond_gen or swag for a different number of options"
            )
        pooled, weights = self.pooling(hidden, mask)
        return self.classifier(pooled.to(self.classifier.weight.dtype)), weights


class SwagHead(nn.Module):
    """One logit per (question, option) row; rows are reshaped to ``[B, K]``. The scorer's bias adds
    the same number to every option's logit, so it is frozen (:func:`freeze_shift_bias`)."""

    def __init__(self, hidden_size: int, pooling: str):
        super().__init__()
        self.pooling = POOLINGS[pooling](hidden_size)
        self.scorer = nn.Linear(hidden_size, 1)
        freeze_shift_bias(self.scorer)

    def row_scores(
        self, hidden: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One logit per row: ``hidden float[R,T,D]``, ``mask bool[R,T]`` -> ``(float[R], weights float[R,T] | None)``."""
        pooled, weights = self.pooling(hidden, mask)
        return self.scorer(pooled.to(self.scorer.weight.dtype)).squeeze(-1), weights

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor, num_options: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hidden float[B*K,T,D]``, ``mask bool[B*K,T]`` -> ``(scores float[B,K], weights float[B*K,T] | None)``.

        Row ``b*K + k`` holds option ``k`` of example ``b``, as in ``BertForMultipleChoice``.
        """
        logits, weights = self.row_scores(hidden, mask)
        return logits.view(-1, num_options), weights
