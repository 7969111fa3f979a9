"""THE registry of backbone families: one line per family; nothing registers itself on import.

A family is one folder under ``vqa_demo/model/families/<name>/`` (its :class:`~vqa_demo.model.family.
BackboneFamily` subclass in ``family.py``, its tiny builder and tokenizer in ``tiny.py``, its facts
in ``README.md``) plus its line in :data:`FAMILIES` below. The model is chosen from its config's
``model_type`` (:func:`family_for`), never from its name; every family test iterates :data:`FAMILIES`.
"""

from __future__ import annotations

from vqa_demo.model.families.blip.family import BLIP
from vqa_demo.model.families.gemma3.family import GEMMA3
from vqa_demo.model.families.llava.family import LLAVA
from vqa_demo.model.families.paligemma.family import PALIGEMMA
from vqa_demo.model.families.qwen2_5_vl.family import QWEN2_5_VL
from vqa_demo.model.families.smolvlm.family import SMOLVLM
from vqa_demo.model.families.vilt.family import VILT
from vqa_demo.model.families.vipllava.family import VIPLLAVA
from vqa_demo.model.family import BackboneFamily

FAMILIES: dict[str, BackboneFamily] = {
    family.name: family
    for family in (
        PALIGEMMA,
        LLAVA,
        GEMMA3,
        QWEN2_5_VL,
        SMOLVLM,
        BLIP,
        VILT,
        VIPLLAVA,
    )
}

# model_type -> family (family_for runs wherever no backbone carries its family).
BY_MODEL_TYPE: dict[str, BackboneFamily] = {t: f for f in FAMILIES.values() for t in f.model_types}


def family_for(config) -> BackboneFamily:
    """The family of a model config, by ``config.model_type``."""
    model_type = getattr(config, "model_type", None)
    family = family_by_model_type(model_type)
    if family is not None:
        return family
    raise ValueError(
        f"model type {model_type!r} is not a supported backbone family; use one of {sorted(BY_MODEL_TYPE)}"
    )


def family_by_model_type(model_type: str | None) -> BackboneFamily | None:
    """The family whose checkpoints have ``config.model_type == model_type``, else None."""
    return BY_MODEL_TYPE.get(model_type)


def tiny_family(source: str) -> BackboneFamily | None:
    """The family that builds ``--base source`` in-process (``tiny``, ``tiny:<family>``), else None."""
    return next((f for f in FAMILIES.values() if source in f.tiny_sources), None)


def tiny_sources() -> list[str]:
    """Every ``--base tiny...`` name, e.g. ``tiny``, ``tiny:paligemma2``, ``tiny:llava``."""
    return [s for f in FAMILIES.values() for s in f.tiny_sources]


def tiny_model(name: str, seed: int = 0):
    """``(model, processor)``: the tiny random model of family ``name`` with its own processor as built
    (:attr:`~vqa_demo.model.family.BackboneFamily.tiny_builder`), for tests and benchmarks."""
    return FAMILIES[name].tiny_builder(seed=seed)
