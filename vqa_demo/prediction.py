"""What a prediction carries: one variant's answer to one example, with typed per-head details.

The serialized form (:meth:`VariantPrediction.to_dict`: per-example JSONL files, the ``/answer``
JSON) keeps the layout saved files and API clients know, the details under ``"extras"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the tensors are only read through .cpu(); this module stays torch-free
    import torch


@dataclass
class CondGenDetails:
    """COND_GEN's generated text and its per-option scores ``float[K]``; ``scoring`` names the one
    that decided the choice, ``cosine_choice`` is the option nearest the generated text.
    ``loglik_char`` (the summed log-likelihood per character of the option text) is None in records
    written before it existed."""

    generated_text: str
    cosine: np.ndarray
    cosine_choice: int
    loglik_sum: np.ndarray
    loglik_mean: np.ndarray
    scoring: str
    loglik_char: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        details = {
            "generated_text": self.generated_text,
            "cosine": self.cosine,
            "cosine_choice": self.cosine_choice,
            "loglik_sum": self.loglik_sum,
            "loglik_mean": self.loglik_mean,
            "scoring": self.scoring,
        }
        if self.loglik_char is not None:
            details["loglik_char"] = self.loglik_char
        return details

    def score(self, rule: str) -> np.ndarray | None:
        """The per-option scores ``float[K]`` of decision rule ``rule`` (None where not recorded)."""
        return getattr(self, rule, None)


@dataclass
class AttentionMap:
    """Attentive pooling weights of one prompt row: ``image_grid float[g, g]`` (row-major patches),
    the row's text ``tokens`` with ``token_weights float[T]``, ``image_mass`` (the share of weight on
    the image) and which ``row`` it is (``"prompt"`` or ``"chosen option"``). ``pooled_states``: the
    family's sentence on what the pooled states are when they hold no image positions (BLIP, ViLT);
    a display note for the answer it came with, not part of the saved layout."""

    image_grid: np.ndarray
    tokens: list[str]
    token_weights: np.ndarray
    image_mass: float
    row: str
    pooled_states: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_grid": self.image_grid,
            "tokens": self.tokens,
            "token_weights": self.token_weights,
            "image_mass": self.image_mass,
            "row": self.row,
        }


def attention_map(
    input_ids: torch.Tensor,
    weights: torch.Tensor,
    image_token_id: int | None,
    tokenizer,
    row: str,
    pooled_states: str | None = None,
) -> AttentionMap:
    """Split pooling weights ``float[T']`` of one row (``input_ids long[T]``) into a patch grid and tokens.

    Image positions are where the row holds ``image_token_id`` (PaliGemma puts them first, chat
    families such as LLaVA or Qwen2.5-VL in the middle of the template), plus any positions past the
    row's ids (ViLT appends its image patches to the text); ``None``: the row has no image tokens
    (BLIP pools its question encoder). The image weights form a ``g x g`` grid when their count is a
    square number; the text part leaves out padding. ``row`` names which prompt row it is;
    ``pooled_states`` is the family's :attr:`~vqa_demo.model.family.BackboneFamily.pooled_states`.
    """
    weights = weights.float().cpu().numpy()
    ids = input_ids.cpu().tolist()
    is_image = [image_token_id is not None and tok == image_token_id for tok in ids]
    is_image += [True] * (len(weights) - len(ids))
    image = weights[np.flatnonzero(is_image)] if any(is_image) else np.zeros(0, dtype=weights.dtype)
    real = [i for i, tok in enumerate(ids) if not is_image[i] and tok != tokenizer.pad_token_id]
    side = math.isqrt(len(image))
    return AttentionMap(
        image_grid=image.reshape(side, side) if side and side * side == len(image) else image,
        tokens=[tokenizer.decode([ids[i]]) for i in real],
        token_weights=weights[real],
        image_mass=float(image.sum()),
        row=row,
        pooled_states=pooled_states,
    )


@dataclass
class VariantPrediction:
    """One variant's answer to one example.

    option_scores float[K] (higher is better; the choice is their argmax), probabilities float[K]
    (softmax over option_scores, for COND_GEN's cosine scoring after a temperature); ``cond_gen``
    (COND_GEN variants) and ``attention`` (attentive pooling) are None where absent; ``note`` is a
    plain statement about what the scores could not cover (ViLT's baseline: options it cannot score).
    """

    variant: str
    option_scores: np.ndarray
    probabilities: np.ndarray
    choice: int
    cond_gen: CondGenDetails | None = None
    attention: AttentionMap | None = None
    seconds: float = 0.0
    truncated: bool = False
    note: str | None = None

    @property
    def extras(self) -> dict[str, Any]:
        """The details as the serialized form holds them (``to_dict()["extras"]``, arrays kept)."""
        extras = self.cond_gen.to_dict() if self.cond_gen is not None else {}
        if self.attention is not None:
            extras["attention"] = self.attention.to_dict()
        if self.note is not None:
            extras["note"] = self.note
        return extras

    @classmethod
    def from_extras(
        cls, variant: str, option_scores, probabilities, choice: int, extras: dict[str, Any], **fields
    ) -> VariantPrediction:
        """A prediction from the serialized ``extras`` layout (the inverse of :attr:`extras`)."""
        details = {k: v for k, v in extras.items() if k not in ("attention", "note")}
        cond_gen = CondGenDetails(**details) if details else None
        attention = AttentionMap(**extras["attention"]) if "attention" in extras else None
        note = extras.get("note")
        return cls(variant, option_scores, probabilities, choice, cond_gen, attention, note=note, **fields)

    def to_dict(self) -> dict[str, Any]:
        return plain(
            {
                "variant": self.variant,
                "option_scores": self.option_scores,
                "probabilities": self.probabilities,
                "choice": self.choice,
                "extras": self.extras,
                "seconds": self.seconds,
                "truncated": self.truncated,
            }
        )


def plain(value):
    """``value`` with numpy arrays turned into lists, recursively (JSON-ready)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def softmax_np(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; -inf (padded options) gets probability 0, and a row that is -inf
    everywhere (nothing could be scored) gets equal probabilities rather than NaN."""
    top = np.max(scores, axis=-1, keepdims=True)
    exp = np.exp(scores - np.where(np.isneginf(top), 0.0, top))
    total = exp.sum(axis=-1, keepdims=True)
    uniform = np.full_like(exp, 1.0 / scores.shape[-1])
    return np.divide(exp, total, out=uniform, where=total > 0)
