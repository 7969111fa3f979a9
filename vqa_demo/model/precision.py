"""Serving precision on the CPU: dynamic int8 language model, bf16 or fp32 vision tower.

``--precision`` (:data:`vqa_demo.runtime.PRECISIONS`) resolves to a :class:`PrecisionPlan`:

- ``fp32``: everything fp32 (the training precision; exact).
- ``bf16``: the whole base in bf16 (fast only on CPUs with native bf16, or on CUDA).
- ``int8``: every linear layer of the language model as a per-channel int8 weight with dynamic
  per-token int8 activations (:class:`Int8Linear`), except the outlier layers
  (:data:`OUTLIER_LAYERS`): bf16 weights and activations (:class:`Bf16Linear`) on a CPU with native
  bf16, int8 weights with fp32 activations elsewhere. The LM head (tied to the embedding) stays fp32,
  except on a CPU with native bf16, where it gets its own bf16 copy (:func:`bf16_output_layer`);
  embeddings, norms and LoRA adapters stay fp32, the vision tower stays fp32. The variants' score
  heads and attentive pooling live in their checkpoints, not the base, and stay fp32 too.
- ``auto``: int8 + bf16 vision on a CPU with native bf16 (AVX512-BF16 / AMX), int8 + fp32 vision on
  other CPUs, bf16 on CUDA.

The five variants share one quantized base: LoRA adapters stay unmerged, in fp32, next to the int8
weights. Merging would need one int8 copy of the language model per variant (about 2.6 GB each at
3B), five of which do not fit a 16 GB machine, and would quantize the adapters' small updates away.
:class:`Int8Linear` and :class:`Bf16Linear` are ``nn.Linear`` to peft, so adapters attach to them as
to the fp32 layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from vqa_demo.runtime import PRECISIONS

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA where available, else the CPU; any other name as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class PrecisionPlan:
    """What ``requested`` resolved to: ``language`` int8 | bf16 | fp32, ``vision`` bf16 | fp32."""

    requested: str
    language: str
    vision: str
    reason: str
    # How an int8 plan keeps the outlier layers (OUTLIER_LAYERS): "bf16" (weights and activations, on
    # a CPU with native bf16) or "int8-weight" (int8 weights, fp32 activations).
    outliers: str = "int8-weight"

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
            return PrecisionPlan(requested, "int8", "bf16", "CPU with native bf16", "bf16")
        return PrecisionPlan(requested, "int8", "fp32", "CPU without native bf16")
    vision = "bf16" if requested == "bf16" else "fp32"
    outliers = "bf16" if requested == "int8" and cpu_has_native_bf16() else "int8-weight"
    return PrecisionPlan(requested, requested, vision, "requested", outliers)


# Layers whose inputs carry a few outlier channels (Gemma's gated MLP product): int8 activations there
# moved the shipped default's classifier choices most (benchmarks/serving.py --agreement-only measures
# every layer's error), so they never get int8 activations: bf16 weights and activations where the CPU
# multiplies bf16 natively (floating point keeps outliers; 3x faster than the int8 weight converted
# to fp32 per call), int8 weights multiplied in fp32 elsewhere.
OUTLIER_LAYERS = ("down_proj",)


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` whose weight is kept in another form by a subclass (``in_features``,
    ``out_features`` and ``bias`` as usual). Its ``weight`` is a zero-stride int8 view of the right
    shape: peft moves a new adapter to a floating base weight's dtype, and a non-floating one keeps
    the adapters in their own dtype (fp32)."""

    @property
    def weight(self) -> torch.Tensor:  # noqa: D102 (shape and dtype only; the values live elsewhere)
        return torch.zeros((), dtype=torch.int8).expand(self.out_features, self.in_features)


