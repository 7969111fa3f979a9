"""The option-score grid every head ends in, and the K-way loss over it.

Every strategy (:mod:`vqa_demo.model.strategies`) ends in ``scores float[B, K]``: the choice is always
``argmax`` over options. Options of examples with fewer than K options are padded and scored ``-inf``.
"""

from __future__ import annotations

import torch
from torch import nn


def pad_options(options: list[list[str]]) -> tuple[list[list[str]], torch.Tensor]:
    """Pad option lists to a common K with empty strings: ``(padded, valid bool[B, K])``."""
    num_options = max(len(o) for o in options)
    padded = [list(o) + [""] * (num_options - len(o)) for o in options]
    valid = torch.tensor([[k < len(o) for k in range(num_options)] for o in options])
    return padded, valid


def option_grid(values: torch.Tensor, options: list[list[str]]) -> torch.Tensor:
    """Per-option values ``float[R]`` (all options of example 0, then example 1, ...) as ``float[B, K]``,
    ``-inf`` where an example has fewer than K options. Differentiable in ``values``."""
    example = torch.tensor([b for b, opts in enumerate(options) for _ in opts], device=values.device)
    slot = torch.tensor([k for opts in options for k in range(len(opts))], device=values.device)
    grid = values.new_full((len(options), max(len(o) for o in options)), float("-inf"))
    return grid.index_put((example, slot), values)


def classifier_loss(
    scores: torch.Tensor, answers: torch.Tensor, label_smoothing: float = 0.0, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy over options for ``scores float[B, K]`` (padded options are -inf) and gold ``long[B]``."""
    # -inf on padded options would give NaN under label smoothing; a large negative keeps them impossible.
    finite = scores.masked_fill(torch.isinf(scores), -1e4)
    return nn.functional.cross_entropy(finite, answers, label_smoothing=label_smoothing, reduction=reduction)
