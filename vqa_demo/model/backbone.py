"""Load or build the PaliGemma backbone, freeze what stays frozen, and add LoRA.

Three sources, one result (:class:`Backbone`):
- a hub id or preset (``google/paligemma2-3b-pt-448``): the real thing, needs hub access;
- a local directory written by :func:`save_backbone` (the offline default in ``assets/base``);
- ``"tiny:paligemma"`` / ``"tiny:paligemma2"`` (= ``"tiny"``): a random model of PaliGemma 1's
  (Gemma decoder) or PaliGemma 2's (Gemma 2 decoder) structure built in-process, for tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import (
    AutoProcessor,
    Gemma2Config,
    GemmaConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedTokenizerFast,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
)

from vqa_demo.config import (
    TINY_GENERATIONS,
    TINY_IMAGE_SIZE,
    TINY_PATCH_SIZE,
    TINY_SIZE,
    BackboneConfig,
    LoraSettings,
    resolve_backbone_source,
)
from vqa_demo.model.tokenizer import tiny_tokenizer
from vqa_demo.safety import refuse_pickles

# Config keys that describe how a model was stored, not which model it is.
_FINGERPRINT_IGNORED = {"_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures"}


@dataclass
class Backbone:
    """A PaliGemma model with the pieces needed to feed it.

    ``model`` may be wrapped by peft after :func:`add_lora`; ``core`` always points at the underlying
    ``PaliGemmaForConditionalGeneration`` (LoRA layers are injected into it in place).
    """

    model: torch.nn.Module
    processor: PaliGemmaProcessor
    source: str
    device: torch.device
    dtype: torch.dtype

    @property
    def core(self) -> PaliGemmaForConditionalGeneration:
        model = self.model
        while not isinstance(model, PaliGemmaForConditionalGeneration):
            model = model.base_model.model if hasattr(model, "base_model") else model.model
        return model

    @property
    def tokenizer(self) -> PreTrainedTokenizerFast:
        return self.processor.tokenizer

    @property
    def image_seq_length(self) -> int:
        """Number of image tokens per image (256 at 224 px for real PaliGemma)."""
        return int(self.processor.image_seq_length)

    @property
    def generation(self) -> int:
        """1 for PaliGemma (Gemma decoder), 2 for PaliGemma 2 (Gemma 2), read from the model config."""
        return 1 if self.core.config.text_config.model_type == "gemma" else 2

    @property
    def hidden_size(self) -> int:
        return int(self.core.config.text_config.hidden_size)

    def pixel_values(self, images: Sequence[Image.Image | torch.Tensor]) -> torch.Tensor:
        """The model's image input ``float[B, 3, H, W]`` on :attr:`device`, from the processor.

        An item may already be model input, ``float[3, H, W]`` as this method returns it for one
        image: it is used as it is (the app keeps that instead of a large decoded upload).
        """
        pictures = [img for img in images if not isinstance(img, torch.Tensor)]
        if len(pictures) == len(images):
            return preprocess_images(self.processor, pictures).to(self.device)
        size = self.processor.image_processor.size
        expected = (3, size["height"], size["width"])
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


def preprocess_images(processor: PaliGemmaProcessor, images: Sequence[Image.Image]) -> torch.Tensor:
    """``float[B, 3, H, W]`` on the CPU: the processor's resize and normalisation of RGB copies of ``images``.

    The one image preprocessing; :meth:`Backbone.pixel_values` adds the device and ready-made inputs.
    """
    pictures = [img.convert("RGB") for img in images]
    return processor.image_processor(pictures, return_tensors="pt")["pixel_values"]


def model_fingerprint(config: PaliGemmaConfig) -> str:
    """A short hash of the architecture config: two bases with different shapes never collide."""
    data = {k: v for k, v in config.to_dict().items() if k not in _FINGERPRINT_IGNORED}
    for sub in ("text_config", "vision_config"):
        if isinstance(data.get(sub), dict):
            data[sub] = {k: v for k, v in data[sub].items() if k not in _FINGERPRINT_IGNORED}
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """fp32 on CPU by default: bf16 is several times slower on CPUs without native support."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def paligemma_processor(
    tokenizer: PreTrainedTokenizerFast, image_size: int, patch_size: int
) -> PaliGemmaProcessor:
    """A PaliGemma processor around ``tokenizer``: SigLIP preprocessing to ``image_size`` px squares
    (mean and std 0.5, as PaliGemma's) and ``(image_size // patch_size) ** 2`` image tokens.

    The processor adds its 1152 ``<locXXXX>``/``<segXXX>`` tokens to the tokenizer, as the real one has.
    """
    if image_size % patch_size:
        raise ValueError(f"image size {image_size} must be a multiple of the patch size {patch_size}")
    image_processor = SiglipImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_processor.image_seq_length = (image_size // patch_size) ** 2
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_processor(
    image_size: int = TINY_IMAGE_SIZE, patch_size: int = TINY_PATCH_SIZE, generation: int = 2
) -> PaliGemmaProcessor:
    """:func:`paligemma_processor` around the small byte-level test tokenizer.

    As on the hub, PaliGemma 1's tokenizer is configured to add ``<bos>`` itself and PaliGemma 2's
    is not; the processor switches it off either way.
    """
    tokenizer = tiny_tokenizer()
    tokenizer.add_bos_token = generation == 1
    return paligemma_processor(tokenizer, image_size, patch_size)


def paligemma_config(
    processor: PaliGemmaProcessor,
    *,
    generation: int = 2,
    image_size: int,
    patch_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    vision_hidden_size: int,
    vision_layers: int,
    vision_heads: int,
    vision_intermediate_size: int,
) -> PaliGemmaConfig:
    """A PaliGemma config sized by the arguments: SigLIP tower + Gemma 2 decoder (``generation=2``,
    alternating sliding-window layers, logit soft-capping) or Gemma decoder (``generation=1``).

    The vocabulary follows the processor's tokenizer, rounded up to a multiple of 64 as the real
    257 152-token PaliGemma vocabulary is.
    """
    tokenizer = processor.tokenizer
    vocab_size = -(-len(tokenizer) // 64) * 64
    head_dim = hidden_size // num_heads
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if generation == 1:
        text_config = GemmaConfig(
            **common, max_position_embeddings=8192, hidden_activation="gelu_pytorch_tanh"
        )
    else:
        text_config = Gemma2Config(
            **common, query_pre_attn_scalar=head_dim, max_position_embeddings=4096, sliding_window=4096
        )
    vision_config = SiglipVisionConfig(
        hidden_size=vision_hidden_size,
        intermediate_size=vision_intermediate_size,
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_heads,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=hidden_size,
        vision_use_head=False,
    )
    config = PaliGemmaConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_id=processor.image_token_id,
        projection_dim=hidden_size,
    )
    config.text_config.model_type = text_config.model_type
    return config


def paligemma2_config(processor: PaliGemmaProcessor, **sizes) -> PaliGemmaConfig:
    """:func:`paligemma_config` of PaliGemma 2 (Gemma 2 decoder)."""
    return paligemma_config(processor, generation=2, **sizes)


def build_tiny_backbone(
    seed: int = 0,
    image_size: int = TINY_IMAGE_SIZE,
    patch_size: int = TINY_PATCH_SIZE,
    generation: int = 2,
    source: str | None = None,
) -> Backbone:
    """A random model of PaliGemma ``generation``'s structure, sized :data:`~vqa_demo.config.TINY_SIZE`.

    PaliGemma 1 has multi-query attention (one key/value head), PaliGemma 2 grouped queries.
    """
    processor = tiny_processor(image_size, patch_size, generation)
    size = dataclasses.replace(TINY_SIZE, num_kv_heads=1) if generation == 1 else TINY_SIZE
    config = paligemma_config(
        processor,
        generation=generation,
        image_size=image_size,
        patch_size=patch_size,
        **dataclasses.asdict(size),
    )
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    source = source or ("tiny:paligemma" if generation == 1 else "tiny")
    return Backbone(model, processor, source, torch.device("cpu"), torch.float32)


def _quantization_config(kind: str | None, dtype: torch.dtype):
    if kind is None:
        return None
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"{kind} quantization needs a CUDA GPU (bitsandbytes); this machine has none. "
            "Drop the quantization option to run in float32 on the CPU."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise RuntimeError("Quantization needs bitsandbytes: pip install 'vqa-demo[gpu]'") from err
    from transformers import BitsAndBytesConfig

    if kind == "8bit":
        return BitsAndBytesConfig(
            load_in_8bit=True, llm_int8_skip_modules=["vision_tower", "multi_modal_projector"]
        )
    # bnb_4bit_compute_dtype (not "compute_type", which is silently ignored) sets the matmul dtype.
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_use_double_quant=True,
        llm_int8_skip_modules=["vision_tower", "multi_modal_projector"],
    )