class Bf16Linear(PackedLinear):
    """A linear layer computed in bf16: ``x float[..., in] -> float[..., out]``, the bf16 weight
    ``float[out, in]`` times bf16 activations, accumulated in fp32 by the CPU's bf16 instructions; torch
    returns the product rounded to bf16 (8 significant bits: steps of 0.125 at logits of 16-32), which
    is returned as fp32 with the bias added in fp32. Differentiable (attributions)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        nn.Module.__init__(self)
        self.out_features, self.in_features = weight.shape
        self.register_buffer("bf16_weight", weight.detach().to(torch.bfloat16))
        self.register_parameter("bias", None if bias is None else nn.Parameter(bias.detach().float(), False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.linear(x.to(torch.bfloat16), self.bf16_weight).float()
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bf16 weight and activations"
        )


class Int8Linear(PackedLinear):
    """A linear layer with a per-output-channel int8 weight and, unless ``weight_only``, per-row
    (per-token) dynamic int8 activations.

    ``x float[..., in] -> float[..., out]``. Dynamic: the weight is packed once for fbgemm's int8 GEMM;
    fbgemm quantizes activations with one scale per call, so one outlier token (image tokens,
    ``<bos>``) would coarsen every other row's steps: each row is divided by its own largest magnitude
    first and the output multiplied back, which makes the call's scale a per-row one (exact, as the
    layer is linear). Weight-only: the int8 weight is multiplied in fp32 and the output scaled per
    channel (int8 memory, activation error 0; see :meth:`weight_only_forward`). To peft it is an ``nn.Linear`` (same features); its
    ``weight`` is a zero-stride int8 view, so peft keeps the adapters in their own dtype and device.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, weight_only: bool = False):
        """From ``weight float[out, in]`` (any floating dtype) and ``bias float[out]``."""
        nn.Module.__init__(self)
        self.out_features, self.in_features = weight.shape
        self.weight_only = weight_only
        weight = weight.detach().float()
        scale = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        if weight_only:
            self.register_buffer("qweight", torch.round(weight / scale[:, None]).to(torch.int8))
            self.register_buffer("scale", scale[:, None])
        else:
            zero = torch.zeros(self.out_features, dtype=torch.long)
            qweight = torch.quantize_per_channel(weight, scale.double(), zero, axis=0, dtype=torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(qweight, None)
        self.register_parameter("bias", None if bias is None else nn.Parameter(bias.detach().float(), False))

    @classmethod
    def from_linear(cls, linear: nn.Linear, weight_only: bool = False) -> Int8Linear:
        return cls(linear.weight, linear.bias, weight_only)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if torch.is_grad_enabled() and x.requires_grad:
            return DequantizedGradient.apply(x, self)  # attributions: quantized kernels have no backward
        if self.weight_only:
            return self.weight_only_forward(x)
        row_scale = torch.linalg.vector_norm(x, ord=float("inf"), dim=-1, keepdim=True).clamp(min=1e-12)
        # reduce_range: fbgemm's int8 kernels on CPUs without VNNI can saturate the 16-bit accumulator.
        # In place on the fresh output: at SWAG's thousand-row batches each copy is a 40 MB allocation.
        out = torch.ops.quantized.linear_dynamic(x / row_scale, self.packed, True).mul_(row_scale)
        return out if self.bias is None else out.add_(self.bias)

    def dequantized_weight(self) -> torch.Tensor:
        """The weight the int8 one stands for, ``float[out, in]`` (a fresh fp32 copy)."""
        if self.weight_only:
            return self.qweight.float() * self.scale
        return torch.ops.quantized.linear_unpack(self.packed)[0].dequantize()

    def weight_only_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x float[..., in] -> float[..., out]`` with the int8 weight: ``(x @ q.T) * scale``, the scale
        applied to the output (exact: one scale per output channel), which halves the per-call cost of
        converting the weight; one row at a time (a generation step), torch's int8 weight-only kernel
        when it has one, which never converts the weight (about 3x faster again at 3B widths)."""
        scale = self.scale[:, 0]
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] == 1 and hasattr(torch, "_weight_int8pack_mm"):
            out = torch._weight_int8pack_mm(rows.contiguous(), self.qweight, scale)
        else:
            out = nn.functional.linear(rows, self.qweight.float()) * scale
        out = out.reshape(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        activations = "fp32 activations" if self.weight_only else "per-token int8 activations"
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight, {activations}"


class DequantizedGradient(torch.autograd.Function):
    """:class:`Int8Linear`'s output with a gradient: the int8 forward, and the backward of the linear
    map it computes, ``x -> x @ W.T`` with ``W`` the dequantized weight (fbgemm's quantized kernels
    have none: without this an attribution's gradient flowed through the per-row scales alone).
    ``x float[..., in] -> float[..., out]``; the weight and bias stay frozen."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: Int8Linear) -> torch.Tensor:
        ctx.layer = layer
        with torch.no_grad():
            return layer(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad @ ctx.layer.dequantized_weight(), None


def is_outlier_layer(name: str) -> bool:
    """Whether the linear layer ``name`` is one of :data:`OUTLIER_LAYERS`."""
    return name.rsplit(".", 1)[-1] in OUTLIER_LAYERS


def serving_linear(
    name: str, weight: torch.Tensor, bias: torch.Tensor | None, plan: PrecisionPlan
) -> PackedLinear:
    """The int8 plan's layer for the language-model linear ``name`` (``weight float[out, in]``, any
    floating dtype): :class:`Int8Linear` with int8 activations, or for an outlier layer the plan's
    ``outliers`` form (:class:`Bf16Linear`, or :class:`Int8Linear` with fp32 activations)."""
    if not is_outlier_layer(name):
        return Int8Linear(weight, bias)
    if plan.outliers == "bf16":
        return Bf16Linear(weight, bias)
    return Int8Linear(weight, bias, weight_only=True)


def output_layer(core: nn.Module) -> nn.Module | None:
    """``core``'s output layer (the LM head), or None for a model without output embeddings."""
    return core.get_output_embeddings() if hasattr(core, "get_output_embeddings") else None


def language_linears(core: nn.Module, vision_modules: tuple[str, ...]) -> list[str]:
    """Names of ``core``'s ``nn.Linear`` layers that int8 replaces: the language model's, not the
    vision parts' nor the output layer (the LM head, tied to the embedding: int8 activations would move
    COND_GEN's log-likelihoods most; :func:`bf16_output_layer` decides its precision)."""
    vision = vision_module_ids(core, vision_modules)
    output = output_layer(core)
    return [
        name
        for name, module in core.named_modules()
        if type(module) is nn.Linear and id(module) not in vision and module is not output
    ]


def vision_module_ids(core: nn.Module, vision_modules: tuple[str, ...]) -> set[int]:
    """``id`` of every module inside ``core``'s vision parts (``vision_modules`` under ``core.model``)."""
    holder = getattr(core, "model", core)
    parts = [holder.get_submodule(n) for n in vision_modules if hasattr(holder, n)]
    return {id(m) for part in parts for m in part.modules()}


def quantize_linears(root: nn.Module, names: list[str], plan: PrecisionPlan) -> int:
    """Replace the ``nn.Linear`` submodules ``names`` of ``root`` by their :func:`serving_linear`, one
    at a time so that only one layer's fp32 copy exists beside the model; returns how many."""
    for name in names:
        linear = root.get_submodule(name)
        root.set_submodule(name, serving_linear(name, linear.weight, linear.bias, plan))
        del linear
    return len(names)


def cast_parameters(
    module: nn.Module, dtype: torch.dtype, recurse: bool = True, done: dict | None = None
) -> None:
    """Cast ``module``'s floating parameters and buffers to ``dtype`` one tensor at a time
    (``recurse=False``: its own tensors only, not its submodules'). ``done`` maps parameters already
    cast (by ``id``, kept alive beside) to their copies, so a tied parameter (embedding and LM head)
    stays one tensor."""
    done = {} if done is None else done
    for sub in module.modules() if recurse else [module]:
        for name, param in list(sub.named_parameters(recurse=False)):
            if id(param) in done:
                setattr(sub, name, done[id(param)][1])
            elif param.is_floating_point() and param.dtype != dtype:
                cast = nn.Parameter(param.detach().to(dtype), requires_grad=param.requires_grad)
                done[id(param)] = (param, cast)
                setattr(sub, name, cast)
        for name, buffer in list(sub.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_floating_point() and buffer.dtype != dtype:
                setattr(sub, name, buffer.to(dtype))


def bf16_output_layer(core: nn.Module, plan: PrecisionPlan) -> bool:
    """Give an int8 plan whose outliers are bf16 (a CPU with native bf16) an LM head computed in bf16:
    its own bf16 copy of the output weight (:class:`Bf16Linear`, 2.6x faster than fp32 at Gemma's
    256k vocabulary, the weights being bf16 in the published checkpoints), while the embedding it was
    tied to stays fp32 for exact lookups. Returns whether it did (after the weights are tied)."""
    output = output_layer(core)
    if plan.language != "int8" or plan.outliers != "bf16" or type(output) is not nn.Linear:
        return False
    core.set_output_embeddings(Bf16Linear(output.weight, output.bias))
    return True


def language_dtype(plan: PrecisionPlan) -> torch.dtype:
    """The dtype of the language model's remaining tensors (embedding, norms): fp32 beside int8."""
    return torch.float32 if plan.language == "int8" else DTYPES[plan.language]


def apply_precision(core: nn.Module, plan: PrecisionPlan, vision_modules: tuple[str, ...]) -> dict:
    """Convert a loaded base (before adapters attach) to ``plan``, module by module, in place.

    ``vision_modules`` are ``core.model``'s (or ``core``'s) vision parts (the family's
    :attr:`~vqa_demo.model.family.BackboneFamily.vision_modules`); everything else is the language
    model (:func:`language_linears` says which layers int8 replaces). Returns the plan and what was
    done, for the model card and the metrics.
    """
    in_vision = vision_module_ids(core, vision_modules)
    quantized = (
        quantize_linears(core, language_linears(core, vision_modules), plan) if plan.language == "int8" else 0
    )
    done: dict = {}
    for module in core.modules():
        if isinstance(module, PackedLinear):
            continue  # already in its serving form
        dtype = DTYPES[plan.vision] if id(module) in in_vision else language_dtype(plan)
        cast_parameters(module, dtype, recurse=False, done=done)
    return summary(plan, quantized, bf16_head=bf16_output_layer(core, plan))


def summary(plan: PrecisionPlan, quantized: int, streamed: bool = False, bf16_head: bool = False) -> dict:
    """What a conversion did, for the model card and ``metrics.json``."""
    return plan.as_dict() | {"quantized_linears": quantized, "streamed": streamed, "bf16_lm_head": bf16_head}
