"""Checks on a base model's weights, so a corrupted base is refused instead of answering at random.

transformers loads a base whose tensors are missing, renamed (a ``model_type`` switched to another
family) or of the wrong shape with random weights behind a warning, casts integer tensors to the
model's dtype silently, and lets NaN through to every score. Each of these is refused here with one
sentence: the file headers before loading (dtype, nothing is read but the headers), the loading
report and every floating tensor after it (min and max only, no copy of the weights).
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

# safetensors dtype names of floating tensors (8-bit floats included; integer ones are refused)
FLOATING_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4"})
LISTED = 3


class UnsafeBaseError(ValueError):
    """A base model (or its chat template) that would load wrong; the message says what to change."""


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def check_weight_dtypes(folder: str | Path) -> None:
    """Refuse a saved base whose safetensors files hold integer or boolean tensors (headers only)."""
    folder = Path(folder)
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(path, "pt") as handle:
                dtypes = {name: handle.get_slice(name).get_dtype() for name in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as error:
            raise UnsafeBaseError(f"{path} is not a readable safetensors file ({error})") from None
        wrong = sorted(f"{name} ({dtype})" for name, dtype in dtypes.items() if dtype not in FLOATING_DTYPES)
        if wrong:
            raise UnsafeBaseError(
                f"{path} holds non-floating weight tensors: {_listed(wrong)}; a base's weights must be "
                "floating point (F32, BF16, F16): save the base again with save_pretrained"
            )


def check_loading_info(info: dict, source: str) -> None:
    """Refuse a load that left weights missing, unused or of the wrong shape (``output_loading_info``)."""
    problems = {
        "missing_keys": "has no weights for",
        "unexpected_keys": "holds weights the model does not have:",
        "mismatched_keys": "holds weights of the wrong shape for",
    }
    for kind, says in problems.items():
        names = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get(kind) or [])
        if names:
            raise UnsafeBaseError(
                f"the base {source} {says} {_listed(names)}; they would be random, so it is refused: give "
                "a complete checkpoint whose config.json model_type names the family it was saved from"
            )


def check_finite(model: torch.nn.Module, source: str) -> None:
    """Refuse a model whose floating parameters or buffers hold NaN or infinity (min and max per tensor)."""
    for name, tensor in chain(model.named_parameters(), model.named_buffers()):
        if not tensor.is_floating_point() or tensor.numel() == 0 or tensor.device.type == "meta":
            continue
        low, high = torch.aminmax(tensor.detach())
        if not bool(torch.isfinite(low) and torch.isfinite(high)):
            raise UnsafeBaseError(
                f"the base {source} has NaN or infinite values in {name}; every answer would be "
                "meaningless, so it is refused: restore the base from its original files"
            )


def check_family(family: str, recorded: str | None, source: str) -> None:
    """Refuse a base of another family than the one a variant was trained on (``recorded``)."""
    if recorded is not None and recorded != family:
        raise UnsafeBaseError(
            f"the base {source} is a {family} model (its config.json model_type), but the variants were "
            f"trained on a {recorded} base; give the base they were trained on"
        )
