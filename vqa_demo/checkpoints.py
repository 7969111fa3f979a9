"""Save and load one trained variant: a self-describing directory, safetensors only.

Layout::

    variant_dir/
      run_config.json            RunConfig: head, pooling, prompt format, K, LoRA and training settings,
                                 base model fingerprint, metrics
      adapter_config.json        peft LoRA config
      adapter_model.safetensors  LoRA weights
      head.safetensors           pooling + classifier weights (absent for cond_gen, which uses the LM head)

Variants trained on the same base share one base model directory. Saving is atomic (write to a
temporary sibling, then rename), so a run killed mid-save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from vqa_demo.base_ref import record_base, resolve_recorded_base
from vqa_demo.checkpoint_checks import (
    CheckpointError,
    UnsafeCheckpointError,
    check_adapter_config,
    check_adapter_weights,
    check_head_tensors,
    read_json_object,
    refuse_pickles,
)
from vqa_demo.config import RunConfig
from vqa_demo.model.head_traits import HEAD_TRAITS
from vqa_demo.run_folders import RUN_CONFIG

if TYPE_CHECKING:
    from vqa_demo.model.backbone import Backbone

HEAD_FILE = "head.safetensors"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")

__all__ = [
    "CheckpointError",
    "adapter_name",
    "atomic_directory",
    "check_variant_dir",
    "load_variants",
    "read_run_config",
    "save_tensors",
    "save_variant",
    "variant_name_for",
    "write_run_config",
]


def save_variant(
    directory: str | Path, config: RunConfig, backbone: Backbone, head: nn.Module | None, adapter: str
) -> Path:
    """Write the variant's adapter ``adapter`` (from the peft-wrapped backbone), head and config."""
    directory = Path(directory)
    config.base_fingerprint = backbone.fingerprint
    if config.base_hash is None:  # recorded once, from the working directory the base was loaded in
        config.backbone.source, config.base_hash = record_base(config.backbone.source)
    with atomic_directory(directory) as staging:
        backbone.model.save_pretrained(staging / "peft", selected_adapters=[adapter], safe_serialization=True)
        # peft writes non-default adapters into a sub-folder named after them.
        saved = staging / "peft" / adapter if adapter != "default" else staging / "peft"
        for name in ADAPTER_FILES:
            shutil.move(str(saved / name), staging / name)
        shutil.rmtree(staging / "peft")
        if head is not None:
            save_tensors(head.state_dict(), staging / HEAD_FILE)
        write_run_config(staging, config)
    return directory