def load_backbone(cfg: BackboneConfig) -> Backbone:
    """Load the base model and processor described by ``cfg`` (weights only from safetensors)."""
    if cfg.source in TINY_GENERATIONS:
        backbone = build_tiny_backbone(generation=TINY_GENERATIONS[cfg.source], source=cfg.source)
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
            raise FileNotFoundError(f"{local} has no config.json: not a saved PaliGemma base model directory")
        refuse_pickles(local)
    quantization = _quantization_config(cfg.quantization, dtype)
    kwargs = {"dtype": dtype, "use_safetensors": True}
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        # Under accelerate launch each process holds a whole copy on its own GPU (cfg.device = cuda:i).
        kwargs["device_map"] = "auto" if cfg.device == "auto" else {"": device.index or 0}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    model = PaliGemmaForConditionalGeneration.from_pretrained(source, **kwargs).eval()
    if quantization is None:
        model.to(device)
    processor = AutoProcessor.from_pretrained(source)
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
    """Freeze (or unfreeze) the SigLIP tower and the projector weights (LoRA layers added later train)."""
    core = backbone.core
    for module in (core.model.vision_tower, core.model.multi_modal_projector):
        for param in module.parameters():
            param.requires_grad_(not frozen)


VISION_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def lora_target_regex(targets: tuple[str, ...], vision: bool = False) -> str:
    """Match the targets inside the language model only (SigLIP also has q_proj/k_proj/... layers);
    with ``vision``, also SigLIP's attention/MLP linears and the projector."""
    language = r".*language_model.*\.(" + "|".join(targets) + r")"
    if not vision:
        return language + "$"
    tower = r".*vision_tower.*\.(" + "|".join(VISION_LORA_TARGETS) + r")"
    return rf"({language}|{tower}|.*multi_modal_projector\.linear)$"


def add_lora(backbone: Backbone, settings: LoraSettings, adapter_name: str = "default"):
    """Wrap the model with a peft LoRA adapter on the language model's linear layers (and, with
    ``settings.vision``, on the vision tower and projector).

    The base weights are frozen; only LoRA matrices train. Heads are separate modules (see heads.py).
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_regex(settings.targets, settings.vision),
        init_lora_weights=settings.init_weights,
        bias="none",
    )
    if hasattr(backbone.model, "peft_config"):
        backbone.model.add_adapter(adapter_name, config)
        backbone.model.set_adapter(adapter_name)
    else:
        backbone.model = get_peft_model(backbone.core, config, adapter_name=adapter_name)
    freeze_vision(backbone)
    return backbone.model
