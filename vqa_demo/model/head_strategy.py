"""The contract every head type fulfils: :class:`HeadStrategy`, with its inputs and outputs.

A strategy owns everything that differs between COND_GEN, MULTI_CLASS and SWAG: its prompt rows,
its trainable head module, which option counts it answers, its inference scores ``float[B, K]``,
its training loss and its differentiable target score for attributions. The registry is
:data:`vqa_demo.model.strategies.STRATEGIES`; nothing else tests a head's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from vqa_demo.config import HeadConfig
from vqa_demo.model.encoding import EncodedRows, RowEncoder
from vqa_demo.model.families.registry import family_for
from vqa_demo.model.family import BackboneFamily
from vqa_demo.model.head_traits import HEAD_TRAITS, TRAIT_NAMES, fixed_option_count, option_count_refusal
from vqa_demo.model.prompts import PromptRow
from vqa_demo.prediction import CondGenDetails


@dataclass
class HeadContext:
    """What a strategy scores with: the model (``core``, of any family), the variant's row encoder
    (the family's), head config and module.

    ``module`` is the trainable head (None for COND_GEN); ``matcher`` (a
    :class:`~vqa_demo.model.matching.SentenceMatcher`) is needed by COND_GEN's cosine scores only;
    ``family`` is the backbone's (:attr:`~vqa_demo.model.backbone.Backbone.family`), looked up from
    ``core.config`` once when not given.
    """

    core: nn.Module
    encoder: RowEncoder
    head_config: HeadConfig
    prompt_style: str = "default"
    module: nn.Module | None = None
    matcher: object | None = None
    family: BackboneFamily | None = None

    def __post_init__(self) -> None:
        if self.family is None:
            self.family = family_for(self.core.config)


@dataclass
class PoolingRows:
    """Attentive pooling weights of a batch: ``weights float[R, T]`` over ``rows`` (R rows), the
    rows of example ``b`` starting at ``first[b]``; ``per_option`` when each option has its row."""

    rows: EncodedRows
    weights: torch.Tensor
    first: list[int]
    per_option: bool

    def row(self, b: int, choice: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids long[T], weights float[T])`` of the row that explains example ``b``'s
        ``choice``: the chosen option's row, or the one prompt row."""
        row = self.first[b] + (choice if self.per_option else 0)
        return self.rows.input_ids[row], self.weights[row]

    @property
    def label(self) -> str:
        return "chosen option" if self.per_option else "prompt"


@dataclass
class HeadScores:
    """Inference output for B examples: ``scores float[B, K]`` (-inf on padded options; the choice is
    the argmax), ``truncated[b]`` when example b's text was cut, and per-example details.

    ``temperature`` divides the scores before the softmax that gives probabilities; ``notes[b]`` is a
    plain statement about example b's scores where a strategy has one (else None).
    """

    scores: np.ndarray
    truncated: list[bool]
    temperature: float = 1.0
    cond_gen: list[CondGenDetails] | None = None
    pooling: PoolingRows | None = field(default=None)
    notes: list[str | None] | None = None


class HeadStrategy:
    """Base class of the head types; subclasses override what differs (see the module docstring)."""

    name: str = ""
    # generates_text, rows_per_option, token_level_loss, attribution_suffix, has_module, only_family:
    # the named head's :data:`~vqa_demo.model.head_traits.HEAD_TRAITS` entry, set as class attributes.
    generates_text = rows_per_option = token_level_loss = attribution_suffix = has_module = False
    only_family: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = sorted(set(TRAIT_NAMES) & set(vars(cls)))
        if own:
            raise TypeError(
                f"{cls.__name__} sets {', '.join(own)}: a head's traits are set in HEAD_TRAITS only"
            )
        if cls.name:
            traits = HEAD_TRAITS[cls.name]
            for trait in TRAIT_NAMES:
                setattr(cls, trait, getattr(traits, trait))

    def prompt_rows(
        self, question: str, options: list[str], style: str = "default", answer_index: int | None = None
    ) -> list[PromptRow]:
        """The prompt rows of one example; ``answer_index`` (0-based) adds a training suffix where used."""
        raise NotImplementedError

    def build_head(self, cfg: HeadConfig, hidden_size: int) -> nn.Module | None:
        """The trainable head module (None: the language-model head answers)."""
        return None

    def fixed_option_count(self, cfg: HeadConfig) -> int | None:
        """The only option count this head answers (None: any of 2..8)."""
        return fixed_option_count(cfg)

    def incompatibility(self, cfg: HeadConfig, num_options: int, name: str) -> str | None:
        """Why variant ``name`` cannot answer ``num_options`` options (None if it can)."""
        return option_count_refusal(cfg, num_options, name)

    def scores(
        self, ctx: HeadContext, questions: list[str], options: list[list[str]], features: torch.Tensor
    ) -> HeadScores:
        """Inference scores of B examples from image features ``float[B, N, D]`` (no gradients needed)."""
        raise NotImplementedError

    def loss_terms(
        self,
        ctx: HeadContext,
        questions: list[str],
        options: list[list[str]],
        answers: list[int],
        features: torch.Tensor,
        label_smoothing: float = 0.0,
    ) -> tuple[torch.Tensor, int]:
        """The summed training loss of B examples and how many terms it sums."""
        raise NotImplementedError

    def loss_count(
        self,
        encoder: RowEncoder,
        questions: list[str],
        options: list[list[str]],
        answers: list[int],
        style: str = "default",
    ) -> int:
        """How many terms :meth:`loss_terms` sums for these examples, from tokenization only, so a
        training step can know its global count before any backward (one per example here)."""
        return len(answers)

    def training_cuts(
        self,
        encoder: RowEncoder,
        questions: list[str],
        options: list[list[str]],
        answers: list[int],
        style: str = "default",
    ) -> list[int]:
        """Indices of the examples whose training rows lose text to a token budget (the prompt's
        ``max_text_tokens``, or a training suffix's answer budget). Tokenization only."""
        cut = []
        for index, (question, opts, answer) in enumerate(zip(questions, options, answers)):
            rows = self.prompt_rows(question, opts, style, answer_index=answer)
            prompt_cut = any(encoder.prefix_ids(row)[1] for row in rows)
            answer_cut = any(row.suffix is not None and encoder.suffix(row.suffix)[1] for row in rows)
            if prompt_cut or answer_cut:
                cut.append(index)
        return cut

    def attribution_row(self, question: str, options: list[str], target: int, style: str) -> PromptRow:
        """The one prompt row whose score for option ``target`` an attribution explains."""
        return self.prompt_rows(question, options, style)[0]

    def target_score(
        self,
        ctx: HeadContext,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor,
        num_options: int,
    ) -> torch.Tensor:
        """Differentiable score ``float[N]`` of each row's target option from the final hidden states
        ``float[N, T, D]`` of its :meth:`attribution_row` (``labels long[N, T]``, -100 off the suffix)."""
        raise NotImplementedError
