"""Per-head scoring on precomputed image features; shared by training and the predictor.

Every strategy ends in ``scores float[B, K]``: the choice is always ``argmax`` over options.
Options of examples with fewer than K options are padded and scored ``-inf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PaliGemmaForConditionalGeneration

from vqa_demo.config import HeadConfig
from vqa_demo.model.encoding import EncodedRows, RowEncoder
from vqa_demo.model.forward import lm_logits, prefix_forward
from vqa_demo.model.prompts import build_rows


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


def classifier_scores(
    core: PaliGemmaForConditionalGeneration,
    head: nn.Module,
    head_cfg: HeadConfig,
    encoder: RowEncoder,
    questions: list[str],
    options: list[list[str]],
    features: torch.Tensor,
    prompt_style: str = "default",
) -> ClassifierOutput:
    """MULTI_CLASS or SWAG scores for B examples with image features ``float[B, N, D]``.

    SWAG runs the (question, option) rows of all B examples in one forward, one row per real
    option (an example with fewer than K options adds no padding rows; its missing scores are
    -inf); their image features are the per-example features repeated, not recomputed.
    """
    padded, valid = pad_options(options)
    num_options = len(padded[0])
    swag = head_cfg.head == "swag"
    per_example = [
        build_rows(head_cfg.head, q, opts if swag else padded_opts, prompt_style)
        for q, opts, padded_opts in zip(questions, options, padded)
    ]
    row_counts = [len(rows) for rows in per_example]
    rows = encoder.encode([r for rows in per_example for r in rows], with_suffix=False).to(features.device)
    if swag:
        counts = torch.tensor(row_counts, device=features.device)
        features = features.repeat_interleave(counts, dim=0)
    hidden = prefix_forward(core, rows, features).last_hidden_state
    mask = rows.attention_mask.bool()
    if swag:
        logits, weights = head.row_scores(hidden, mask)  # [R]
        scores = option_grid(logits, options).float()
    else:
        scores, weights = head(hidden, mask, num_options)
        scores = scores.float().masked_fill(~valid.to(scores.device), float("-inf"))
    return ClassifierOutput(scores, rows, weights, row_counts)


def cond_gen_loss_terms(
    core: PaliGemmaForConditionalGeneration,
    encoder: RowEncoder,
    questions: list[str],
    options: list[list[str]],
    answers: list[int],
    features: torch.Tensor,
    prompt_style: str = "default",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """Teacher-forced cross-entropy on the gold option text as the suffix (training only): the sum over
    the suffix tokens of all B rows, and how many tokens that is."""
    prompt_rows = [
        build_rows("cond_gen", q, opts, prompt_style, answer_index=a)[0]
        for q, opts, a in zip(questions, options, answers)
    ]
    rows = encoder.encode(prompt_rows, with_suffix=True).to(features.device)
    hidden = prefix_forward(core, rows, features).last_hidden_state
    # Only suffix positions are projected onto the vocabulary (image tokens would dominate the cost).
    labels = rows.labels[:, 1:]
    scored = labels != -100
    logits = lm_logits(core, hidden[:, :-1][scored])
    total = nn.functional.cross_entropy(
        logits, labels[scored], label_smoothing=label_smoothing, reduction="sum"
    )
    return total, int(scored.sum())


def cond_gen_loss(
    core: PaliGemmaForConditionalGeneration,
    encoder: RowEncoder,
    questions: list[str],
    options: list[list[str]],
    answers: list[int],
    features: torch.Tensor,
    prompt_style: str = "default",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """:func:`cond_gen_loss_terms` as a mean over the suffix tokens."""
    total, count = cond_gen_loss_terms(
        core, encoder, questions, options, answers, features, prompt_style, label_smoothing
    )
    return total / count


def classifier_loss(
    scores: torch.Tensor, answers: torch.Tensor, label_smoothing: float = 0.0, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy over options for ``scores float[B, K]`` (padded options are -inf) and gold ``long[B]``."""
    # -inf on padded options would give NaN under label smoothing; a large negative keeps them impossible.
    finite = scores.masked_fill(torch.isinf(scores), -1e4)
    return nn.functional.cross_entropy(finite, answers, label_smoothing=label_smoothing, reduction=reduction)


def variant_loss_terms(
    core: PaliGemmaForConditionalGeneration,
    head: nn.Module | None,
    head_cfg: HeadConfig,
    encoder: RowEncoder,
    questions: list[str],
    options: list[list[str]],
    answers: list[int],
    features: torch.Tensor,
    prompt_style: str = "default",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """The summed training loss of B examples and the number of terms it sums (gold suffix tokens for
    COND_GEN, examples otherwise): processes holding parts of one global batch add both up to get the
    global batch's mean exactly, whatever the split."""
    if head_cfg.head == "cond_gen":
        return cond_gen_loss_terms(
            core, encoder, questions, options, answers, features, prompt_style, label_smoothing
        )
    out = classifier_scores(core, head, head_cfg, encoder, questions, options, features, prompt_style)
    gold = torch.tensor(answers, device=out.scores.device)
    return classifier_loss(out.scores, gold, label_smoothing, "sum"), len(answers)


def training_cuts(
    head_cfg: HeadConfig,
    encoder: RowEncoder,
    questions: list[str],
    options: list[list[str]],
    answers: list[int],
    prompt_style: str = "default",
) -> list[int]:
    """Indices of the examples whose training rows (as :func:`variant_loss` builds them) lose text to
    a token budget: the prompt's ``max_text_tokens``, or for COND_GEN the gold answer's suffix budget.
    Tokenization only; run it once over a training split to report what training would cut."""
    cut = []
    for index, (question, opts, answer) in enumerate(zip(questions, options, answers)):
        if head_cfg.head == "cond_gen":
            rows = build_rows("cond_gen", question, opts, prompt_style, answer_index=answer)
        else:
            rows = build_rows(head_cfg.head, question, opts, prompt_style)
        prompt_cut = any(encoder.prefix_ids(row)[1] for row in rows)
        answer_cut = any(row.suffix is not None and encoder.suffix(row.suffix)[1] for row in rows)
        if prompt_cut or answer_cut:
            cut.append(index)
    return cut


def variant_loss(
    core: PaliGemmaForConditionalGeneration,
    head: nn.Module | None,
    head_cfg: HeadConfig,
    encoder: RowEncoder,
    questions: list[str],
    options: list[list[str]],
    answers: list[int],
    features: torch.Tensor,
    prompt_style: str = "default",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The mean training loss of any variant for B examples (answers are 0-based gold indices):
    per gold suffix token for COND_GEN, per example otherwise (:func:`variant_loss_terms` / its count)."""
    total, count = variant_loss_terms(
        core, head, head_cfg, encoder, questions, options, answers, features, prompt_style, label_smoothing
    )
    return total / count
