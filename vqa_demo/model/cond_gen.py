"""COND_GEN: generate an answer and score every option by its log-likelihood as the answer.

How the family's model scores, generates and trains answers is its
:attr:`~vqa_demo.model.family.BackboneFamily.answer_scorer` (:mod:`vqa_demo.model.answer_scorer`: the
shared-prefix cache of a causal decoder, or an encoder-decoder's own); this strategy builds the rows,
combines the scores by the configured rule and keeps the per-example details.
"""

from __future__ import annotations

import numpy as np
import torch

from vqa_demo.config import COSINE_TEMPERATURE, HeadConfig
from vqa_demo.model.head_strategy import HeadScores, HeadStrategy
from vqa_demo.model.prompts import PromptRow, cleaned, options_row
from vqa_demo.prediction import CondGenDetails


def option_characters(options: list[list[str]], width: int) -> np.ndarray:
    """Characters of each option's text ``float[B, width]`` (at least 1; padded slots 1): lm-eval's
    ``acc_norm`` divides the summed log-likelihood by this count (characters, not bytes)."""
    counts = np.ones((len(options), width))
    for b, opts in enumerate(options):
        counts[b, : len(opts)] = [max(len(text), 1) for text in opts]
    return counts


def answer_scores(ctx, rows, features: torch.Tensor, options: list[list[str]]):
    """``(loglik_sum float[B, K], loglik_mean float[B, K], generated ids per example)`` for the
    suffix-free prompt rows of B examples, from the family's
    :class:`~vqa_demo.model.answer_scorer.AnswerScorer`."""
    max_new_tokens = ctx.head_config.max_new_tokens
    return ctx.family.answer_scorer.scores_and_answers(ctx, rows, features, options, max_new_tokens)


class CondGenStrategy(HeadStrategy):
    """Generate an answer, and score every option by its log-likelihood as the suffix (no head module)."""

    name = "cond_gen"

    def prompt_rows(self, question, options, style="default", answer_index=None) -> list[PromptRow]:
        question, options = cleaned(question, options)
        suffix = options[answer_index] if answer_index is not None else None
        return [options_row(question, options, style, lettered=False, suffix=suffix)]

    def scores(self, ctx, questions, options, features) -> HeadScores:
        """The configured score (``cond_gen_scoring``) decides; all three are kept per example."""
        cfg: HeadConfig = ctx.head_config
        rows = [self.prompt_rows(q, o, ctx.prompt_style)[0] for q, o in zip(questions, options)]
        rows = ctx.encoder.encode(rows, with_suffix=False).to(features.device)
        loglik_sum, loglik_mean, generated_ids = answer_scores(ctx, rows, features, options)
        tokenizer = ctx.encoder.tokenizer
        generated = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in generated_ids]
        cosine = ctx.matcher.cosine_scores(generated, options)
        by_scoring = {
            "loglik_mean": loglik_mean.cpu().numpy(),
            "loglik_sum": loglik_sum.cpu().numpy(),
            "cosine": cosine,
        }
        by_scoring["loglik_char"] = by_scoring["loglik_sum"] / option_characters(options, cosine.shape[1])
        details = [
            CondGenDetails(
                generated_text=generated[b],
                cosine=cosine[b, : len(opts)],
                cosine_choice=int(np.argmax(cosine[b, : len(opts)])),
                loglik_sum=by_scoring["loglik_sum"][b, : len(opts)],
                loglik_mean=by_scoring["loglik_mean"][b, : len(opts)],
                scoring=cfg.cond_gen_scoring,
                loglik_char=by_scoring["loglik_char"][b, : len(opts)],
            )
            for b, opts in enumerate(options)
        ]
        # Only text that skipped the input layer's option limit can exceed the answer budget.
        options_cut = [any(ctx.encoder.suffix(text)[1] for text in opts) for opts in options]
        truncated = [rows.truncated[b] or options_cut[b] for b in range(len(options))]
        temperature = COSINE_TEMPERATURE if cfg.cond_gen_scoring == "cosine" else 1.0
        return HeadScores(by_scoring[cfg.cond_gen_scoring], truncated, temperature, details)

    def loss_terms(self, ctx, questions, options, answers, features, label_smoothing=0.0):
        """Teacher-forced cross-entropy on the gold option text as the suffix (training only): the sum over
        the suffix tokens of all B rows, and how many tokens that is."""
        prompt_rows = [
            self.prompt_rows(q, opts, ctx.prompt_style, answer_index=a)[0]
            for q, opts, a in zip(questions, options, answers)
        ]
        rows = ctx.encoder.encode(prompt_rows, with_suffix=True).to(features.device)
        return ctx.family.answer_scorer.suffix_loss(ctx, rows, features, label_smoothing)

    def loss_count(self, encoder, questions, options, answers, style="default") -> int:
        """The gold answer tokens :meth:`loss_terms` sums (each answer's tokens and its end token)."""
        rows = [
            self.prompt_rows(q, o, style, answer_index=a)[0] for q, o, a in zip(questions, options, answers)
        ]
        labels = encoder.encode(rows, with_suffix=True).labels
        return int((labels[:, 1:] != -100).sum())

    def attribution_row(self, question, options, target, style) -> PromptRow:
        """The prompt with the target option as its suffix (teacher forcing)."""
        return self.prompt_rows(question, options, style, answer_index=target)[0]

    def target_score(self, ctx, hidden, attention_mask, labels, targets, num_options) -> torch.Tensor:
        """The score the decision rule (``cond_gen_scoring``) ranks the target option by, ``float[N]``:
        the summed log-probabilities of its suffix tokens (the option and ``<eos>``, the same number
        as the family scorer's ``option_loglik`` sum), divided
        per :meth:`rule_divisor`. The cosine rule scores generated text, which has no gradient to
        attribute: its attribution is of the summed log-likelihood."""
        total = ctx.family.answer_scorer.target_score(ctx, hidden, attention_mask, labels)
        return total / self.rule_divisor(ctx, labels).to(total)

    def rule_divisor(self, ctx, labels: torch.Tensor) -> torch.Tensor:
        """``float[N]`` turning a summed log-likelihood into the decision rule's score: the scored
        tokens for ``loglik_mean`` (every labeled position after the first, as in scoring), the
        characters of the decoded option for ``loglik_char``, else 1. ``labels long[N, T]``."""
        rule = ctx.head_config.cond_gen_scoring
        scored = labels[:, 1:] != -100
        if rule == "loglik_mean":
            return scored.sum(dim=1).float()
        if rule == "loglik_char":
            tokenizer = ctx.encoder.tokenizer
            texts = [
                tokenizer.decode(row[keep].tolist(), skip_special_tokens=True)
                for row, keep in zip(labels[:, 1:], scored)
            ]
            return torch.tensor([max(len(text.strip()), 1) for text in texts], dtype=torch.float32)
        return torch.ones(labels.shape[0])
