"""Load or build a backbone of any family, freeze what stays frozen, and add LoRA.

Three sources, one result (:class:`Backbone`):
- a hub id or preset (``google/paligemma2-3b-pt-448``, ``llava-hf/llava-1.5-7b-hf``): the real thing,
  needs hub access; its family comes from the checkpoint's ``config.model_type``;
- a local directory written by :func:`save_backbone` (the offline default in ``assets/base``);
- ``"tiny:paligemma"`` / ``"tiny:paligemma2"`` (= ``"tiny"``) and ``"tiny:<family>"``
  (:func:`~vqa_demo.model.family.tiny_sources`): a random model of a family's structure built
  in-process, for tests.

What differs between families lives in :mod:`vqa_demo.model.family` and its implementations
(PaliGemma's in :mod:`vqa_demo.model.families.paligemma`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoConfig, PreTrainedTokenizerBase

from vqa_demo.checkpoint_checks import refuse_pickles
from vqa_demo.config import (
    TINY_GENERATIONS,
    TINY_IMAGE_SIZE,
    TINY_PATCH_SIZE,
    BackboneConfig,
    LoraSettings,
    resolve_backbone_source,
)
from vqa_demo.model.base_checks import UnsafeBaseError, check_weight_dtypes
from vqa_demo.model.families.paligemma.family import PALIGEMMA
from vqa_demo.model.families.paligemma.tiny import tiny_paligemma
from vqa_demo.model.families.registry import family_for, tiny_family
from vqa_demo.model.family import BackboneFamily, PatchGrid
from vqa_demo.model.precision import resolve_device
from vqa_demo.model.template_guard import check_chat_template

# Config keys that describe how a model was stored, not which model it is.
_FINGERPRINT_IGNORED = {"_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures"}


@dataclass
class Backbone:
    """A vision-language model with the pieces needed to feed it.

    ``model`` may be wrapped by peft after :func:`add_lora`; ``core`` always points at the underlying
    model (e.g. ``PaliGemmaForConditionalGeneration``; LoRA layers are injected into it in place).
    ``family`` is chosen from the model config's ``model_type``, once.
    """

    model: torch.nn.Module
    processor: object
    source: str
    device: torch.device
    dtype: torch.dtype

    @cached_property
    def family(self) -> BackboneFamily:
        return family_for(self.model.config)

    @property
    def core(self) -> torch.nn.Module:
        model, core_class = self.model, self.family.model_class
        while not isinstance(model, core_class):
            model = model.base_model.model if hasattr(model, "base_model") else model.model
        return model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.processor.tokenizer

    @property
    def image_seq_length(self) -> int:
        """Number of image tokens per image (256 at 224 px for real PaliGemma)."""
        return self.family.image_seq_length(self.processor)

    def patch_grid(self, pixel_values: torch.Tensor) -> PatchGrid | None:
        """The vision tower's patches on one model input ``float[C, H, W]`` (:meth:`pixel_values`' row)."""
        return self.family.patch_grid(self.core, self.processor, pixel_values)

    @property
    def generation(self) -> int:
        """PaliGemma's generation: 1 (Gemma decoder) or 2 (Gemma 2), read from the model config."""
        return 1 if self.core.config.get_text_config().model_type == "gemma" else 2

    @property
    def hidden_size(self) -> int:
        return self.family.hidden_size(self.core)

    def row_encoder(self, separator: str = "\n", max_text_tokens: int = 192):
        """The family's processor-exact row encoder for these prompt settings."""
        return self.family.row_encoder(self.processor, separator=separator, max_text_tokens=max_text_tokens)

    def pixel_values(self, images: Sequence[Image.Image | torch.Tensor]) -> torch.Tensor:
        """The model's image input ``float[B, 3, H, W]`` on :attr:`device`, from the processor.

        An item may already be model input, ``float[3, H, W]`` as this method returns it for one
        image: it is used as it is (the app keeps that instead of a large decoded upload).
        """
        pictures = [img for img in images if not isinstance(img, torch.Tensor)]
        if len(pictures) == len(images):
            return self.family.preprocess(self.processor, pictures).to(self.device)
        expected = self.family.pixel_shape(self.processor)
        for img in images:
            if isinstance(img, torch.Tensor) and tuple(img.shape) != expected:
                raise ValueError(f"pixel values must be float{list(expected)}, got {list(img.shape)}")
        processed = iter(self.pixel_values(pictures) if pictures else [])
        return torch.stack(
            [img.to(self.device) if isinstance(img, torch.Tensor) else next(processed) for img in images]
        )

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.core.config)

    def summary(self) -> dict[str, str]:
        """``{"source", "family", "model"}``: what an evaluation records of this model (e.g. ``PaliGemma 2``)."""
        return {
            "source": self.source,
            "family": self.family.name,
            "model": self.family.describe(self.core.config.to_dict()),
        }


def preprocess_images(processor, images: Sequence[Image.Image]) -> torch.Tensor:
    """``float[B, 3, H, W]`` on the CPU: the processor's resize and normalisation of RGB copies of ``images``.

    The one image preprocessing (PaliGemma's; every family's :meth:`~BackboneFamily.preprocess`
    by default); :meth:`Backbone.pixel_values` adds the device and ready-made inputs.
    """
    return PALIGEMMA.preprocess(processor, images)


