"""Validation of a variant directory's files before anything is built from them.

Pickle-format files anywhere in a checkpoint or base folder are refused by name before anything
could unpickle them (:func:`refuse_pickles`).

Every check raises :class:`CheckpointError` naming the file and the problem. The JSON files are
size-capped before parsing and depth-capped after; the safetensors files are opened through their
header only (a pickle, an empty or a cut-off file fails there) and every tensor must be a finite
floating-point array of the expected shape. ``adapter_config.json`` may only describe plain LoRA:
options that rewrite the shared base weights when the adapter is loaded (PiSSA, OLoRA, LoftQ, CorDA,
EVA initialisation) or change the adapter's maths (DoRA, trainable tokens, layer replication...)
would silently change every other variant's answers, so they are refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from vqa_demo.config import MAX_LORA_RANK
from vqa_demo.json_files import read_json_object as read_bounded_json
from vqa_demo.run_folders import CheckpointError

MAX_JSON_BYTES = 1024 * 1024
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

# init_lora_weights values that only initialise the LoRA matrices themselves (peft's others read and
# rewrite the base layer's weights at load time).
SAFE_LORA_INITS = (True, False, "gaussian")
# peft fields that must be unset (null, false, empty): each changes the maths or the base model.
UNSUPPORTED_PEFT_FIELDS = (
    "use_dora",
    "use_rslora",
    "use_qalora",
    "use_bdlora",
    "lora_bias",
    "fan_in_fan_out",
    "layer_replication",
    "trainable_token_indices",
    "modules_to_save",
    "target_parameters",
    "alora_invocation_tokens",
    "megatron_config",
    "loftq_config",
    "eva_config",
    "corda_config",
    "lora_ga_config",
    "kasa_config",
    "velora_config",
    "monteclora_config",
    "arrow_config",
)
LORA_KEY = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight")


def read_json_object(path: Path, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """Parse ``path`` as one JSON object of at most ``max_bytes`` bytes (:func:`vqa_demo.json_files.read_json_object`)."""
    return read_bounded_json(path, max_bytes, error=CheckpointError)


def check_adapter_config(path: Path) -> dict[str, Any]:
    """Refuse anything in ``adapter_config.json`` other than plain LoRA; returns the parsed object."""
    data = read_json_object(path)

    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: {problem}")

    if data.get("peft_type") != "LORA":
        raise refuse(f"peft_type {data.get('peft_type')!r} is not supported; only plain LoRA ('LORA') is")
    init = data.get("init_lora_weights", True)
    if not any(init is safe or (isinstance(init, str) and init == safe) for safe in SAFE_LORA_INITS):
        raise refuse(
            f"init_lora_weights {init!r} rewrites the shared base model's weights when loaded and is "
            "refused; set it to true"
        )
    unknown = sorted(set(data) - _lora_config_fields())
    if unknown:
        raise refuse(f"unknown field(s) {', '.join(unknown[:5])} are not supported by this peft version")
    for name in UNSUPPORTED_PEFT_FIELDS:
        if data.get(name):
            raise refuse(f"{name}={data[name]!r:.60} is not supported; remove it (plain LoRA only)")
    if data.get("bias", "none") != "none":
        raise refuse(f"bias={data['bias']!r} would change the shared base's biases; set it to 'none'")
    _check_number(path, "r", data.get("r"), 1, MAX_LORA_RANK, integer=True)
    _check_number(path, "lora_alpha", data.get("lora_alpha"), 1e-6, 1e6)
    _check_number(path, "lora_dropout", data.get("lora_dropout", 0.0), 0.0, 0.99)
    for pattern, low, high in (("rank_pattern", 1, MAX_LORA_RANK), ("alpha_pattern", 1e-6, 1e6)):
        values = data.get(pattern) or {}
        if not isinstance(values, dict):
            raise refuse(f"{pattern} must be an object")
        for key, value in values.items():
            _check_number(path, f"{pattern}[{key!r}]", value, low, high, integer=pattern == "rank_pattern")
    targets = data.get("target_modules")
    if not (
        isinstance(targets, str) or (isinstance(targets, list) and all(isinstance(t, str) for t in targets))
    ):
        raise refuse("target_modules must be a regular expression or a list of module names")
    return data


@cache
def _lora_config_fields() -> frozenset[str]:
    """The installed peft's ``LoraConfig`` fields, read from its source where it has the expected layout:
    importing peft imports transformers, two seconds of the app's start-up before any model is needed.
    Otherwise from the imported class."""
    fields = _source_dataclass_fields("peft", LORA_CONFIG_CLASSES)
    if fields:
        return fields
    import dataclasses

    from peft import LoraConfig

    return frozenset(f.name for f in dataclasses.fields(LoraConfig))


# peft's LoraConfig and its dataclass bases: the module file that defines each, and its bases there.
LORA_CONFIG_CLASSES = {
    "PeftConfigMixin": ("config.py", ("PushToHubMixin",)),
    "PeftConfig": ("config.py", ("PeftConfigMixin",)),
    "LoraConfig": ("tuners/lora/config.py", ("PeftConfig",)),
}


def _source_dataclass_fields(
    package: str, classes: Mapping[str, tuple[str, tuple[str, ...]]]
) -> frozenset[str] | None:
    """The dataclass fields of ``classes`` (name -> module file, bases) in an installed package's source,
    found without importing it: the annotated names of each class body, ``ClassVar`` and ``InitVar``
    left out. None, so that the caller imports the package instead, unless every class is defined once
    at the top of its file, decorated with ``@dataclass``, with exactly the expected bases (a new base
    could add fields) and its annotations directly in its body (not under an ``if``)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    fields: set[str] = set()
    for name, (module_file, bases) in classes.items():
        try:
            tree = ast.parse((root / module_file).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            return None
        found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
        if len(found) != 1 or tuple(ast.unparse(b) for b in found[0].bases) != bases:
            return None
        body = found[0].body
        decorators = {ast.unparse(d).split("(")[0] for d in found[0].decorator_list}
        if not decorators & {"dataclass", "dataclasses.dataclass"}:
            return None
        compound = [
            s for s in body if not isinstance(s, (ast.AnnAssign, ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        if any(isinstance(n, ast.AnnAssign) for s in compound for n in ast.walk(s)):
            return None
        for node in body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                annotation = ast.unparse(node.annotation)
                if "ClassVar" not in annotation and "InitVar" not in annotation:
                    fields.add(node.target.id)
    return frozenset(fields)


def _check_number(path: Path, name: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise CheckpointError(
            f"{path}: {name} must be {'an integer' if integer else 'a number'}, got {value!r:.40}"
        )
    if not low <= value <= high:
        raise CheckpointError(f"{path}: {name} must be between {low:g} and {high:g}, got {value!r}")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file whose tensors are all finite floats; names the first bad one."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty")
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (cut off, or another format such as a pickle): {error}"
        ) from None
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors")
    for name, tensor in tensors.items():
        if tensor.dtype not in FLOAT_DTYPES:
            raise CheckpointError(
                f"{path}: tensor '{name}' has dtype {tensor.dtype}; weights must be floating point"
            )
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor '{name}' contains NaN or infinite values")
    return tensors


def check_adapter_weights(
    path: Path, adapter_config: Mapping[str, Any], base: torch.nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Check ``adapter_model.safetensors``: LoRA A/B pairs of the configured ranks, on ``base``'s linears.

    ``lora_A`` is ``float[r, in_features]`` and ``lora_B`` ``float[out_features, r]``; with ``base``
    (the un-wrapped model) each module must exist there as a linear layer of those sizes, so a file
    whose tensors are mis-named is refused instead of being loaded as no LoRA at all.
    """
    tensors = read_tensors(path)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        match = LORA_KEY.fullmatch(name)
        if match is None or tensor.dim() != 2:
            raise CheckpointError(f"{path}: tensor '{name}' is not a LoRA A/B weight matrix")
        pairs.setdefault(match["module"], {})[match["part"]] = tensor
    ranks = adapter_config.get("rank_pattern") or {}
    for module, parts in pairs.items():
        if set(parts) != {"A", "B"}:
            raise CheckpointError(f"{path}: module '{module}' has lora_{''.join(parts)} but not its pair")
        rank = next(
            (r for key, r in ranks.items() if re.search(rf"(^|\.){key}$", module)), adapter_config["r"]
        )
        a, b = parts["A"], parts["B"]
        if a.shape[0] != rank or b.shape[1] != rank:
            raise CheckpointError(
                f"{path}: module '{module}' has LoRA rank {a.shape[0]}/{b.shape[1]}, but adapter_config.json says r={rank}"
            )
        if base is not None:
            _check_target(path, base, module, in_features=a.shape[1], out_features=b.shape[0])
    return tensors


def _check_target(
    path: Path, base: torch.nn.Module, module: str, in_features: int, out_features: int
) -> None:
    try:
        layer = base.get_submodule(module)
    except AttributeError:
        layer = None
    if not isinstance(layer, torch.nn.Linear):
        raise CheckpointError(f"{path}: '{module}' is not a linear layer of the loaded base model")
    if (layer.in_features, layer.out_features) != (in_features, out_features):
        raise CheckpointError(
            f"{path}: '{module}' is {layer.in_features}->{layer.out_features} in the base, "
            f"but its LoRA weights are {in_features}->{out_features}"
        )


def check_head_tensors(path: Path, expected: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Check ``head.safetensors``; with ``expected`` (a built head's state dict) names and shapes too."""
    state = read_tensors(path)
    if expected is None:
        return state
    problems = [f"missing tensor '{k}'" for k in expected if k not in state]
    problems += [f"unexpected tensor '{k}'" for k in state if k not in expected]
    problems += [
        f"'{k}' has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(problems))
    return state


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint directory contains a file format that can execute code when loaded."""


def refuse_pickles(directory: str | Path) -> None:
    """Raise :class:`UnsafeCheckpointError` naming every pickle-format file under ``directory``.

    Only file names are inspected; nothing is opened.
    """
    directory = Path(directory)
    found = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        names = ", ".join(str(p.relative_to(directory)) for p in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        raise UnsafeCheckpointError(
            f"{directory} contains pickle-format files ({names}{more}); they can run arbitrary code when "
            "loaded and are refused. Convert them to safetensors (save_pretrained(..., safe_serialization=True))."
        )
