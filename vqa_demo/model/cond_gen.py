"""COND_GEN scoring: per-option log-likelihood from one shared prefix pass, and greedy generation.

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
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from transformers import PaliGemmaForConditionalGeneration

from vqa_demo.model.encoding import EncodedRows, RowEncoder
from vqa_demo.model.forward import lm_logits, prefix_forward
from vqa_demo.model.scoring import option_grid


@dataclass
class PrefixState:
    """What one prefix pass leaves behind for B examples.

    cache: the KV cache (B rows, left padded); last_logits float[B, V] at each row's last prefix
    token; prefix_lengths long[B] (real prefix tokens); attention_mask long[B, P], left padded.
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
    left = left_padded(rows)
    # PaliGemma positions are 1-based; left pads get 0 and are masked out everywhere.
    positions = left.attention_mask.cumsum(dim=1)
    out = prefix_forward(core, left, features, use_cache=True, position_ids=positions)
    last_logits = lm_logits(core, out.last_hidden_state[:, -1])
    return PrefixState(out.cache, last_logits, rows.prefix_lengths, left.attention_mask)


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


def _continue(core, cache, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor):
    """Feed ``ids long[R, L]`` after the cached prefix; returns hidden ``float[R, L, D]`` and the cache."""
    out = core.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
    return out.last_hidden_state, out.cache


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