def model_fingerprint(config) -> str:
    """A short hash of the architecture config: two bases with different shapes never collide."""
    data = {k: v for k, v in config.to_dict().items() if k not in _FINGERPRINT_IGNORED}
    for sub in ("text_config", "vision_config"):
        if isinstance(data.get(sub), dict):
            data[sub] = {k: v for k, v in data[sub].items() if k not in _FINGERPRINT_IGNORED}
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """fp32 on CPU by default: bf16 is several times slower on CPUs without native support."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def build_tiny_backbone(
    seed: int = 0,
    image_size: int = TINY_IMAGE_SIZE,
    patch_size: int = TINY_PATCH_SIZE,
    generation: int = 2,
    source: str | None = None,
) -> Backbone:
    """A random tiny model: PaliGemma ``generation``'s structure sized by the arguments, or, for a
    ``source`` of another family (``tiny:llava``), that family's tiny model."""
    family = tiny_family(source) if source else None
    if family is not None and family is not PALIGEMMA:
        model, processor = family.build_tiny(source, seed=seed)
        processor = family.fit_processor(model, processor)
    else:
        generation = TINY_GENERATIONS.get(source, generation)
        model, processor = tiny_paligemma(seed, image_size, patch_size, generation)
        source = source or ("tiny:paligemma" if generation == 1 else "tiny")
    return Backbone(model, processor, source, torch.device("cpu"), torch.float32)


def _require_quantization_support(kind: str) -> None:
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"{kind} quantization needs a CUDA GPU (bitsandbytes); this machine has none. "
            "Drop the quantization option to run in float32 on the CPU."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise RuntimeError("Quantization needs bitsandbytes: pip install 'vqa-demo[gpu]'") from err


def _quantization_config(kind: str | None, dtype: torch.dtype, skip: list[str]):
    if kind is None:
        return None
    from transformers import BitsAndBytesConfig

    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    # bnb_4bit_compute_dtype (not "compute_type", which is silently ignored) sets the matmul dtype.
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_use_double_quant=True,
        llm_int8_skip_modules=skip,
    )


def _family_of_base(source: str) -> BackboneFamily:
    try:
        return family_for(AutoConfig.from_pretrained(source))
    except (AttributeError, KeyError, TypeError) as error:  # a config that fits no model class
        raise UnsafeBaseError(
            f"the config.json of base {source} does not describe a model its model_type can build "
            f"({type(error).__name__}: {str(error)[:200]}); restore the base's original config.json"
        ) from None


def load_backbone(cfg: BackboneConfig) -> Backbone:
    """Load the base model and processor described by ``cfg`` (weights only from safetensors)."""
    if tiny_family(cfg.source) is not None:
        backbone = build_tiny_backbone(source=cfg.source)
        if cfg.device != "auto":  # an explicit device (accelerate's, under accelerate launch) is honoured
            backbone.device = resolve_device(cfg.device)
            backbone.model.to(backbone.device)
        return backbone
    source = resolve_backbone_source(cfg.source)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    local = Path(source)
    if local.exists():
        if not (local / "config.json").is_file():
            raise FileNotFoundError(f"{local} has no config.json: not a saved base model directory")
        refuse_pickles(local)
        check_weight_dtypes(local)
    if cfg.quantization is not None:  # before anything is read: the error needs no download
        _require_quantization_support(cfg.quantization)
    family = _family_of_base(source)
    quantization = _quantization_config(cfg.quantization, dtype, list(family.vision_modules))
    kwargs = {"dtype": dtype, "use_safetensors": True}
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        # Under accelerate launch each process holds a whole copy on its own GPU (cfg.device = cuda:i).
        kwargs["device_map"] = "auto" if cfg.device == "auto" else {"": device.index or 0}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    model, processor = family.load_pretrained(source, **kwargs)
    processor = family.fit_processor(model, processor)
    check_chat_template(processor, source)
    if quantization is None:
        model.to(device)
    return Backbone(model, processor, source, device, dtype)


def save_backbone(backbone: Backbone, directory: str | Path) -> Path:
    """Write the base model (safetensors) and processor so :func:`load_backbone` can read it back."""
    if hasattr(backbone.model, "peft_config"):
        raise ValueError(
            "save the base before adding LoRA adapters; adapters are saved per variant (checkpoints.py)"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backbone.core.save_pretrained(directory, safe_serialization=True)
    backbone.processor.save_pretrained(directory)
    return directory


def freeze_vision(backbone: Backbone, frozen: bool = True) -> None:
    """Freeze (or unfreeze) the vision tower and projector base weights; LoRA layers in them
    (``--lora-targets all-linear``) keep training."""
    for module in backbone.family.frozen_modules(backbone.core):
        for name, param in module.named_parameters():
            if "lora_" not in name:
                param.requires_grad_(not frozen)


def lora_scope(settings: LoraSettings) -> str:
    """``all-linear`` when the settings adapt the vision side too, else ``language``."""
    return "all-linear" if settings.vision else "language"


def add_lora(backbone: Backbone, settings: LoraSettings, adapter_name: str = "default"):
    """Wrap the model with a peft LoRA adapter on the language model's linear layers (and, with
    ``settings.vision``, every linear layer the family allows: vision tower and projector too).

    The base weights are frozen; only LoRA matrices train. Heads are separate modules (see heads.py).
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        init_lora_weights=settings.init_weights,
        bias="none",
        **backbone.family.lora_targets(lora_scope(settings), settings.targets),
    )
    if hasattr(backbone.model, "peft_config"):
        backbone.model.add_adapter(adapter_name, config)
        backbone.model.set_adapter(adapter_name)
    else:
        backbone.model = get_peft_model(backbone.core, config, adapter_name=adapter_name)
    freeze_vision(backbone)
    return backbone.model
