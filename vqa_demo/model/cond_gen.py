"""COND_GEN: per-option log-likelihood from one shared prefix pass, greedy generation, its strategy.

The prefix (image + prompt) runs once per example with a KV cache; the cache is then gathered to one
row per option and every option (its tokens + ``<eos>``) is scored in a single batched pass::

    prefix pass:  [img.. bos prompt \\n]           -> cache, logits at the last prefix token
    option pass:  cache[row b] + [o_k tokens <eos>] -> log p(o_k | prefix), all K options at once

Generation continues greedily from the same cache, so the vision tower never runs again. These are
inference functions (no gradients); training uses the teacher-forced suffix loss.

The prefix batch is **left** padded, so every row's last prefix token sits at the same cache index and
each row's tokens keep their true distances in cache-index space. Gemma 2's sliding-window layers
measure the window in cache indices (and its cache keeps only the last ``window - 1`` entries), so
with right padding a shorter row would see a shifted window once the prefix exceeds it (896 px:
4096 image tokens + text > the 4096 window). Position ids are passed explicitly (1-based, counting
real tokens only), so rotary positions are those of the row encoded alone. What is family specific
(positions, the forward, the logits) comes from the model's family
(:class:`~vqa_demo.model.family.BackboneFamily`); a family with its own
:class:`~vqa_demo.model.family.AnswerScorer` (an encoder-decoder, BLIP) scores, generates and trains
answers through it instead of this cache.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch

from vqa_demo.config import COSINE_TEMPERATURE, HeadConfig
from vqa_demo.model.encoding import EncodedRows, RowEncoder
from vqa_demo.model.family import family_for
from vqa_demo.model.forward import lm_logits, prefix_forward
from vqa_demo.model.head_strategy import HeadScores, HeadStrategy
from vqa_demo.model.prompts import PromptRow, cleaned, options_row
from vqa_demo.model.scoring import option_grid
from vqa_demo.prediction import CondGenDetails


@dataclass
class PrefixState:
    """What one prefix pass leaves behind for B examples.

    cache: the KV cache (B rows, left padded); last_logits float[B, V] at each row's last prefix
    token; prefix_lengths long[B] (real prefix tokens); attention_mask long[B, P], left padded;
    next_positions long[B]: the position of each row's first token after the prefix.
    """

    cache: object
    last_logits: torch.Tensor
    prefix_lengths: torch.Tensor
    attention_mask: torch.Tensor
    next_positions: torch.Tensor


@torch.no_grad()
def run_prefix(core, rows: EncodedRows, features: torch.Tensor) -> PrefixState:
    """One cached pass over the (suffix-free) prompt rows ``[B, P]`` with image features ``float[B, N, D]``."""
    family = family_for(core.config)
    left = left_padded(rows)
    positions = family.prefix_positions(left, features)
    out = prefix_forward(core, left, features, use_cache=True, position_ids=positions)
    last_logits = lm_logits(core, out.last_hidden_state[:, -1])
    next_positions = family.next_positions(positions)
    return PrefixState(out.cache, last_logits, rows.prefix_lengths, left.attention_mask, next_positions)


def left_padded(rows: EncodedRows) -> EncodedRows:
    """The same suffix-free rows ``[B, P]`` with their padding moved to the left (real tokens end at P - 1)."""
    assert rows.labels is None, "only prompt rows without a suffix are left padded"
    width = rows.attention_mask.shape[1]
    shift = width - rows.attention_mask.sum(dim=1, keepdim=True)
    # Rolling each row right by its padding count moves the pads from the end to the front.
    source = (torch.arange(width, device=shift.device) - shift) % width
    return replace(
        rows,
        input_ids=rows.input_ids.gather(1, source),
        attention_mask=rows.attention_mask.gather(1, source),
        token_type_ids=rows.token_type_ids.gather(1, source),
    )


def token_logprob_sum(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed log-probabilities ``float[R]`` of tokens ``ids long[R, L]`` where ``mask [R, L]`` is set,
    under ``logits float[R, L, V]`` (position j predicts token j). Differentiable; never a loss."""
    token_logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    return (token_logp * mask).sum(dim=1)


def _continue(core, cache, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor):
    """Feed ``ids long[R, L]`` at 1-D ``positions long[R, L]`` after the cached prefix; returns hidden
    ``float[R, L, D]`` and the cache."""
    family = family_for(core.config)
    out = family.continue_forward(core, cache, ids, mask, family.continuation_positions(positions))
    return out.last_hidden_state, out.cache