def save_tensors(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Write ``tensors`` (a state dict) as a safetensors file, from contiguous CPU copies."""
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, path)


@contextlib.contextmanager
def atomic_directory(directory: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``directory``; once the block ends, it replaces ``directory``.

    An exception while writing leaves the previous ``directory`` whole and removes the staging folder;
    a kill leaves at most a hidden staging sibling. A reader never sees a half-written ``directory``.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        yield staging
        _replace_dir(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_dir(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``; an existing ``target`` is swapped out, then removed."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


def read_run_config(directory: str | Path) -> RunConfig:
    """Parse and validate ``run_config.json`` (size-capped, typed, ranges checked)."""
    directory = Path(directory)
    path = directory / RUN_CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a variant checkpoint: {RUN_CONFIG} is missing")
    data = read_json_object(path)
    try:
        return RunConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not a valid run config: {err}") from err


def resolve_base(base: str | Path | None, checkpoint: Path) -> str:
    """The base to load: given explicitly, else the one the run recorded (:mod:`vqa_demo.base_ref`)."""
    if base is not None:
        return str(base)
    config = read_run_config(checkpoint)
    return resolve_recorded_base(config.backbone.source, config.base_hash, checkpoint)


def write_run_config(directory: str | Path, config: RunConfig) -> Path:
    """Write ``config`` as ``directory/run_config.json`` (the file :func:`read_run_config` reads)."""
    path = Path(directory) / RUN_CONFIG
    path.write_text(json.dumps(config.to_dict(), indent=2))
    return path


def check_variant_dir(directory: str | Path, backbone: Backbone | None = None) -> RunConfig:
    """Validate every file of a variant directory without building anything; returns its config.

    Refuses pickle files (before anything is opened), names missing files, checks the JSON files and
    every tensor (see :mod:`vqa_demo.checkpoint_checks`). With ``backbone`` also checks that the
    variant was trained on it, that its LoRA weights fit its linear layers and the head's shapes.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    refuse_pickles(directory)
    config = read_run_config(directory)
    has_module = HEAD_TRAITS[config.head.head].has_module
    required = list(ADAPTER_FILES) + ([HEAD_FILE] if has_module else [])
    missing = [name for name in required if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(f"{directory} is missing {', '.join(missing)}")
    if backbone is not None and config.base_fingerprint and config.base_fingerprint != backbone.fingerprint:
        raise CheckpointError(
            f"{directory} was trained on base '{config.backbone.source}' (fingerprint {config.base_fingerprint}), "
            f"but the loaded base is '{backbone.source}' (fingerprint {backbone.fingerprint}); "
            "load the base it was trained on"
        )
    adapter_config = check_adapter_config(directory / ADAPTER_FILES[0])
    check_adapter_weights(
        directory / ADAPTER_FILES[1], adapter_config, backbone.core if backbone is not None else None
    )
    if has_module:
        expected = None
        if backbone is not None:
            from vqa_demo.model.strategies import build_head

            expected = build_head(config.head, backbone.hidden_size).state_dict()
        check_head_tensors(directory / HEAD_FILE, expected)
    return config


def load_head(directory: str | Path, config: RunConfig, hidden_size: int) -> nn.Module | None:
    """Build the head described by ``config`` and load ``head.safetensors`` into it, checking shapes."""
    from vqa_demo.model.strategies import build_head

    head = build_head(config.head, hidden_size)
    if head is None:
        return None
    path = Path(directory) / HEAD_FILE
    try:
        state = check_head_tensors(path, head.state_dict())
    except CheckpointError as error:
        raise CheckpointError(
            f"{error} (run config: {config.variant}, K={config.head.num_options}, hidden size {hidden_size})"
        ) from None
    head.load_state_dict(state)
    return head.eval()


def attach_adapter(backbone: Backbone, directory: str | Path, adapter: str) -> None:
    """Load the LoRA adapter in ``directory`` into the shared base under the name ``adapter``.

    Afterwards the adapter's weights in the model must be exactly the file's tensors (peft only warns
    about keys it could not place); otherwise the adapter is removed again and CheckpointError raised.
    """
    from peft import PeftModel, get_peft_model_state_dict

    first = not hasattr(backbone.model, "peft_config")
    if first:
        backbone.model = PeftModel.from_pretrained(
            backbone.core, str(directory), adapter_name=adapter, is_trainable=False
        )
    else:
        backbone.model.load_adapter(str(directory), adapter_name=adapter, is_trainable=False)
    backbone.model.eval()
    path = Path(directory) / ADAPTER_FILES[1]
    loaded = set(get_peft_model_state_dict(backbone.model, adapter_name=adapter))
    with safe_open(str(path), framework="pt") as handle:
        saved = set(handle.keys())
    if loaded != saved:
        if first:
            backbone.model = backbone.model.unload()
        else:
            backbone.model.delete_adapter(adapter)
        unplaced = sorted(saved - loaded) or sorted(loaded - saved)
        raise CheckpointError(
            f"{path}: its tensors do not match the layers adapter_config.json targets "
            f"(e.g. '{unplaced[0]}'); the adapter was not loaded"
        )


def _refusal(directory: Path, error: Exception, skipped: list[tuple[str, str]] | None) -> None:
    if skipped is None:
        raise error
    skipped.append((str(directory), str(error)))


def variant_name_for(config: RunConfig, directory: str | Path, taken: Collection[str]) -> str:
    """The name a variant directory is known by: its run config's (``swag-attentive``), or the
    directory's name when an earlier variant already has that one."""
    return config.variant if config.variant not in taken else Path(directory).name


def adapter_name(variant: str) -> str:
    """``swag-attentive`` -> ``swag_attentive``: peft adapter names become attribute names."""
    return variant.replace("-", "_")


def load_variants(
    backbone: Backbone, directories: Sequence[str | Path], skipped: list[tuple[str, str]] | None = None
):
    """Load every variant directory onto ``backbone``; returns :class:`~vqa_demo.predictor.Variant` objects.

    All directories are validated before any weight is loaded. Names come from the run configs
    (``swag-attentive``...); a repeated name falls back to the directory name. A bad variant raises,
    unless ``skipped`` is a list: then ``(directory, reason)`` is appended and the others still load.
    """
    from vqa_demo.predictor import Variant

    checked: list[tuple[Path, RunConfig]] = []
    for directory in map(Path, directories):
        try:
            checked.append((directory, check_variant_dir(directory, backbone)))
        except (CheckpointError, UnsafeCheckpointError) as error:
            _refusal(directory, error, skipped)
    names: list[str] = []
    for directory, config in checked:
        name = variant_name_for(config, directory, names)
        if name in names:
            raise CheckpointError(
                f"two checkpoints are both named '{name}'; give their directories distinct names"
            )
        names.append(name)
    variants = []
    for (directory, config), name in zip(checked, names):
        adapter = adapter_name(name)
        try:
            attach_adapter(backbone, directory, adapter)
        except CheckpointError as error:
            _refusal(directory, error, skipped)
            continue
        head = load_head(directory, config, backbone.hidden_size)
        if head is not None:
            head.to(backbone.device)
        variants.append(Variant(name, config, head, adapter))
    return variants
