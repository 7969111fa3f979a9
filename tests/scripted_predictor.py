"""A base for scripted predictor stand-ins: the interface the evaluation runner reads besides
``predict_batch`` (each variant's head strategy, the backbone's summary), declared honestly."""

from __future__ import annotations

from dataclasses import dataclass

from vqa_demo.model.head_traits import HeadTraits


class ScriptedBackbone:
    def summary(self) -> dict[str, str]:
        return {"source": "scripted", "family": "scripted", "model": "scripted stand-in"}


@dataclass
class ScriptedVariant:
    strategy: HeadTraits


class ScriptedPredictor:
    """Subclasses implement ``predict_batch``; ``names`` are the variants it answers for."""

    backbone = ScriptedBackbone()

    def __init__(self, names: tuple[str, ...] = ("biased",), head: HeadTraits | None = None):
        self.variants = {name: ScriptedVariant(head or HeadTraits()) for name in names}
