"""Configuration dataclasses: which backbone, which head, how prompts look, how LoRA is set up.

Everything here is plain data that round-trips through JSON (``to_dict`` / ``from_dict``), because a
checkpoint's ``run_config.json`` is exactly a serialised :class:`RunConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

HEAD_NAMES = ("cond_gen", "multi_class", "swag")
# Heads that answer with a family's own weights as they are and are never trained (ViLT's classifier).
BASELINE_HEADS = ("vilt_answer_classifier",)
POOLING_NAMES = ("last_token", "attentive")
PROMPT_STYLES = ("default", "choose_from")
QUANTIZATIONS = (None, "4bit", "8bit")
# COND_GEN's decision rules: the summed log-likelihood (lm-eval's ``acc``), per answer token, per
# character of the option text (lm-eval's ``acc_norm``), and the cosine of the generated text.
COND_GEN_SCORINGS = ("loglik_mean", "loglik_sum", "loglik_char", "cosine")
# Cosine similarities live in [-1, 1]; this temperature spreads them into usable score shares.
COSINE_TEMPERATURE = 0.05
COND_GEN_SCORING_WORDS = {
    "loglik_mean": "log-likelihood per answer token",
    "loglik_sum": "summed log-likelihood",
    "loglik_char": "log-likelihood per character",
    "cosine": "cosine of the generated text",
}
MIN_OPTIONS, MAX_OPTIONS = 2, 8  # the K any variant may be asked with
# An option's letter by 0-based position: prompts, the form's "Option B", reports by gold position.
OPTION_LETTERS = "ABCDEFGH"
assert len(OPTION_LETTERS) == MAX_OPTIONS
# Upper bounds for numbers read from run_config.json: a hostile or corrupt file must fail here,
# before a LoRA of rank 200 000 or a prompt budget of 10^9 tokens is allocated.
MAX_LORA_RANK = 1024
MAX_TEXT_TOKENS = 8192
MAX_NEW_TOKENS = 1024


class ConfigError(ValueError):
    """A configuration value has the wrong type or is out of range; the message names the field."""


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high`` (NaN and infinities are refused)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


# The five compared variants, named the way the app and the CLI name them.
VARIANTS: dict[str, tuple[str, str | None]] = {
    "cond_gen": ("cond_gen", None),
    "multi_class-last_token": ("multi_class", "last_token"),
    "multi_class-attentive": ("multi_class", "attentive"),
    "swag-last_token": ("swag", "last_token"),
    "swag-attentive": ("swag", "attentive"),
}


def in_variant_order(names) -> list[str]:
    """``names`` with the five standard variants first, in :data:`VARIANTS` order, then others as given."""
    names = list(names)
    order = list(VARIANTS)
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), names.index(n)))


def variant_name(head: str, pooling: str | None) -> str:
    """``("swag", "attentive") -> "swag-attentive"``; COND_GEN and the baselines have no pooling."""
    return head if head == "cond_gen" or head in BASELINE_HEADS else f"{head}-{pooling}"


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


@dataclass(frozen=True)
class FamilyPreset:
    """A seed checkpoint of another VLM family on the hub (issue 16; needs access and a GPU-sized machine).

    ``family`` names its :data:`vqa_demo.model.family.FAMILIES` entry (the one its ``config.model_type``
    selects when loaded); ``chat``: instruction-tuned, prompted through its chat template.
    """

    hub_id: str
    family: str
    chat: bool = True

    @property
    def tiny(self) -> str:
        """The in-process stand-in with the family's structure (random weights)."""
        return f"tiny:{self.family}"


FAMILY_PRESETS: dict[str, FamilyPreset] = {
    "qwen2.5-vl-3b-instruct": FamilyPreset("Qwen/Qwen2.5-VL-3B-Instruct", "qwen2_5_vl"),
    "qwen2.5-vl-7b-instruct": FamilyPreset("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl"),
    "llava-1.5-7b": FamilyPreset("llava-hf/llava-1.5-7b-hf", "llava"),
    "smolvlm-instruct": FamilyPreset("HuggingFaceTB/SmolVLM-Instruct", "smolvlm"),
    "smolvlm-256m-instruct": FamilyPreset("HuggingFaceTB/SmolVLM-256M-Instruct", "smolvlm"),
    "smolvlm-500m-instruct": FamilyPreset("HuggingFaceTB/SmolVLM-500M-Instruct", "smolvlm"),
    "gemma-3-4b-it": FamilyPreset("google/gemma-3-4b-it", "gemma3"),
    "blip-vqa-base": FamilyPreset("Salesforce/blip-vqa-base", "blip", chat=False),
    "vilt-b32-finetuned-vqa": FamilyPreset("dandelin/vilt-b32-finetuned-vqa", "vilt", chat=False),
}

