"""Configuration dataclasses: which backbone, which head, how prompts look, how LoRA is set up.

Everything here is plain data that round-trips through JSON (``to_dict`` / ``from_dict``), because a
checkpoint's ``run_config.json`` is exactly a serialised :class:`RunConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

HEAD_NAMES = ("cond_gen", "multi_class", "swag")
POOLING_NAMES = ("last_token", "attentive")
PROMPT_STYLES = ("default", "choose_from")
QUANTIZATIONS = (None, "4bit", "8bit")
COND_GEN_SCORINGS = ("loglik_mean", "loglik_sum", "cosine")

# The five compared variants, named the way the app and the CLI name them.
VARIANTS: dict[str, tuple[str, str | None]] = {
    "cond_gen": ("cond_gen", None),
    "multi_class-last_token": ("multi_class", "last_token"),
    "multi_class-attentive": ("multi_class", "attentive"),
    "swag-last_token": ("swag", "last_token"),
    "swag-attentive": ("swag", "attentive"),
}


def variant_name(head: str, pooling: str | None) -> str:
    """``("swag", "attentive") -> "swag-attentive"``; COND_GEN has no pooling."""
    return head if head == "cond_gen" else f"{head}-{pooling}"


@dataclass
class BackboneConfig:
    """Where the PaliGemma model comes from and how it is loaded.

    ``source`` is a hub id (``google/paligemma2-3b-pt-448``) or preset name (see :data:`PRESETS`), a
    local directory holding a saved base model + processor, or one of :data:`TINY_GENERATIONS`
    (``tiny:paligemma``, ``tiny:paligemma2`` = ``tiny``) for a random model built in-process (tests).
    """

    source: str = "assets/base"
    dtype: str = "auto"  # "auto" = float32 on CPU, bfloat16 on CUDA
    quantization: str | None = None  # None, "4bit" (NF4) or "8bit"; needs CUDA + bitsandbytes
    device: str = "auto"  # "auto" = cuda if available, else cpu
    attn_implementation: str | None = None  # None lets transformers decide (Gemma 2 uses eager)

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")


@dataclass(frozen=True)
class Preset:
    """A real PaliGemma checkpoint on the hub (needs access and a GPU-sized machine).

    ``generation`` 1 is a Gemma decoder, 2 a Gemma 2 decoder. Mix checkpoints were fine-tuned on a
    mixture of tasks written in PaliGemma's task syntax (``answer en {question}``, ``caption en`` ...),
    so their default prompt style is ``choose_from`` (``answer en {question} choose from: ...``).
    Both generations' processors lay a prompt out as ``[<image> x N] <bos> prompt \\n`` (PaliGemma 1's
    tokenizer config adds a ``<bos>`` of its own; the processor, and our encoder, never let it).
    """

    hub_id: str
    generation: int
    resolution: int
    mix: bool = False

    @property
    def tiny(self) -> str:
        """The in-process stand-in with the same structure (random weights, seconds to build)."""
        return "tiny:paligemma" if self.generation == 1 else "tiny:paligemma2"

    @property
    def prompt_style(self) -> str:
        return "choose_from" if self.mix else "default"


def _presets() -> dict[str, Preset]:
    presets = {
        f"paligemma-3b-pt-{res}": Preset(f"google/paligemma-3b-pt-{res}", 1, res) for res in (224, 448, 896)
    }
    for size in ("3b", "10b", "28b"):
        for res in (224, 448, 896):
            presets[f"paligemma2-{size}-pt-{res}"] = Preset(f"google/paligemma2-{size}-pt-{res}", 2, res)
        for res in (224, 448):
            presets[f"paligemma2-{size}-mix-{res}"] = Preset(
                f"google/paligemma2-{size}-mix-{res}", 2, res, mix=True
            )
    return presets


PRESETS: dict[str, Preset] = _presets()

# In-process random models of each generation's structure; plain "tiny" is PaliGemma 2's.
TINY_GENERATIONS: dict[str, int] = {"tiny": 2, "tiny:paligemma": 1, "tiny:paligemma2": 2}


def preset_for(name_or_id: str) -> Preset | None:
    """The preset named ``name_or_id`` (``paligemma2-3b-mix-448``) or with that hub id, else None."""
    if name_or_id in PRESETS:
        return PRESETS[name_or_id]
    return next((p for p in PRESETS.values() if p.hub_id == name_or_id), None)


def resolve_backbone_source(name_or_path: str) -> str:
    """Map a preset name (``paligemma2-3b-pt-448``) to its hub id; anything else is returned unchanged."""
    preset = PRESETS.get(name_or_path)
    return preset.hub_id if preset else name_or_path


def default_prompt_style(base: str) -> str:
    """The prompt style a base expects: ``choose_from`` for mix checkpoints, else ``default``."""
    preset = preset_for(base)
    return preset.prompt_style if preset else "default"


@dataclass
class LoraSettings:
    """LoRA on the language model's linear layers; with ``vision`` also on the SigLIP tower and projector.

    The base weights always stay frozen. With ``vision=False`` (the default, and what the reference work
    found best) the image features are identical for every variant, so the predictor shares them.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    init_weights: bool = True  # False gives random B (useful in tests: every LoRA weight gets a gradient)
    vision: bool = False  # also adapt the SigLIP tower and projector (image features become per-variant)

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)


