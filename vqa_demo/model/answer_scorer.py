"""How COND_GEN scores, generates and trains answers: the :class:`AnswerScorer` contract, and the
shared-prefix cache every causal decoder family uses (:data:`PREFIX_CACHE`).

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
real tokens only), so rotary positions are those of the row encoded alone.
What is family specific (positions, the forward, the logits) comes from the model's family
(:class:`~vqa_demo.model.family.BackboneFamily`), passed in. An encoder-decoder family (BLIP) has its
own :class:`AnswerScorer` instead.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch

from vqa_demo.model.encoding import EncodedRows, RowEncoder
from vqa_demo.model.scoring import option_grid


class AnswerScorer:
    """How a family's COND_GEN scores, generates and trains answers (:attr:`BackboneFamily.answer_scorer
    <vqa_demo.model.family.BackboneFamily.answer_scorer>`): :class:`PrefixCacheScorer` for a causal
    decoder, the family's own for an encoder-decoder (BLIP's answer decoder).

    ``rows`` are the family encoder's suffix-free prompt rows of B examples; ``features`` the image
    features ``float[B, N, D]``.
    """

    # The answer's tokens are positions of the attributed prompt row (a causal decoder); False where
    # a separate decoder reads them (BLIP), so an attribution must not mask them out of the row.
    suffix_in_row: bool = True

    def option_loglik(self, ctx, rows, features, options) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum float[B, K], mean float[B, K])`` log-likelihood of each option as the answer."""
        raise NotImplementedError

    def generate(self, ctx, rows, features, max_new_tokens: int) -> list[list[int]]:
        """Greedy answer token ids per example (without the end token)."""
        raise NotImplementedError

    def suffix_loss(self, ctx, rows, features, label_smoothing: float) -> tuple[torch.Tensor, int]:
        """Summed teacher-forced cross-entropy of ``rows``' suffixes (the gold answers) and its token count."""
        raise NotImplementedError

    def scores_and_answers(
        self, ctx, rows, features, options, max_new_tokens: int
    ) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
        """:meth:`option_loglik`'s ``(sum, mean)`` and :meth:`generate`'s answers of one call; a scorer
        whose two share work (BLIP's question encoding) overrides this to do it once."""
        total, mean = self.option_loglik(ctx, rows, features, options)
        return total, mean, self.generate(ctx, rows, features, max_new_tokens)

    def target_score(self, ctx, states, attention_mask, labels) -> torch.Tensor:
        """Differentiable summed log-likelihood ``float[N]`` of each row's answer (``labels``, the
        family encoder's suffix rows, -100 padded) given the prompt rows' final states ``float[N, T, D]``
        (``attention_mask long[N, T]``): what an attribution of a COND_GEN variant explains."""
        raise NotImplementedError


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
def run_prefix(family, core, rows: EncodedRows, features: torch.Tensor) -> PrefixState:
    """One cached pass of ``family``'s model ``core`` over the (suffix-free) prompt rows ``[B, P]`` with
    image features ``float[B, N, D]``."""
    left = left_padded(rows)
    positions = family.prefix_positions(left, features)
    out = family.language_forward(core, left, features, use_cache=True, position_ids=positions)
    last_logits = family.lm_logits(core, out.last_hidden_state[:, -1])
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


def continued(family, core, cache, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor):
    """Feed ``ids long[R, L]`` at 1-D ``positions long[R, L]`` after the cached prefix; returns hidden
    ``float[R, L, D]`` and the cache."""
    out = family.continue_forward(core, cache, ids, mask, family.continuation_positions(positions))
    return out.last_hidden_state, out.cache


@torch.no_grad()
def option_loglik(
    family,
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
    hidden, _ = continued(family, core, cache, ids, mask, positions)

    # Token j is predicted by the previous position: the last prefix token for j = 0.
    logits = torch.cat([state.last_logits[row_of, None], family.lm_logits(core, hidden[:, :-1])], dim=1)
    total = token_logprob_sum(logits, ids, suffix_mask)
    mean = total / suffix_mask.sum(dim=1)
    return option_grid(total, options), option_grid(mean, options)


@torch.no_grad()
def greedy_generate(
    family,
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
        hidden, cache = continued(family, core, cache, next_ids[:, None], mask, positions)
        next_ids = family.lm_logits(core, hidden[:, -1]).argmax(dim=-1)
    return generated


def suffix_cross_entropy(family, core, rows: EncodedRows, hidden: torch.Tensor, label_smoothing: float):
    """Summed teacher-forced cross-entropy of ``rows``' suffix tokens from the rows' final states
    ``hidden float[R, T, D]``, and how many tokens it sums."""
    # Only suffix positions are projected onto the vocabulary (image tokens would dominate the cost).
    labels = rows.labels[:, 1:]
    scored = labels != -100
    logits = family.lm_logits(core, hidden[:, :-1][scored])
    total = torch.nn.functional.cross_entropy(
        logits, labels[scored], label_smoothing=label_smoothing, reduction="sum"
    )
    return total, int(scored.sum())


class PrefixCacheScorer(AnswerScorer):
    """COND_GEN of a causal decoder: one left-padded prefix pass with a KV cache, every option scored
    from it in one batched pass, greedy answers continued from the same cache."""

    def option_loglik(self, ctx, rows, features, options) -> tuple[torch.Tensor, torch.Tensor]:
        state = run_prefix(ctx.family, ctx.core, rows, features)
        return option_loglik(ctx.family, ctx.core, ctx.encoder, state, options)

    def generate(self, ctx, rows, features, max_new_tokens: int) -> list[list[int]]:
        state = run_prefix(ctx.family, ctx.core, rows, features)
        return greedy_generate(ctx.family, ctx.core, state, ctx.encoder.eos_id, max_new_tokens)

    def scores_and_answers(self, ctx, rows, features, options, max_new_tokens: int):
        """Both from one prefix pass."""
        state = run_prefix(ctx.family, ctx.core, rows, features)
        total, mean = option_loglik(ctx.family, ctx.core, ctx.encoder, state, options)
        generated = greedy_generate(ctx.family, ctx.core, state, ctx.encoder.eos_id, max_new_tokens)
        return total, mean, generated

    def suffix_loss(self, ctx, rows, features, label_smoothing: float) -> tuple[torch.Tensor, int]:
        hidden = ctx.family.language_forward(ctx.core, rows, features).last_hidden_state
        return suffix_cross_entropy(ctx.family, ctx.core, rows, hidden, label_smoothing)

    def target_score(self, ctx, states, attention_mask, labels) -> torch.Tensor:
        gold = labels[:, 1:]
        logits = ctx.family.lm_logits(ctx.core, states[:, :-1])
        return token_logprob_sum(logits, gold.clamp(min=0), gold != -100)


PREFIX_CACHE = PrefixCacheScorer()