# In-process random models of each generation's structure; plain "tiny" is PaliGemma 2's.
TINY_GENERATIONS: dict[str, int] = {"tiny": 2, "tiny:paligemma": 1, "tiny:paligemma2": 2}


@dataclass(frozen=True)
class ModelSize:
    """Architecture sizes of a PaliGemma model built from scratch (``vqa_demo.model.backbone.paligemma_config``).

    The defaults are ``training/pretrain.py``'s (hidden 256, 4 layers); the shipped ``assets/base`` was
    pretrained smaller by flags (its command is in ``assets/README.md``).
    """

    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 1
    intermediate_size: int = 1024
    vision_hidden_size: int = 192
    vision_layers: int = 4
    vision_heads: int = 4
    vision_intermediate_size: int = 768


# The tiny in-process model (``--base tiny``, the tests, smoke runs): 16 image tokens of 20 px / 5 px patches.
TINY_SIZE = ModelSize(32, 2, 4, 2, 64, 32, 2, 4, 64)
TINY_IMAGE_SIZE, TINY_PATCH_SIZE = 20, 5


def preset_for(name_or_id: str) -> Preset | None:
    """The preset named ``name_or_id`` (``paligemma2-3b-mix-448``) or with that hub id, else None."""
    return _named_or_hub_id(PRESETS, name_or_id)


def family_preset_for(name_or_id: str) -> FamilyPreset | None:
    """The other-family preset named ``name_or_id`` (``llava-1.5-7b``) or with that hub id, else None."""
    return _named_or_hub_id(FAMILY_PRESETS, name_or_id)


def _named_or_hub_id(presets: dict, name_or_id: str):
    if name_or_id in presets:
        return presets[name_or_id]
    return next((p for p in presets.values() if p.hub_id == name_or_id), None)


def resolve_backbone_source(name_or_path: str) -> str:
    """Map a preset name (``paligemma2-3b-pt-448``, ``llava-1.5-7b``) to its hub id; anything else is
    returned unchanged."""
    preset = PRESETS.get(name_or_path) or FAMILY_PRESETS.get(name_or_path)
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
        check_range("lora.r", self.r, 1, MAX_LORA_RANK)
        check_range("lora.alpha", self.alpha, 1e-6, 1e6)
        check_range("lora.dropout", self.dropout, 0.0, 0.99)
        if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise ConfigError("lora.targets must be a non-empty list of module names")


@dataclass
class PromptConfig:
    """How questions and options become prefix text (see :mod:`vqa_demo.model.prompts`)."""

    style: str = "default"  # "default" (the reference work's formats) or "choose_from" (big_vision style)
    separator: str = "\n"  # between prefix and suffix, as in PaliGemma
    max_text_tokens: int = 192  # text budget per row after the image tokens; the question is cut first

    def __post_init__(self) -> None:
        if self.style not in PROMPT_STYLES:
            raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {self.style!r}")
        check_range("prompt.max_text_tokens", self.max_text_tokens, 1, MAX_TEXT_TOKENS)
        if not self.separator:
            raise ConfigError("prompt.separator must not be empty")


