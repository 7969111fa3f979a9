"""MULTI_CLASS and SWAG: heads that score options with a trained module on pooled hidden states.

MULTI_CLASS reads one lettered prompt row per example and classifies over a fixed K; SWAG reads one
``(question, option)`` row per option and gives each a logit, like ``BertForMultipleChoice``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vqa_demo.config import HeadConfig
from vqa_demo.model.encoding import EncodedRows
from vqa_demo.model.forward import cpu_bounds, row_slices
from vqa_demo.model.head_strategy import HeadContext, HeadScores, HeadStrategy, PoolingRows
from vqa_demo.model.heads import MultiClassHead, SwagHead
from vqa_demo.model.prompts import PromptRow, cleaned, hypothesis_rows, options_row
from vqa_demo.model.scoring import classifier_loss, option_grid, pad_options


@dataclass
class ClassifierOutput:
    """scores float[B, K]; rows: the encoded rows, ``row_counts[b]`` of them for example ``b`` in
    order (1 for multi_class, its own number of options for swag); weights float[R, T] for
    attentive pooling, else None."""

    scores: torch.Tensor
    rows: EncodedRows
    weights: torch.Tensor | None
    row_counts: list[int]

    def first_row(self, b: int) -> int:
        return sum(self.row_counts[:b])


def bounded_scores(
    ctx: HeadContext,
    encoded: EncodedRows,
    features: torch.Tensor,
    index: torch.Tensor,
    pool: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The head's scores of R rows, run through the model in micro-batches (:func:`row_slices`, bounded
    by attention scores and, on the CPU, by the size of the MLP's activations and eager attention's
    scores).

    ``features float[B, N, D]``; ``index long[R]``: each row's example. ``pool(hidden float[r, T, D],
    mask bool[r, T])`` gives ``(scores float[r, ...], weights float[r, T] | None)``; the micro-batches'
    results are concatenated in row order: ``float[R, ...]`` and ``float[R, T] | None``. Every row is
    padded to the whole batch's T, so a row's result does not depend on its micro-batch.
    """
    scores, weights = [], []
    # The activation bound is the CPU allocator's; a GPU keeps the attention budget alone.
    bounds = cpu_bounds(ctx.core) if encoded.input_ids.device.type == "cpu" else {}
    for part in row_slices(len(index), encoded.input_ids.shape[1], **bounds):
        rows = encoded.select(part)
        part_features = ctx.family.select_features(features, index[part])
        hidden = ctx.family.language_forward(ctx.core, rows, part_features)
        part_scores, part_weights = pool(hidden.last_hidden_state, rows.attention_mask.bool())
        scores.append(part_scores)
        weights.append(part_weights)
    joined = None if weights[0] is None else torch.cat(weights)
    return torch.cat(scores), joined


class ClassifierStrategy(HeadStrategy):
    """What MULTI_CLASS and SWAG share: a head module, K-way cross-entropy, pooled-state scores."""

    def classifier_scores(
        self, ctx: HeadContext, questions: list[str], options: list[list[str]], features: torch.Tensor
    ) -> ClassifierOutput:
        """Differentiable scores of B examples with image features ``float[B, N, D]``."""
        raise NotImplementedError

    def scores(self, ctx, questions, options, features) -> HeadScores:
        out = self.classifier_scores(ctx, questions, options, features)
        first = [out.first_row(b) for b in range(len(options))]
        truncated = [
            any(out.rows.truncated[start : start + count]) for start, count in zip(first, out.row_counts)
        ]
        pooling = None
        if out.weights is not None:
            pooling = PoolingRows(out.rows, out.weights, first, self.rows_per_option)
        return HeadScores(out.scores.cpu().numpy(), truncated, pooling=pooling)

    def loss_terms(self, ctx, questions, options, answers, features, label_smoothing=0.0):
        """Summed cross-entropy over options, and the number of examples."""
        out = self.classifier_scores(ctx, questions, options, features)
        gold = torch.tensor(answers, device=out.scores.device)
        return classifier_loss(out.scores, gold, label_smoothing, "sum"), len(answers)


class MultiClassStrategy(ClassifierStrategy):
    """K-way classifier on the pooled state of the single lettered prompt row (K fixed at training)."""

    name = "multi_class"

    def prompt_rows(self, question, options, style="default", answer_index=None) -> list[PromptRow]:
        question, options = cleaned(question, options)
        return [options_row(question, options, style, lettered=True)]

    def build_head(self, cfg: HeadConfig, hidden_size: int) -> nn.Module:
        return MultiClassHead(hidden_size, cfg.pooling, cfg.num_options)

    def classifier_scores(self, ctx, questions, options, features) -> ClassifierOutput:
        """Examples with fewer than K options show empty padded options and score them -inf."""
        padded, valid = pad_options(options)
        rows = [self.prompt_rows(q, opts, ctx.prompt_style)[0] for q, opts in zip(questions, padded)]
        encoded = ctx.encoder.encode(rows, with_suffix=False).to(features.device)
        index = torch.arange(len(rows), device=features.device)
        num_options = len(padded[0])
        scores, weights = bounded_scores(
            ctx, encoded, features, index, lambda hidden, mask: ctx.module(hidden, mask, num_options)
        )
        scores = scores.float().masked_fill(~valid.to(scores.device), float("-inf"))
        return ClassifierOutput(scores, encoded, weights, [1] * len(rows))

    def target_score(self, ctx, hidden, attention_mask, labels, targets, num_options) -> torch.Tensor:
        """The target option's logit."""
        scores, _ = ctx.module(hidden, attention_mask.bool(), num_options)
        return scores.float().gather(1, targets[:, None]).squeeze(1)


class SwagStrategy(ClassifierStrategy):
    """One logit per ``(question, option)`` row; any number of options."""

    name = "swag"

    def prompt_rows(self, question, options, style="default", answer_index=None) -> list[PromptRow]:
        question, options = cleaned(question, options)
        return hypothesis_rows(question, options, style)

    def build_head(self, cfg: HeadConfig, hidden_size: int) -> nn.Module:
        return SwagHead(hidden_size, cfg.pooling)

    def classifier_scores(self, ctx, questions, options, features) -> ClassifierOutput:
        """The rows of all B examples run in one forward, one row per real option (an example with
        fewer than K options adds no padding rows; its missing scores are -inf); their image
        features are the per-example features repeated, not recomputed."""
        per_example = [self.prompt_rows(q, opts, ctx.prompt_style) for q, opts in zip(questions, options)]
        row_counts = [len(rows) for rows in per_example]
        rows = [r for example_rows in per_example for r in example_rows]
        encoded = ctx.encoder.encode(rows, with_suffix=False).to(features.device)
        counts = torch.tensor(row_counts, device=features.device)
        index = torch.arange(len(counts), device=features.device).repeat_interleave(counts)
        logits, weights = bounded_scores(ctx, encoded, features, index, ctx.module.row_scores)  # [R]
        return ClassifierOutput(option_grid(logits, options).float(), encoded, weights, row_counts)

    def attribution_row(self, question, options, target, style) -> PromptRow:
        """The target option's own row: the other rows do not affect its score."""
        return self.prompt_rows(question, options, style)[target]

    def target_score(self, ctx, hidden, attention_mask, labels, targets, num_options) -> torch.Tensor:
        """The target row's logit."""
        scores, _ = ctx.module(hidden, attention_mask.bool(), 1)
        return scores[:, 0].float()
