"""A variant: one trained answer strategy (LoRA adapter + head) on the shared base."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vqa_demo.config import RunConfig
from vqa_demo.model.head_strategy import HeadStrategy
from vqa_demo.model.strategies import strategy_for


@dataclass
class Variant:
    """One trained answer strategy on the shared base: its config, head module and peft adapter name.

    ``module`` None means no trainable head (COND_GEN); ``adapter`` None means the base weights
    without LoRA.
    """

    name: str
    config: RunConfig
    module: nn.Module | None = None
    adapter: str | None = None

    @property
    def strategy(self) -> HeadStrategy:
        return strategy_for(self.config.head)

    def incompatibility(self, num_options: int) -> str | None:
        """Why this variant cannot answer a question with ``num_options`` options (None if it can)."""
        return self.strategy.incompatibility(self.config.head, num_options, self.name)
