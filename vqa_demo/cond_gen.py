"""COND_GEN scoring: per-option log-likelihood from one shared prefix pass, and greedy generation.

The prefix (image + prompt) runs once per example with a KV cache; the cache is then gathered to one
row per option and every option (its tokens + ``<eos>``) is scored in a single batched pass::

    prefix pass:  [img.. bos prompt \\n]           -> cache, logits at the last prefix token
    option pass:  cache[row b] + [o_k tokens <eos>] -> log p(o_k | prefix), all K options at once

Generation continues greedily from the same cache, so the vision tower never runs again. These are
inference functions (no gradients); training uses the teacher-forced suffix loss.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from transformers import PaliGemmaForConditionalGeneration

from vqa_demo.encoding import EncodedRows, RowEncoder
from vqa_demo.forward import lm_logits, prefix_forward
from vqa_demo.scoring import option_grid


@dataclass
class PrefixState:
    """What one prefix pass leaves behind for B examples.

    cache: the KV cache (B rows); last_logits float[B, V] at each row's last prefix token;
    prefix_lengths long[B]; attention_mask long[B, P].
    """

    cache: object
    last_logits: torch.Tensor
    prefix_lengths: torch.Tensor
    attention_mask: torch.Tensor


@torch.no_grad()
def run_prefix(
    core: PaliGemmaForConditionalGeneration, rows: EncodedRows, features: torch.Tensor
) -> PrefixState:
    """One cached pass over the (suffix-free) prompt rows ``[B, P]`` with image features ``float[B, N, D]``."""
    out = prefix_forward(core, rows, features, use_cache=True)
    last = rows.prefix_lengths - 1
    hidden_last = out.last_hidden_state[torch.arange(len(last)), last]
    return PrefixState(
        out.past_key_values, lm_logits(core, hidden_last), rows.prefix_lengths, rows.attention_mask
    )


def _continue(core, cache, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor):
    """Feed ``ids long[R, L]`` after the cached prefix; returns hidden ``float[R, L, D]`` and the cache."""
    out = core.model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
    )
    return out.last_hidden_state, out.past_key_values


@torch.no_grad()
def option_loglik(
    core: PaliGemmaForConditionalGeneration,
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
    # PaliGemma positions are 1-based; the suffix continues right after each row's real prefix.
    positions = state.prefix_lengths[row_of, None] + 1 + torch.arange(ids.shape[1], device=device)
    hidden, _ = _continue(core, cache, ids, mask, positions)

    # Token j is predicted by the previous position: the last prefix token for j = 0.
    logits = torch.cat([state.last_logits[row_of, None], lm_logits(core, hidden[:, :-1])], dim=1)
    token_logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    token_logp = token_logp * suffix_mask
    total = token_logp.sum(dim=1)
    mean = total / suffix_mask.sum(dim=1)
    return option_grid(total, options), option_grid(mean, options)


@torch.no_grad()
def greedy_generate(
    core: PaliGemmaForConditionalGeneration,
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
        positions = (state.prefix_lengths + 1 + step)[:, None].to(device)
        hidden, cache = _continue(core, cache, next_ids[:, None], mask, positions)
        next_ids = lm_logits(core, hidden[:, -1]).argmax(dim=-1)
    return generated
