"""What each head type is, by name, without torch: :data:`HEAD_TRAITS`.

The app lays out its page (each variant's one-line description, which losses are comparable) before
any model loads, and the evaluation registry chooses metrics by them. Each
:class:`~vqa_demo.model.head_strategy.HeadStrategy` subclass takes its traits from this table as class
attributes (``HeadStrategy.__init_subclass__``), so this is the one place they are set.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vqa_demo.config import HeadConfig


@dataclass(frozen=True)
class HeadTraits:
    """The facts about a head type that callers branch on (all False/None by default)."""

    generates_text: bool = False  # answers in free text first (COND_GEN), not only by scoring options
    rows_per_option: bool = False  # one prompt row per option (SWAG) instead of one per example
    token_level_loss: bool = False  # trained with the LM's per-token loss, not a K-way cross-entropy
    attribution_suffix: bool = False  # the attribution row carries the target option as its suffix
    has_module: bool = False  # a trainable head module (saved as head.safetensors) besides LoRA
    only_family: str | None = None  # the one family whose own weights it needs (None: any family)
    trained_option_count: bool = False  # answers only the option count K it was trained for


HEAD_TRAITS: dict[str, HeadTraits] = {
    "cond_gen": HeadTraits(generates_text=True, token_level_loss=True, attribution_suffix=True),
    "multi_class": HeadTraits(has_module=True, trained_option_count=True),
    "swag": HeadTraits(has_module=True, rows_per_option=True),
    "vilt_answer_classifier": HeadTraits(only_family="vilt"),
}

TRAIT_NAMES = tuple(f.name for f in fields(HeadTraits))


def fixed_option_count(head_config: HeadConfig) -> int | None:
    """The only option count a variant with this head config answers (None: any of 2..8)."""
    return head_config.num_options if HEAD_TRAITS[head_config.head].trained_option_count else None


def option_count_refusal(head_config: HeadConfig, num_options: int, name: str) -> str | None:
    """Why variant ``name`` cannot answer ``num_options`` options (None if it can)."""
    fixed = fixed_option_count(head_config)
    if fixed is not None and num_options != fixed:
        return f"{name} was trained for exactly {fixed} options (got {num_options})"
    return None
