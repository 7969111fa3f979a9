"""Notes shown under an answer: the offline default's domain warning and the text a cut prompt kept.

The domain heuristic is deliberately simple and honest about what it is: the shipped synthetic
diagrams are flat colour on a plain background, so a handful of exact colours covers nearly all
pixels (at least 89% of every validation image lies in its 8 most common colours after reducing
each channel to 64 levels), while a photograph's shading spreads its pixels over hundreds of
colours (at most 32% in its top 8 for the sample photos of gradio, scikit-learn and matplotlib, a
cheetah on a plain background included). An image below :data:`DIAGRAM_SHARE` is treated as
outside the default's domain. At 16 levels per channel a smooth photo could pass (a cheetah
photo scored 0.83), hence 64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.model_card import DOMAIN_NOTE, SWITCH_TO_PALIGEMMA, ModelCard

if TYPE_CHECKING:
    from vqa_demo.predictor import Predictor

DIAGRAM_SHARE = 0.6  # lowest validation image: 0.89; sample photos of installed packages: at most 0.32
TOP_COLOURS, CHANNEL_BITS, PROBE_SIDE = 8, 6, 96


def palette_share(image: Image.Image) -> float:
    """Fraction of pixels in the image's 8 most common colours (channels reduced to 64 levels)."""
    pixels = np.asarray(image.convert("RGB").resize((PROBE_SIDE, PROBE_SIDE)), dtype=np.uint8)
    reduced = (pixels >> (8 - CHANNEL_BITS)).astype(np.int64)
    codes = (reduced[..., 0] << (2 * CHANNEL_BITS)) | (reduced[..., 1] << CHANNEL_BITS) | reduced[..., 2]
    counts = np.sort(np.bincount(codes.ravel()))[::-1]
    return float(counts[:TOP_COLOURS].sum() / codes.size)


def looks_like_diagram(image: Image.Image) -> bool:
    """True for flat-colour images like the synthetic diagrams; False for photo-like ones."""
    return palette_share(image) >= DIAGRAM_SHARE


def domain_note(card: ModelCard | None, image: Image.Image) -> str | None:
    """The offline default's warning for an image that does not look like its training diagrams."""
    if card is None or not card.offline_default or looks_like_diagram(image):
        return None
    return f"⚠ **Outside this model's domain.** {DOMAIN_NOTE} {SWITCH_TO_PALIGEMMA}"


def seen_prompts(
    predictor: Predictor, variants: Sequence[str], question: str, options: Sequence[str]
) -> dict[str, str]:
    """For each variant whose prompt was cut to fit, the prompt text it kept (one row; SWAG: option A's)."""
    from vqa_demo.model.strategies import strategy_for  # after the model loaded: no import cost here

    seen: dict[str, str] = {}
    for name in variants:
        config = predictor.variants[name].config
        rows = strategy_for(config.head).prompt_rows(question, list(options), config.prompt.style)
        encoder = predictor.encoder_for(config)
        text, truncated = encoder.prefix_text(rows[0])
        if truncated:
            # Without the separator, what is left is the prompt text the model read.
            seen[name] = text.removesuffix(encoder.separator)
    return seen


def seen_prompt_markdown(seen: dict[str, str], limit: int) -> str:
    """The kept prompt texts, grouped when several variants kept the same text."""
    by_text: dict[str, list[str]] = {}
    for name, text in seen.items():
        by_text.setdefault(text, []).append(name)
    blocks = []
    for text, names in by_text.items():
        quoted = "\n".join("> " + line for line in text.splitlines() or [""])
        blocks.append(
            f"**The prompt was cut to {limit} text tokens; {', '.join(f'`{n}`' for n in names)} saw only:**\n\n"
            + quoted
        )
    return "\n\n".join(blocks)


class AnswerNotes:
    """Fills the notes under an answer from the Ask tab's result (after the answer, not inside it)."""

    def __init__(self, holder: PredictorHolder, card: ModelCard | None):
        self.holder = holder
        self.card = card

    def render(self, result) -> str:
        """Markdown: the domain note and the text cut prompts kept; empty when there is nothing to say."""
        if result is None:
            return ""
        blocks = []
        display = result.image.display  # the kept display copy (None once the answer expired)
        note = domain_note(self.card, display) if display is not None else None
        if note:
            blocks.append(note)
        cut = [name for name, p in result.predictions.items() if p.truncated]
        if cut and self.holder.loaded:
            predictor = self.holder.get()
            seen = seen_prompts(predictor, cut, result.question, result.options)
            limit = predictor.variants[cut[0]].config.prompt.max_text_tokens
            blocks.append(seen_prompt_markdown(seen, limit))
        return "\n\n".join(b for b in blocks if b)