@dataclass
class PromptConfig:
    """How questions and options become prefix text (see :mod:`vqa_demo.prompts`)."""

    style: str = "default"  # "default" (the background doc's formats) or "choose_from" (big_vision style)
    separator: str = "\n"  # between prefix and suffix, as in PaliGemma
    max_text_tokens: int = 192  # text budget per row after the image tokens; the question is cut first

    def __post_init__(self) -> None:
        if self.style not in PROMPT_STYLES:
            raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {self.style!r}")


@dataclass
class HeadConfig:
    """Which answer head and pooling a variant uses."""

    head: str = "cond_gen"
    pooling: str | None = None  # required for multi_class and swag
    num_options: int | None = 4  # MULTI_CLASS is trained for a fixed K; others accept 2..8
    cond_gen_scoring: str = "loglik_mean"  # which COND_GEN score decides the choice
    max_new_tokens: int = 16  # COND_GEN generation length

    def __post_init__(self) -> None:
        if self.head not in HEAD_NAMES:
            raise ValueError(f"head must be one of {HEAD_NAMES}, got {self.head!r}")
        if self.head == "cond_gen":
            self.pooling = None
            if self.cond_gen_scoring not in COND_GEN_SCORINGS:
                raise ValueError(f"cond_gen_scoring must be one of {COND_GEN_SCORINGS}")
        elif self.pooling not in POOLING_NAMES:
            raise ValueError(f"{self.head} needs pooling in {POOLING_NAMES}, got {self.pooling!r}")
        if self.head == "multi_class" and not self.num_options:
            raise ValueError("multi_class needs num_options (the K it classifies over)")

    @property
    def variant(self) -> str:
        return variant_name(self.head, self.pooling)


@dataclass
class TrainSettings:
    """Optimisation settings recorded with a checkpoint (the training CLI fills them in)."""

    learning_rate: float = 3e-4
    epochs: float = 1.0
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    freeze_vision: bool = True


@dataclass
class RunConfig:
    """Everything needed to rebuild and describe one trained variant; saved as ``run_config.json``."""

    head: HeadConfig = field(default_factory=HeadConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    base_fingerprint: str | None = None  # identifies the base model the adapter was trained on
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def variant(self) -> str:
        return self.head.variant

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        parts = {
            "head": HeadConfig,
            "backbone": BackboneConfig,
            "prompt": PromptConfig,
            "lora": LoraSettings,
            "train": TrainSettings,
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in parts:
                known = {f.name for f in dataclasses.fields(parts[key])}
                kwargs[key] = parts[key](**{k: v for k, v in value.items() if k in known})
            elif key in {"base_fingerprint", "metrics"}:
                kwargs[key] = value
        return cls(**kwargs)