@torch.no_grad()
def option_loglik(
    core,
    encoder: RowEncoder,
    state: PrefixState,
    options: list[list[str]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-likelihood of every option as the suffix: ``(sum float[B, K], mean float[B, K])``.

    ``mean`` is length-normalised (per suffix token, ``<eos>`` included). Examples with fewer than K
    options get ``-inf`` in the padded slots. Log-probabilities are summed, never losses, so a
    higher score is always better.
    """
    row_of = torch.tensor([b for b, opts in enumerate(options) for _ in opts])
    suffixes = [encoder.suffix_ids(text) for opts in options for text in opts]
    ids, suffix_mask = encoder.pad_suffixes(suffixes)
    device = state.last_logits.device
    ids, suffix_mask, row_of = ids.to(device), suffix_mask.to(device), row_of.to(device)

    cache = copy.deepcopy(state.cache)
    cache.batch_select_indices(row_of)
    mask = torch.cat([state.attention_mask[row_of], suffix_mask], dim=1)
    # The suffix continues right after each row's real prefix.
    positions = state.next_positions[row_of, None] + torch.arange(ids.shape[1], device=device)
    hidden, _ = _continue(core, cache, ids, mask, positions)

    # Token j is predicted by the previous position: the last prefix token for j = 0.
    logits = torch.cat([state.last_logits[row_of, None], lm_logits(core, hidden[:, :-1])], dim=1)
    total = token_logprob_sum(logits, ids, suffix_mask)
    mean = total / suffix_mask.sum(dim=1)
    return option_grid(total, options), option_grid(mean, options)


@torch.no_grad()
def greedy_generate(
    core,
    state: PrefixState,
    eos_id: int,
    max_new_tokens: int,
) -> list[list[int]]:
    """Greedy continuation of every prefix (B rows), stopping at ``<eos>``; returns the new token ids."""
    cache = copy.deepcopy(state.cache)
    batch = state.last_logits.shape[0]
    device = state.last_logits.device
    mask = state.attention_mask
    next_ids = state.last_logits.argmax(dim=-1)
    generated: list[list[int]] = [[] for _ in range(batch)]
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        for b in range(batch):
            if not done[b] and next_ids[b].item() != eos_id:
                generated[b].append(int(next_ids[b]))
        done |= next_ids == eos_id
        if done.all() or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype, device=device)], dim=1)
        positions = (state.next_positions + step)[:, None].to(device)
        hidden, cache = _continue(core, cache, next_ids[:, None], mask, positions)
        next_ids = lm_logits(core, hidden[:, -1]).argmax(dim=-1)
    return generated


def option_characters(options: list[list[str]], width: int) -> np.ndarray:
    """Characters of each option's text ``float[B, width]`` (at least 1; padded slots 1): lm-eval's
    ``acc_norm`` divides the summed log-likelihood by this count (characters, not bytes)."""
    counts = np.ones((len(options), width))
    for b, opts in enumerate(options):
        counts[b, : len(opts)] = [max(len(text), 1) for text in opts]
    return counts


def answer_scores(ctx, rows: EncodedRows, features: torch.Tensor, options: list[list[str]]):
    """``(loglik_sum float[B, K], loglik_mean float[B, K], generated ids per example)`` for the
    suffix-free prompt rows of B examples: through the family's own
    :class:`~vqa_demo.model.family.AnswerScorer` if it has one, else the shared-prefix cache."""
    max_new_tokens = ctx.head_config.max_new_tokens
    scorer = ctx.family.answer_scorer
    if scorer is not None:
        return scorer.scores_and_answers(ctx, rows, features, options, max_new_tokens)
    state = run_prefix(ctx.core, rows, features)
    total, mean = option_loglik(ctx.core, ctx.encoder, state, options)
    return total, mean, greedy_generate(ctx.core, state, ctx.encoder.eos_id, max_new_tokens)


class CondGenStrategy(HeadStrategy):
    """Generate an answer, and score every option by its log-likelihood as the suffix (no head module)."""

    name = "cond_gen"
    generates_text = True
    token_level_loss = True
    attribution_suffix = True

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
        scorer = ctx.family.answer_scorer
        if scorer is not None:
            return scorer.suffix_loss(ctx, rows, features, label_smoothing)
        hidden = prefix_forward(ctx.core, rows, features).last_hidden_state
        # Only suffix positions are projected onto the vocabulary (image tokens would dominate the cost).
        labels = rows.labels[:, 1:]
        scored = labels != -100
        logits = lm_logits(ctx.core, hidden[:, :-1][scored])
        total = torch.nn.functional.cross_entropy(
            logits, labels[scored], label_smoothing=label_smoothing, reduction="sum"
        )
        return total, int(scored.sum())

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
        as the cached :func:`option_loglik`'s sum; a family's own scorer computes it its way), divided
        per :meth:`rule_divisor`. The cosine rule scores generated text, which has no gradient to
        attribute: its attribution is of the summed log-likelihood."""
        scorer = ctx.family.answer_scorer
        if scorer is not None:
            total = scorer.target_score(ctx, hidden, attention_mask, labels)
        else:
            gold = labels[:, 1:]
            total = token_logprob_sum(lm_logits(ctx.core, hidden[:, :-1]), gold.clamp(min=0), gold != -100)
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
