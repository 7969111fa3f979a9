"""THE registry of head types: ``STRATEGIES[head_config.head]`` is the strategy that answers.

Adding a head type means a :class:`~vqa_demo.model.head_strategy.HeadStrategy` subclass, its name here
and in :data:`vqa_demo.config.HEAD_NAMES` (or :data:`~vqa_demo.config.BASELINE_HEADS`, never trained);
every caller goes through the functions below.
"""

from __future__ import annotations

import torch
from torch import nn

from vqa_demo.config import HeadConfig
from vqa_demo.model.classifier_strategies import MultiClassStrategy, SwagStrategy
from vqa_demo.model.cond_gen import CondGenStrategy
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.families.vilt.baseline import ViltClassifierStrategy
from vqa_demo.model.head_strategy import HeadContext, HeadStrategy
from vqa_demo.model.prompts import PromptRow

STRATEGIES: dict[str, HeadStrategy] = {
    "cond_gen": CondGenStrategy(),
    "multi_class": MultiClassStrategy(),
    "swag": SwagStrategy(),
    "vilt_answer_classifier": ViltClassifierStrategy(),
}


def strategy_for(head_config: HeadConfig) -> HeadStrategy:
    """The strategy of a variant's head config."""
    return STRATEGIES[head_config.head]


def build_rows(
    head: str, question: str, options: list[str], style: str = "default", answer_index: int | None = None
) -> list[PromptRow]:
    """Prompt rows of one example for the head named ``head``: 1 row for cond_gen and multi_class, K
    rows for swag. ``answer_index`` (0-based) sets the cond_gen suffix for training."""
    return STRATEGIES[head].prompt_rows(question, options, style, answer_index)


def build_head(cfg: HeadConfig, hidden_size: int) -> nn.Module | None:
    """The trainable head module for ``cfg`` (None for cond_gen, which uses the LM head)."""
    return strategy_for(cfg).build_head(cfg, hidden_size)


def variant_loss_terms(
    ctx: HeadContext,
    questions: list[str],
    options: list[list[str]],
    answers: list[int],
    features: torch.Tensor,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """The summed training loss of B examples and the number of terms it sums (gold suffix tokens for
    COND_GEN, examples otherwise): processes holding parts of one global batch add both up to get the
    global batch's mean exactly, whatever the split."""
    strategy = strategy_for(ctx.head_config)
    return strategy.loss_terms(ctx, questions, options, answers, features, label_smoothing)


def variant_loss_count(
    ctx: HeadContext, questions: list[str], options: list[list[str]], answers: list[int]
) -> int:
    """The number of terms :func:`variant_loss_terms` sums for B examples, by tokenization alone."""
    strategy = strategy_for(ctx.head_config)
    return strategy.loss_count(ctx.encoder, questions, options, answers, ctx.prompt_style)


def variant_loss(
    ctx: HeadContext,
    questions: list[str],
    options: list[list[str]],
    answers: list[int],
    features: torch.Tensor,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The mean training loss of any variant for B examples (answers are 0-based gold indices):
    per gold suffix token for COND_GEN, per example otherwise (:func:`variant_loss_terms` / its count)."""
    total, count = variant_loss_terms(ctx, questions, options, answers, features, label_smoothing)
    return total / count


def training_cuts(
    head_cfg: HeadConfig,
    encoder: RowEncoder,
    questions: list[str],
    options: list[list[str]],
    answers: list[int],
    prompt_style: str = "default",
) -> list[int]:
    """Indices of the examples whose training rows lose text to a token budget (see
    :meth:`HeadStrategy.training_cuts`); run it once over a training split."""
    return strategy_for(head_cfg).training_cuts(encoder, questions, options, answers, prompt_style)
