"""Inference with LoRA merged into the weights: ``W + scaling * B @ A`` swapped in per variant.

peft's unmerged forward adds two small matmuls and a handful of ops to every adapted linear
(``y = x W^T + scaling * B(A(x))``); on the tiny default that is about a third of a decoder pass.
Merging the usual way (``merge_adapter`` / ``unmerge_adapter``) subtracts the delta again on
exit, so floating-point error piles up in the base weights with every switch between variants.
Here each adapter's merged weights are computed once into separate tensors and *swapped* in: the
base weights themselves are never written, so switching is exact and O(1).

Each merged copy costs as much memory as the adapted base weights, so this is for small float32
models (the CPU default); bf16/quantized bases and DoRA keep peft's unmerged forward.
The merged copies follow training: they are recomputed when any LoRA tensor of the adapter has
changed since they were built (tensor version counters bump on every in-place update).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

# Merged copies of every adapter together may take at most this much memory by default.
DEFAULT_BUDGET_BYTES = 1 << 30


def lora_linears(model: nn.Module) -> list[nn.Module]:
    """peft LoRA ``Linear`` layers of ``model`` (each wraps a ``base_layer`` ``nn.Linear``)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    return [m for m in model.modules() if isinstance(m, LoraLinear)]


def _version(module: nn.Module, adapter: str) -> tuple[int, ...]:
    tensors = [module.base_layer.weight]
    if adapter in module.lora_A:
        tensors += [module.lora_A[adapter].weight, module.lora_B[adapter].weight]
    return tuple(v for t in tensors for v in (t._version, t.data_ptr()))


class MergedAdapters:
    """Merged weights of each adapter of a peft model, swapped in by :meth:`active`."""

    def __init__(self, model: nn.Module, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.layers = lora_linears(model)
        self.budget_bytes = budget_bytes
        self._merged: dict[str, tuple[tuple, list[nn.Parameter]]] = {}
        self._swapped = False

    def unsupported_reason(self) -> str | None:
        """Why merged inference cannot be used on this model (None if it can)."""
        if not self.layers:
            return "the model has no LoRA layers"
        adapters = set()
        for layer in self.layers:
            base = layer.base_layer
            if type(base) is not nn.Linear:
                return f"{type(base).__name__} base layers (quantized?) cannot hold merged weights"
            if base.weight.dtype != torch.float32:
                return (
                    f"{base.weight.dtype} weights: merging would round differently from the unmerged forward"
                )
            if getattr(layer, "fan_in_fan_out", False) or any(layer.lora_magnitude_vector):
                return "fan-in-fan-out or DoRA layers"
            adapters.update(layer.lora_A.keys())
        need = sum(layer.base_layer.weight.nbytes for layer in self.layers) * len(adapters)
        if need > self.budget_bytes:
            return f"merged copies of {len(adapters)} adapters need {need / 2**20:.0f} MiB (> budget)"
        return None

    def _weights(self, adapter: str) -> list[nn.Parameter]:
        """Merged weight per layer (``float[out, in]``), rebuilt if the adapter or base changed since."""
        version = tuple(_version(layer, adapter) for layer in self.layers)
        cached = self._merged.get(adapter)
        if cached is None or cached[0] != version:
            with torch.no_grad():
                weights = [
                    nn.Parameter(
                        layer.base_layer.weight + layer.get_delta_weight(adapter)
                        if adapter in layer.lora_A
                        else layer.base_layer.weight,
                        requires_grad=False,
                    )
                    for layer in self.layers
                ]
            self._merged[adapter] = (version, weights)
        return self._merged[adapter][1]

    @contextmanager
    def active(self, adapter: str) -> Iterator[None]:
        """Run the model as ``adapter`` with merged weights (the LoRA branch switched off meanwhile)."""
        assert not self._swapped, "merged adapters cannot be nested"
        weights = self._weights(adapter)
        saved = []
        self._swapped = True
        try:
            for layer, weight in zip(self.layers, weights):
                base = layer.base_layer
                # The private flag, not enable_adapters(False): that also flips requires_grad.
                saved.append((layer, base._parameters["weight"], layer._disable_adapters))
                base._parameters["weight"] = weight
                layer._disable_adapters = True
            yield
        finally:
            for layer, original, disabled in saved:
                layer.base_layer._parameters["weight"] = original
                layer._disable_adapters = disabled
            self._swapped = False
