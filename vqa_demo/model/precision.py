"""Serving precision on the CPU: dynamic int8 language model, bf16 or fp32 vision tower.

``--precision`` (:data:`vqa_demo.runtime.PRECISIONS`) resolves to a :class:`PrecisionPlan`:

- ``fp32``: everything fp32 (the training precision; exact).
- ``bf16``: the whole base in bf16 (fast only on CPUs with native bf16, or on CUDA).
- ``int8``: every linear layer of the language model (and the LM head) as a per-channel int8 weight
  with dynamic int8 activations (:class:`Int8Linear`); embeddings, norms and LoRA adapters stay fp32,
  the vision tower stays fp32.
- ``auto``: int8 + bf16 vision on a CPU with native bf16 (AVX512-BF16 / AMX), int8 + fp32 vision on
  other CPUs, bf16 on CUDA.

The five variants share one quantized base: LoRA adapters stay unmerged, in fp32, next to the int8
weights. Merging would need one int8 copy of the language model per variant (about 2.6 GB each at
3B), five of which do not fit a 16 GB machine, and would quantize the adapters' small updates away.
:class:`Int8Linear` is an ``nn.Linear`` to peft, so adapters attach to it as to the fp32 layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from vqa_demo.runtime import PRECISIONS

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class PrecisionPlan:
    """What ``requested`` resolved to: ``language`` int8 | bf16 | fp32, ``vision`` bf16 | fp32."""

    requested: str
    language: str
    vision: str
    reason: str

    @property
    def label(self) -> str:
        """A short name for tables: ``fp32``, ``bf16`` or ``int8+bf16-vision``."""
        if self.language == self.vision:
            return self.language
        return f"{self.language}+{self.vision}-vision"

    @property
    def load_dtype(self) -> torch.dtype:
        """The dtype the weights are read in: bf16 unless the plan is all fp32, so loading never holds
        an fp32 copy of a model that ends up smaller (PaliGemma 2 is published in bf16 anyway)."""
        return torch.float32 if self.label == "fp32" else torch.bfloat16

    def as_dict(self) -> dict:
        return asdict(self) | {"label": self.label}


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16); elsewhere bf16 matmuls
    are emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(requested: str, device: torch.device) -> PrecisionPlan:
    """The plan for ``requested`` (one of :data:`~vqa_demo.runtime.PRECISIONS`) on ``device``."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if device.type != "cpu":
        if requested == "int8":
            raise ValueError("--precision int8 is a CPU precision; on a GPU use auto, bf16 or fp32")
        language = "fp32" if requested == "fp32" else "bf16"
        return PrecisionPlan(requested, language, language, f"{device.type} device")
    if requested == "auto":
        if cpu_has_native_bf16():
            return PrecisionPlan(requested, "int8", "bf16", "CPU with native bf16")
        return PrecisionPlan(requested, "int8", "fp32", "CPU without native bf16")
    vision = "bf16" if requested == "bf16" else "fp32"
    return PrecisionPlan(requested, requested, vision, "requested")


class Int8Linear(nn.Linear):
    """A linear layer with a per-output-channel int8 weight; activations are quantized per call.

    ``x float[..., in] -> float[..., out]``; the weight is packed once for fbgemm's int8 GEMM. To peft
    it is an ``nn.Linear`` (same features); its ``weight`` is a zero-stride int8 view, so peft keeps
    the adapters in their own dtype and device instead of casting them to the base weight's.
    """

    def __init__(self, linear: nn.Linear):
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
        zero = torch.zeros(self.out_features, dtype=torch.long)
        qweight = torch.quantize_per_channel(weight, scale, zero, axis=0, dtype=torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.packed = torch.ops.quantized.linear_prepack(qweight, bias)
        self.register_parameter("bias", None)  # held inside ``packed``

    @property
    def weight(self) -> torch.Tensor:  # noqa: D102 (shape and dtype only; the values live in ``packed``)
        return torch.zeros((), dtype=torch.int8).expand(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reduce_range: fbgemm's int8 kernels on CPUs without VNNI can saturate the 16-bit accumulator.
        return torch.ops.quantized.linear_dynamic(x.float(), self.packed, True)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel"


def quantize_linears(root: nn.Module, names: list[str]) -> int:
    """Replace the ``nn.Linear`` submodules ``names`` of ``root`` by :class:`Int8Linear`, one at a
    time so that only one layer's fp32 copy exists beside the model; returns how many."""
    for name in names:
        linear = root.get_submodule(name)
        root.set_submodule(name, Int8Linear(linear))
        del linear
    return len(names)


def cast_parameters(module: nn.Module, dtype: torch.dtype, recurse: bool = True) -> None:
    """Cast ``module``'s floating parameters and buffers to ``dtype`` one tensor at a time
    (``recurse=False``: its own tensors only, not its submodules')."""
    for sub in module.modules() if recurse else [module]:
        for name, param in list(sub.named_parameters(recurse=False)):
            if param.is_floating_point() and param.dtype != dtype:
                setattr(sub, name, nn.Parameter(param.detach().to(dtype), requires_grad=param.requires_grad))
        for name, buffer in list(sub.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_floating_point() and buffer.dtype != dtype:
                setattr(sub, name, buffer.to(dtype))


def apply_precision(core: nn.Module, plan: PrecisionPlan, vision_modules: tuple[str, ...]) -> dict:
    """Convert a loaded base (before adapters attach) to ``plan``, module by module, in place.

    ``vision_modules`` are ``core.model``'s (or ``core``'s) vision parts (the family's
    :attr:`~vqa_demo.model.family.BackboneFamily.vision_modules`); everything else is the language
    model. An int8 LM head gets its own int8 copy of the (tied) embedding, which keeps its own
    precision. Returns the plan and what was done, for the model card and the metrics.
    """
    holder = getattr(core, "model", core)
    vision = [holder.get_submodule(n) for n in vision_modules if hasattr(holder, n)]
    in_vision = {id(m) for part in vision for m in part.modules()}
    quantized = 0
    if plan.language == "int8":
        names = [
            name
            for name, module in core.named_modules()
            if type(module) is nn.Linear and id(module) not in in_vision
        ]
        quantized = quantize_linears(core, names)
    language_dtype = torch.float32 if plan.language == "int8" else DTYPES[plan.language]
    for part in vision:
        cast_parameters(part, DTYPES[plan.vision])
    for module in core.modules():
        if id(module) not in in_vision:
            cast_parameters(module, language_dtype, recurse=False)
    return plan.as_dict() | {"quantized_linears": quantized}