@dataclass
class HeadConfig:
    """Which answer head and pooling a variant uses."""

    head: str = "cond_gen"
    pooling: str | None = None  # required for multi_class and swag
    num_options: int | None = 4  # MULTI_CLASS is trained for a fixed K; others accept 2..8
    cond_gen_scoring: str = "loglik_mean"  # which COND_GEN score decides the choice
    max_new_tokens: int = 16  # COND_GEN generation length

    def __post_init__(self) -> None:
        if self.head not in HEAD_NAMES + BASELINE_HEADS:
            raise ValueError(f"head must be one of {HEAD_NAMES + BASELINE_HEADS}, got {self.head!r}")
        if self.head in BASELINE_HEADS:
            self.pooling = None
        elif self.head == "cond_gen":
            self.pooling = None
            if self.cond_gen_scoring not in COND_GEN_SCORINGS:
                raise ValueError(f"cond_gen_scoring must be one of {COND_GEN_SCORINGS}")
        elif self.pooling not in POOLING_NAMES:
            raise ValueError(f"{self.head} needs pooling in {POOLING_NAMES}, got {self.pooling!r}")
        if self.head == "multi_class" and not self.num_options:
            raise ValueError("multi_class needs num_options (the K it classifies over)")
        if self.num_options is not None:
            check_range("head.num_options", self.num_options, MIN_OPTIONS, MAX_OPTIONS)
        check_range("head.max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)

    @property
    def variant(self) -> str:
        return variant_name(self.head, self.pooling)

    def check_trainable(self) -> None:
        """Refuse, in one sentence, a head that is never trained (a training run's config check)."""
        if self.head in BASELINE_HEADS:
            raise ConfigError(
                f"{self.head} is a zero-training baseline that answers with the base weights as they "
                f"are; train one of {', '.join(HEAD_NAMES)} instead"
            )


@dataclass
class TrainSettings:
    """Optimisation settings recorded with a checkpoint (the training CLI fills them in)."""

    learning_rate: float = 3e-4
    epochs: float = 2.0
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    freeze_vision: bool = True

    def __post_init__(self) -> None:
        check_range("train.learning_rate", self.learning_rate, 0.0, 10.0)
        check_range("train.epochs", self.epochs, 0.0, 1e6)
        check_range("train.batch_size", self.batch_size, 1, 1 << 20)
        check_range("train.grad_accum", self.grad_accum, 1, 1 << 20)
        check_range("train.warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        check_range("train.weight_decay", self.weight_decay, 0.0, 1e3)
        check_range("train.label_smoothing", self.label_smoothing, 0.0, 1.0)


@dataclass
class RunConfig:
    """Everything needed to rebuild and describe one trained variant; saved as ``run_config.json``."""

    head: HeadConfig = field(default_factory=HeadConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    base_fingerprint: str | None = None  # identifies the base model the adapter was trained on
    base_hash: str | None = None  # content hash of a local base folder (vqa_demo.base_ref)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def variant(self) -> str:
        return self.head.variant

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        """Parse a ``run_config.json`` object; raises :class:`ConfigError` naming the first bad field.

        Types are checked against the dataclass annotations before any value is used (JSON's
        ``"4"``, ``4.0``, ``true`` are not an int K), then ranges by each part's ``__post_init__``.
        Unknown keys are ignored so that older code can read newer configs.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a run config must be a JSON object, got {_json_kind(data)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in _PARTS:
                kwargs[key] = _parse_part(key, _PARTS[key], value)
            elif key in ("base_fingerprint", "base_hash"):
                kwargs[key] = _checked(key, value, str | None)
            elif key == "metrics":
                kwargs[key] = _checked(key, value, dict)
        return cls(**kwargs)


_PARTS: dict[str, type] = {
    "head": HeadConfig,
    "backbone": BackboneConfig,
    "prompt": PromptConfig,
    "lora": LoraSettings,
    "train": TrainSettings,
}


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _parse_part(key: str, part: type, value: Any):
    if not isinstance(value, dict):
        raise ConfigError(f"'{key}' must be a JSON object, got {_json_kind(value)}")
    hints = typing.get_type_hints(part)
    known = {f.name for f in dataclasses.fields(part)}
    checked = {k: _checked(f"{key}.{k}", v, hints[k]) for k, v in value.items() if k in known}
    try:
        return part(**checked)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"'{key}': {error}") from None


def _checked(name: str, value: Any, hint: Any) -> Any:
    """``value`` if it has the JSON type ``hint`` asks for (ints pass as floats), else ConfigError."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(o for o in options if o is not type(None))
    if typing.get_origin(hint) is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{name} must be a list of strings, got {_json_kind(value)}")
    origin = typing.get_origin(hint) or hint
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is int and isinstance(value, bool) or not isinstance(value, origin):
        expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        raise ConfigError(f"{name} must be {expected.get(origin, 'an object')}, got {value!r:.60}")
    return value
