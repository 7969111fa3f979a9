"""The Ask form's variant checkboxes: which variants are ticked by default, which can answer K
options (with the reason when one cannot), and the line under each name.

A variant the model card shows at chance level (:mod:`vqa_demo.evaluation.chance`) starts unticked, unless
every variant is at chance level. The Errors tab's *Open in Ask* uses the same lines.
"""

from __future__ import annotations

import gradio as gr

from vqa_demo.model.head_traits import HEAD_TRAITS
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.model_card import ModelCard


class VariantTicks:
    """Checkbox values and texts for the served variants (``holder.infos`` order)."""

    def __init__(self, holder: PredictorHolder, card: ModelCard | None = None):
        self.holder = holder
        self.card = card

    def chance_level_names(self) -> frozenset[str]:
        """Chance-level variants, marked wherever variants are listed."""
        return frozenset(n for n in self.holder.names if self.card and self.card.is_chance_level(n))

    def default_tick(self, name: str) -> bool:
        """Ticked on a first visit unless the model card shows it at chance level (all, if every one is)."""
        chance = self.chance_level_names()
        return name not in chance or chance >= set(self.holder.names)

    def updates(self, count: int, previous: int | None = None) -> list[dict]:
        """Checkbox updates for ``count`` options: a variant that cannot take them is unticked and disabled, with why.

        A variant that could already answer ``previous`` options keeps the user's tick (no value is
        sent); one that becomes available again gets its default tick.
        """
        updates = []
        for info in self.holder.infos:
            reason = info.incompatibility(count)
            if reason:
                updates.append(gr.update(value=False, interactive=False, info=f"unavailable: {reason}"))
            elif previous is not None and info.incompatibility(previous) is None:
                updates.append(gr.update(interactive=True, info=self.variant_info(info.name)))
            else:
                value = self.default_tick(info.name)
                updates.append(gr.update(value=value, interactive=True, info=self.variant_info(info.name)))
        return updates

    def variant_info(self, name: str) -> str:
        """What the variant does and its validation standing, in one line under its checkbox."""
        info = self.holder.info(name)
        strategy = HEAD_TRAITS[info.config.head.head]
        if strategy.generates_text:
            text = "generates, then scores options by likelihood"
        else:
            kind = "one score per option" if strategy.rows_per_option else "one K-way classifier"
            text = f"{kind}, {info.config.head.pooling.replace('_', '-')} pooling"
        standing = self.card.standings.get(name) if self.card else None
        if standing is None:
            return text
        if standing.chance_level:
            return f"⚠ chance level: val. {standing.interval()}, chance {standing.chance:.2f}"
        return f"{text} · val. {standing.interval()}"
